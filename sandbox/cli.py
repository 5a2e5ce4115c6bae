"""CLI commands for testing the service as it is used: ``replay``, ``load-patients``, and the population audit
(``audit``, ``make-population``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import requests

from . import audit, make_population
from .replay import (
    Send,
    console,
    find_cases,
    ndjson_patients,
    prefetch_for,
    progress_bar,
    render_table,
    resolve_dates,
    resources_of,
    run_cases,
    today_start,
    topic_counts,
)

DEFAULT_PATIENTS = Path(__file__).resolve().parent / "patients"


def _services(discovery: dict[str, Any]) -> dict[str, Any]:
    from cds_service.prefetch import PrefetchTemplate

    out: dict[str, Any] = {}
    for s in discovery["services"]:
        templates = tuple(PrefetchTemplate(k, q) for k, q in (s.get("prefetch") or {}).items())
        out.setdefault(s["hook"], (s["id"], templates))
    return out


def _senders(args: argparse.Namespace, now: datetime) -> tuple[Send, dict[str, Any]]:
    if args.url:
        base = args.url.rstrip("/")
        session = requests.Session()
        headers = {"Content-Type": "application/json"}
        if args.jwt:
            headers["Authorization"] = f"Bearer {args.jwt}"
        discovery = session.get(f"{base}/cds-services", headers=headers, timeout=10).json()

        def send_http(service_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            resp = session.post(f"{base}/cds-services/{service_id}", json=body, headers=headers, timeout=30)
            try:
                return resp.status_code, resp.json()
            except ValueError:
                return resp.status_code, {}

        return send_http, discovery

    return local_sender(now)


def local_sender(
    now: datetime, validate_responses: bool = True, uuid_factory: Callable[[], str] | None = None
) -> tuple[Send, dict[str, Any]]:
    """An in-process service (pinned clock, in-memory feedback): its send function and its discovery document."""
    from hooks.wsgi import create_app

    app = create_app(
        {"database_url": "sqlite:///:memory:", "validate_responses": validate_responses, "log_level": "WARNING"},
        clock=lambda: now,
        uuid_factory=uuid_factory,
    )
    client = app.test_client()

    def send_local(service_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        resp = client.post(
            f"/cds-services/{service_id}", json=body, buffered=True
        )  # finished and closed, as a server does
        return resp.status_code, resp.get_json() or {}

    return send_local, client.get("/cds-services").get_json()


def _goldens(args: argparse.Namespace) -> int:
    """--golden: compare whole cards with each case's golden; --record: write the goldens that changed."""
    from . import golden

    if args.url or args.fhir:
        print("--golden and --record replay in process (pinned clock and ids); drop --url/--fhir", file=sys.stderr)
        return 2
    cases = find_cases(args.paths or [str(DEFAULT_PATIENTS)])
    day = date.fromisoformat(args.today) if args.today else golden.golden_day(cases)
    ids = golden.PinnedIds()
    send, discovery = local_sender(golden.pinned_now(day), uuid_factory=ids)
    runs = golden.replay(cases, send, ids, _services(discovery), day)
    if args.record:
        written, refused = golden.record(runs, day)
        for path in written:
            print(f"recorded {path.name}: review it in git diff before committing")
        for line in refused:
            print(line, file=sys.stderr)
        print(
            f"{len(written)} goldens written, {len(runs) - len(written) - len(refused)} unchanged, {len(refused)} "
            "refused"
        )
        return 1 if refused else 0
    bad = [r for r in runs if r.problems or r.differences]
    for r in bad:
        for line in r.problems + r.differences:
            print(f"{r.case.name}: {line}")
    calls = sum(len(r.outcomes) for r in runs)
    print(f"{len(runs) - len(bad)} of {len(runs)} patients ({calls} calls) match their goldens whole, as of {day}")
    return 1 if bad else 0


def replay(args: argparse.Namespace) -> int:
    if args.golden or args.record:
        return _goldens(args)
    now = today_start(date.fromisoformat(args.today) if args.today else None)
    send, discovery = _senders(args, now)
    services = _services(discovery)
    paths = args.paths or [str(DEFAULT_PATIENTS)]
    ndjson_dirs = [Path(p) for p in paths if Path(p).is_dir() and any(Path(p).glob("*.ndjson"))]
    if ndjson_dirs:
        return _replay_population(ndjson_dirs, send, services, args)
    cases = find_cases(paths)
    if not cases:
        print("no cases found (expected <name>.expected.json beside <name>.bundle.json)", file=sys.stderr)
        return 2
    with progress_bar("replaying", console(sys.stderr, colour=not args.no_colour)) as show:
        outcomes = run_cases(
            cases, send, services, now=now, fhir_server=args.fhir, fhir_token=args.fhir_token, progress=show
        )
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "patient": o.patient,
                        "call": o.label,
                        "hook": o.hook,
                        "status": o.status,
                        "cards": [{"topic": t, "indicator": i, "summary": s} for t, i, s in o.cards],
                        "problems": o.problems,
                        "elapsed_ms": round(o.elapsed_ms, 2),
                    }
                    for o in outcomes
                ],
                indent=2,
            )
        )
    else:
        out = console(sys.stdout, colour=not args.no_colour)
        render_table(outcomes, out)
        out.print("cards by topic: " + ", ".join(f"{k}: {v}" for k, v in sorted(topic_counts(outcomes).items())))
    return 1 if any(o.problems for o in outcomes) else 0


def _replay_population(dirs: list[Path], send: Any, services: dict[str, Any], args: argparse.Namespace) -> int:
    from collections import Counter

    counts: Counter[str] = Counter()
    errors = 0
    patients = {pid: rs for d in dirs for pid, rs in ndjson_patients(d).items()}
    service_id, templates = services["patient-view"]
    with progress_bar("patients", console(sys.stderr, colour=not args.no_colour)) as show:
        for n, (pid, resources) in enumerate(sorted(patients.items()), 1):
            body = {
                "hook": "patient-view",
                "hookInstance": f"00000000-0000-4000-8000-{n:012d}",
                "context": {"userId": "Practitioner/replay", "patientId": pid},
                "prefetch": prefetch_for(templates, resources, pid),
            }
            status, data = send(service_id, body)
            if status != 200:
                errors += 1
            for c in data.get("cards", []) if status == 200 else []:
                counts[f"{c['source']['topic']['code']} ({c['indicator']})"] += 1
            show(n, len(patients))
    result = {"patients": len(patients), "errors": errors, "cards": dict(sorted(counts.items()))}
    print(
        json.dumps(result, indent=2)
        if args.json
        else f"{len(patients)} patients, {errors} errors\n"
        + "\n".join(f"  {k:50} {v}" for k, v in sorted(counts.items()))
    )
    return 1 if errors else 0


def as_transaction(bundle: dict[str, Any]) -> dict[str, Any]:
    """A collection Bundle → a transaction that PUTs every resource at its own id (references stay valid)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources_of(bundle)
        ],
    }


def load_patients(args: argparse.Namespace) -> int:
    now = today_start(None)
    paths = [Path(p) for p in (args.paths or [str(DEFAULT_PATIENTS)])]
    files = [f for p in paths for f in (sorted(p.glob("*.bundle.json")) if p.is_dir() else [p])]
    headers = {"Content-Type": "application/fhir+json"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    failures = 0
    for f in files:
        bundle = resolve_dates(json.loads(f.read_text()), now)
        resp = requests.post(
            args.fhir.rstrip("/"), json=as_transaction(bundle), headers=headers, timeout=30, allow_redirects=False
        )
        ok = resp.status_code in (200, 201)
        failures += not ok
        print(f"{'loaded' if ok else 'FAILED'} {f.name} → HTTP {resp.status_code}")
    return 1 if failures else 0


def register(sub: Any) -> None:
    p = sub.add_parser("replay", help="replay synthetic patients (or a Bulk Data NDJSON directory) through the service")
    p.add_argument("paths", nargs="*", help="case files or directories (default: sandbox/patients)")
    p.add_argument("--url", help="a running service base URL (default: in-process)")
    p.add_argument(
        "--fhir", help="send no prefetch; the service fetches from this FHIR server (load it with load-patients)"
    )
    p.add_argument("--fhir-token", help="access token the service should use on --fhir (sent as fhirAuthorization)")
    p.add_argument("--jwt", help="bearer JWT for a service with client authentication on")
    p.add_argument("--today", help="pin 'now' to this date (YYYY-MM-DD); default: the real date")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--no-colour", action="store_true", help="no colour on a terminal (off a terminal the output is plain)"
    )
    p.add_argument(
        "--golden",
        action="store_true",
        help="compare whole cards with each case's <name>.cards.json (in process, pinned clock and ids)",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="write the goldens that changed (refused where cards contradict the hand-written expectations)",
    )
    p.set_defaults(func=replay)
    p = sub.add_parser("load-patients", help="POST the synthetic patients to a FHIR server as transactions")
    p.add_argument("--fhir", required=True, help="FHIR base URL")
    p.add_argument("--token", help="bearer token for the FHIR server")
    p.add_argument("paths", nargs="*")
    p.set_defaults(func=load_patients)
    audit.register(sub)
    make_population.register(sub)


__all__ = ["as_transaction", "local_sender", "register"]
