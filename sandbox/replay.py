"""Replay FHIR bundles through the service, the way an EHR would call it, and compare with expected outcomes.

Synthetic patients keep their dates relative to "now" so they never age: a JSON string that is exactly
``@today``, ``@today-9d``, ``@now-36h``, ``@today-52y`` (units h, d, w, m, y) becomes a date (``@today…``) or a
dateTime (``@now…``) at load time.

A case file ``<name>.expected.json`` beside ``<name>.bundle.json`` lists the calls to make (hook, draft orders,
selections) and, written by hand from the clinical catalogue, the cards that must appear (topic + indicator),
the topics that must not, and whether other cards are allowed.
"""

from __future__ import annotations

import calendar
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cds_service.prefetch import PrefetchTemplate

_RELATIVE = re.compile(r"^@(today|now)(?:([+-])(\d+)([hdwmy]))?$")


def _shift(base: datetime, sign: str, amount: int, unit: str) -> datetime:
    n = amount if sign == "+" else -amount
    if unit == "h":
        return base + timedelta(hours=n)
    if unit == "d":
        return base + timedelta(days=n)
    if unit == "w":
        return base + timedelta(weeks=n)
    months = n * (12 if unit == "y" else 1)
    year, month = divmod(base.month - 1 + months, 12)
    year += base.year
    return base.replace(year=year, month=month + 1, day=min(base.day, calendar.monthrange(year, month + 1)[1]))


def resolve_dates(value: Any, now: datetime) -> Any:
    """Replace relative-date strings anywhere in a JSON value."""
    if isinstance(value, str):
        m = _RELATIVE.match(value)
        if not m:
            return value
        kind, sign, amount, unit = m.groups()
        moment = _shift(now, sign, int(amount), unit) if sign else now
        return moment.date().isoformat() if kind == "today" else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, list):
        return [resolve_dates(v, now) for v in value]
    if isinstance(value, dict):
        return {k: resolve_dates(v, now) for k, v in value.items()}
    return value


def resources_of(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]


def prefetch_for(
    templates: Iterable[PrefetchTemplate], resources: list[dict[str, Any]], patient_id: str
) -> dict[str, Any]:
    """What a complete EHR prefetch would carry for these templates, from the patient's resources."""
    out: dict[str, Any] = {}
    for t in templates:
        path, _, query = t.query.partition("?")
        rtype = path.split("/")[0]
        if "/" in path:  # a read
            out[t.key] = next(
                (r for r in resources if r.get("resourceType") == rtype and r.get("id") == patient_id), None
            )
            continue
        codes = {c.split("|")[-1] for v in parse_qs(query).get("code", []) for c in v.split(",")}
        matched = [
            r
            for r in resources
            if r.get("resourceType") == rtype
            and (not codes or any(c.get("code") in codes for c in (r.get("code") or {}).get("coding", [])))
        ]
        out[t.key] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matched),
            "entry": [{"resource": r} for r in matched],
        }
    return out


@dataclass
class CallOutcome:
    patient: str
    hook: str
    label: str
    status: int
    cards: list[tuple[str, str, str]]  # (topic, indicator, summary)
    problems: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0
    full_cards: list[dict[str, Any]] = field(default_factory=list)  # the cards as returned (sandbox/golden.py)


@dataclass
class Case:
    name: str
    bundle_path: Path
    description: str
    calls: list[dict[str, Any]]

    @classmethod
    def load(cls, expected_path: Path) -> Case:
        spec = json.loads(expected_path.read_text())
        bundle_path = expected_path.with_name(expected_path.name.replace(".expected.json", ".bundle.json"))
        return cls(
            expected_path.name.replace(".expected.json", ""), bundle_path, spec.get("description", ""), spec["calls"]
        )


def find_cases(paths: Iterable[str]) -> list[Case]:
    cases: list[Case] = []
    for p in map(Path, paths):
        if p.is_dir():
            cases.extend(Case.load(e) for e in sorted(p.glob("*.expected.json")))
        elif p.name.endswith(".expected.json"):
            cases.append(Case.load(p))
        elif p.name.endswith(".bundle.json"):
            cases.append(Case.load(p.with_name(p.name.replace(".bundle.json", ".expected.json"))))
    return cases


Send = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]]


def build_request(
    hook: str,
    patient_id: str,
    call: dict[str, Any],
    prefetch: dict[str, Any] | None,
    fhir_server: str | None,
    now: datetime,
    fhir_token: str | None = None,
) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/replay-clinician", "patientId": patient_id}
    drafts = resolve_dates(call.get("draftOrders", []), now)
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": d} for d in drafts],
        }
    if hook == "order-select":
        context["selections"] = call.get("selections") or [f"{d['resourceType']}/{d['id']}" for d in drafts]
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if prefetch is not None:
        body["prefetch"] = prefetch
    if fhir_server:
        body["fhirServer"] = fhir_server
        if fhir_token:
            body["fhirAuthorization"] = {
                "access_token": fhir_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "backpain-cds-replay",
                "patient": patient_id,
            }
    return body


def check(call: dict[str, Any], cards: list[tuple[str, str, str]]) -> list[str]:
    problems = []
    got = [(t, i) for t, i, _ in cards]
    for exp in call.get("expect", []):
        if (exp["topic"], exp["indicator"]) not in got:
            problems.append(f"missing {exp['topic']} ({exp['indicator']})")
    for topic in call.get("absent", []):
        if any(t == topic for t, _ in got):
            problems.append(f"unexpected {topic}")
    if call.get("exhaustive", True):
        allowed = {(e["topic"], e["indicator"]) for e in call.get("expect", [])}
        for t, i in got:
            if (t, i) not in allowed and t not in call.get("absent", []):
                problems.append(f"extra card {t} ({i})")
    if len(got) != len(set(got)):
        problems.append("duplicate cards for one problem")
    return problems


def run_cases(
    cases: list[Case],
    send: Send,
    services: dict[str, tuple[str, tuple[PrefetchTemplate, ...]]],
    *,
    now: datetime,
    fhir_server: str | None = None,
    fhir_token: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[CallOutcome]:
    """``services`` maps hook → (service id, prefetch templates)."""
    outcomes = []
    total = sum(len(c.calls) for c in cases)
    done = 0
    for case in cases:
        bundle = resolve_dates(json.loads(case.bundle_path.read_text()), now)
        resources = resources_of(bundle)
        patient_id = next(r["id"] for r in resources if r.get("resourceType") == "Patient")
        for call in case.calls:
            hook = call["hook"]
            service_id, templates = services[hook]
            prefetch = None if fhir_server else prefetch_for(templates, resources, patient_id)
            body = build_request(hook, patient_id, call, prefetch, fhir_server, now, fhir_token)
            started = time.perf_counter()
            status, data = send(service_id, body)
            elapsed = (time.perf_counter() - started) * 1000
            full = data.get("cards", []) if status == 200 else []
            cards = [(c["source"].get("topic", {}).get("code", "?"), c["indicator"], c["summary"]) for c in full]
            problems = check(call, cards) if status == 200 else [f"HTTP {status}: {json.dumps(data)[:200]}"]
            outcomes.append(
                CallOutcome(case.name, hook, call.get("label", hook), status, cards, problems, elapsed, full)
            )
            done += 1
            if progress:
                progress(done, total)
    return outcomes


def topic_counts(outcomes: Iterable[CallOutcome]) -> Counter[str]:
    return Counter(f"{t} ({i})" for o in outcomes for t, i, _ in o.cards)


# --- NDJSON (Bulk Data export) --------------------------------------------------------------------------------------


def patient_of(resource: dict[str, Any]) -> str | None:
    """The patient a Bulk Data resource belongs to: its own id for a Patient, else its subject's or patient's."""
    if resource.get("resourceType") == "Patient":
        pid = resource.get("id")
        return pid if isinstance(pid, str) and pid else None
    ref = resource.get("subject") or resource.get("patient") or {}
    text = ref.get("reference", "") if isinstance(ref, dict) else ""
    return text.rsplit("Patient/", 1)[-1] if isinstance(text, str) and "Patient/" in text else None


def ndjson_patients(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """Group the resources of a Bulk Data export directory by patient id (all in memory: small exports; the
    population audit, sandbox/audit.py, streams a partition at a time instead)."""
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.ndjson")):
        with path.open() as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                r = json.loads(line)
                if pid := patient_of(r):
                    by_patient.setdefault(pid, []).append(r)
    return by_patient


# --- presentation (rich: styled on a terminal, plain text elsewhere) -------------------------------------------------

STYLES = {"critical": "red", "warning": "yellow", "info": "cyan", "ok": "green", "bad": "bold red"}
PLAIN_WIDTH = 10_000  # off a terminal nothing wraps: one line per table row, for whoever reads the output


def console(file: TextIO, *, colour: bool = True) -> Console:
    """A console on this stream: styled on a terminal (without colour when ``colour`` is false or NO_COLOR is set),
    plain unwrapped text when the stream is a file or a pipe. Strings are printed as they are (no markup)."""
    out = Console(file=file, no_color=not colour, highlight=False, markup=False, emoji=False)
    if not out.is_terminal:
        out.width = PLAIN_WIDTH
    return out


def render_table(outcomes: list[CallOutcome], out: Console) -> None:
    """A row per call (patient, call, ok or MISMATCH, the cards as topic:indicator), a row per problem under it, then
    ``N passed, M failed``."""
    table = Table(
        box=box.SIMPLE_HEAD if out.is_terminal else None, pad_edge=False, show_edge=False, header_style="bold"
    )
    for name in ("patient", "call", "result"):
        table.add_column(name, no_wrap=True)
    table.add_column("cards", overflow="fold")
    for o in outcomes:
        verdict = Text("ok", style=STYLES["ok"]) if not o.problems else Text("MISMATCH", style=STYLES["bad"])
        cards = (
            Text(", ").join(Text(f"{t}:{i}", style=STYLES.get(i, "")) for t, i, _ in o.cards) if o.cards else Text("—")
        )
        table.add_row(Text(o.patient), Text(o.label), verdict, cards)
        for p in o.problems:
            table.add_row("", "", "", Text(f"↳ {p}", style=STYLES["bad"]))
    out.print(table)
    bad = sum(1 for o in outcomes if o.problems)
    out.print(f"\n{len(outcomes) - bad} passed, {bad} failed")


@contextmanager
def progress_bar(description: str, out: Console) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on a terminal (nothing elsewhere) for as long as the block runs; it yields ``show(done,
    total)``."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        disable=not out.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=None)

        def show(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield show


def today_start(day: date | None) -> datetime:
    if day is None:
        return datetime.now(UTC).replace(microsecond=0)
    return datetime(day.year, day.month, day.day, 12, 0, tzinfo=UTC)
