"""``backpain-cds bench`` and ``backpain-cds load-test``.

bench: realistic synthetic prefetch payloads (small ~20, typical ~350, large ~5,000 resources) posted under the
production server configuration on 127.0.0.1 to (1) the floor — a no-op endpoint reading the same JSON body —
and (2) each service; plus (3) replay throughput in-process. Median of several runs; ratios to the floor measured
in the same run. No timing is asserted anywhere: the figures are printed and written as JSON.

load-test: mixed hook calls and concurrent feedback against several workers — zero errors and every acknowledged
feedback record present afterwards — then a run that SIGKILLs the server mid-load and checks that no
acknowledged feedback was lost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from cds_service.cli import add_server_options, run_server, server_settings
from cds_service.prefetch import resource_count

from .charts import hook_body, synthetic_prefetch
from .loadgen import LoadResult, ServerProcess, group_pids, rss_kb, run_load

SERVICES = {
    "patient-view": "backpain-patient-view",
    "order-select": "backpain-order-select",
    "order-sign": "backpain-order-sign",
}


def _warm_up_calls(concurrency: int) -> int:
    return max(4, concurrency * 2)


def _measure(url: str, path: str, bodies: list[bytes], concurrency: int, count: int, max_seconds: float) -> LoadResult:
    """Warm-up calls, then ``count`` measured ones; body i of the measured calls is ``bodies[(warm-up + i) %
    len(bodies)]``."""
    warm_up = _warm_up_calls(concurrency)

    def request(i: int) -> tuple[str, bytes, int]:
        return path, bodies[(warm_up + i) % len(bodies)], i

    run_load(
        url,
        lambda i: (path, bodies[i % len(bodies)], i),
        concurrency=concurrency,
        count=warm_up,
        max_seconds=max_seconds,
    )
    return run_load(url, request, concurrency=concurrency, count=count, max_seconds=max_seconds)


# "repeated": one chart sent again and again, as an EHR does on every keystroke of an order (order-select) — after
# the first call the service reuses the parsed prefetch and the facts it read. "distinct": every call a patient the
# service has never seen (fresh ids for each run, so no cache of any kind — parse, facts, record validity — can help),
# as when charts are opened one after another: every call parses, reads and validates its prefetch afresh.
PAYLOAD_MODES = ("repeated", "distinct")
SOAK_CHARTS = 40  # > 2 × snapshot_cache_entries: a worker's least-recently-used cache never holds the next chart


def distinct_bodies(body: bytes, pid: str, n: int, tag: str) -> list[bytes]:
    """``n`` copies of a hook request, each for another patient (every reference to ``pid`` renamed)."""
    needle = f'"{pid}"'.encode(), f'Patient/{pid}"'.encode()
    return [
        body.replace(needle[0], f'"{tag}-{k}"'.encode()).replace(needle[1], f'Patient/{tag}-{k}"'.encode())
        for k in range(n)
    ]


def _median(results: list[LoadResult]) -> dict[str, Any]:
    keys = ("req_per_s", "p50_ms", "p95_ms", "p99_ms")
    summaries = [r.summary() for r in results]
    out = {k: round(statistics.median(s[k] for s in summaries), 2) for k in keys}
    out["requests"] = sum(s["requests"] for s in summaries)
    out["errors"] = sum(s["errors"] for s in summaries)
    return out


def replay_throughput() -> dict[str, Any]:
    from sandbox.cli import DEFAULT_PATIENTS, _services, local_sender
    from sandbox.replay import find_cases, run_cases, today_start

    now = today_start(None)
    send, discovery = local_sender(now, validate_responses=False)
    services = _services(discovery)
    cases = find_cases([str(DEFAULT_PATIENTS)])
    started = time.perf_counter()
    outcomes = run_cases(cases, send, services, now=now)
    elapsed = time.perf_counter() - started
    return {
        "patients": len(cases),
        "calls": len(outcomes),
        "patients_per_s": round(len(cases) / elapsed, 1),
        "calls_per_s": round(len(outcomes) / elapsed, 1),
    }


def bench(args: argparse.Namespace) -> int:
    sizes = args.sizes.split(",")
    levels = [int(c) for c in args.concurrency.split(",")]
    hooks = args.hooks.split(",")
    rows: list[dict[str, Any]] = []
    print(
        f"machine: {os.cpu_count()} cores; workers: {args.workers}; runs: {args.runs}; requests per run: "
        f"{args.requests}"
    )
    modes = args.payloads.split(",")
    # The service as deployed: its JSON request log at INFO, one line per call (to a file here); the floor logs nothing.
    with (
        ServerProcess(workers=args.workers, floor=True) as floor,
        ServerProcess(workers=args.workers, extra_config='log_level = "INFO"\n') as service,
    ):
        for size in sizes:
            prefetch = synthetic_prefetch(size)
            resources = resource_count(prefetch)
            for hook in hooks:
                path = f"/cds-services/{SERVICES[hook]}"
                body = hook_body(hook, prefetch)
                for mode in modes:
                    for c in levels:
                        count = max(10, args.requests // (10 if size == "large" else 1))
                        floor_runs, service_runs = [], []
                        for run in range(
                            args.runs
                        ):  # interleaved, so a noisy minute on a shared machine hits both alike
                            bodies = (
                                [body]
                                if mode == "repeated"
                                else distinct_bodies(
                                    body, "bench-1", count + _warm_up_calls(c), f"{size}-{hook}-c{c}-r{run}"
                                )
                            )
                            floor_runs.append(_measure(floor.url, path, bodies, c, count, args.max_seconds))
                            service_runs.append(_measure(service.url, path, bodies, c, count, args.max_seconds))
                        base, ours = _median(floor_runs), _median(service_runs)
                        rows.append(
                            {
                                "size": size,
                                "resources": resources,
                                "body_kb": round(len(bodies[0]) / 1024),
                                "hook": hook,
                                "payloads": mode,
                                "concurrency": c,
                                "floor": base,
                                "service": ours,
                                "ratio_p50": round(ours["p50_ms"] / base["p50_ms"], 2) if base["p50_ms"] else None,
                                "ratio_p99": round(ours["p99_ms"] / base["p99_ms"], 2) if base["p99_ms"] else None,
                                "ratio_rps": round(ours["req_per_s"] / base["req_per_s"], 2)
                                if base["req_per_s"]
                                else None,
                            }
                        )
                        print(_row(rows[-1]), flush=True)
        soak = _soak(service, args.soak) if args.soak else None
    replay = replay_throughput()
    print(
        f"replay in-process: {replay['patients_per_s']} patients/s ({replay['calls_per_s']} hook calls/s over "
        f"{replay['calls']} calls)"
    )
    result = {
        "machine": {"cores": os.cpu_count()},
        "workers": args.workers,
        "runs": args.runs,
        "rows": rows,
        "replay": replay,
        "soak": soak,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"written: {out}\n\n{markdown_table(rows)}")
    errors = sum(r["service"]["errors"] + r["floor"]["errors"] for r in rows)
    return 1 if errors else 0


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as the README's table."""
    lines = [
        "| payload | hook | charts | clients | floor p50 / p99 ms | service p50 / p95 / p99 ms | service req/s | "
        "×floor p50 / p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f, s = r["floor"], r["service"]
        lines.append(
            f"| {r['size']} ({r['resources']} res., {r['body_kb']} KB) | {r['hook']} | {r['payloads']} | "
            f"{r['concurrency']} "
            f"| {f['p50_ms']} / {f['p99_ms']} | {s['p50_ms']} / {s['p95_ms']} / {s['p99_ms']} | {s['req_per_s']} "
            f"| **{r['ratio_p50']}** / {r['ratio_p99']} |"
        )
    return "\n".join(lines)


def _row(r: dict[str, Any]) -> str:
    f, s = r["floor"], r["service"]
    return (
        f"{r['size']:8} {r['resources']:5}res {r['body_kb']:5}KB {r['hook']:13} {r['payloads']:9} "
        f"c={r['concurrency']:<2} | floor {f['req_per_s']:7.1f} req/s "
        f"p50 {f['p50_ms']:7.2f} p99 {f['p99_ms']:7.2f} | service {s['req_per_s']:7.1f} req/s p50 {s['p50_ms']:7.2f} "
        f"p95 {s['p95_ms']:7.2f} p99 {s['p99_ms']:7.2f} | ×floor p50 {r['ratio_p50']} p99 {r['ratio_p99']}"
    )


def _rss_kb(pgid: int) -> int:
    return sum(rss_kb(pid) for pid in group_pids(pgid))


def _soak(server: ServerProcess, seconds: float) -> dict[str, Any]:
    """Sustained order-select load over more distinct charts than the facts cache holds (its worst case for memory)."""
    bodies = [
        hook_body("order-select", synthetic_prefetch("typical", pid=f"soak-{n}"), f"soak-{n}")
        for n in range(SOAK_CHARTS)
    ]
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        run_load(
            server.url,
            lambda i: ("/cds-services/backpain-order-select", bodies[i % len(bodies)], i),
            concurrency=4,
            count=200,
            max_seconds=min(30, max(1, end - time.monotonic())),
        )
        samples.append(_rss_kb(server.proc.pid))
    print(f"soak {seconds:.0f}s: server RSS first {samples[0]} kB, last {samples[-1]} kB, max {max(samples)} kB")
    return {"seconds": seconds, "rss_kb": samples}


# --- load-test ------------------------------------------------------------------------------------------------------


def _feedback(card: str) -> bytes:
    return orjson.dumps(
        {"feedback": [{"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-11-22T03:32:27Z"}]}
    )


def load_and_durability(
    *,
    workers: int = 3,
    requests_per_kind: int = 200,
    concurrency: int = 8,
    max_seconds: float = 60,
    kill_after: float = 1.0,
) -> dict[str, Any]:
    from cds_service.feedback import open_store

    report: dict[str, Any] = {}
    prefetch = synthetic_prefetch("small")
    bodies = [hook_body(h, prefetch) for h in SERVICES]
    paths = [f"/cds-services/{s}" for s in SERVICES.values()]
    with ServerProcess(workers=workers) as server:

        def mixed(i: int) -> tuple[str, bytes, Any]:
            if i % 2:
                card = f"load-{i}"
                return "/cds-services/backpain-patient-view/feedback", _feedback(card), card
            return paths[i % 3], bodies[i % 3], None

        result = run_load(
            server.url, mixed, concurrency=concurrency, count=requests_per_kind * 2, max_seconds=max_seconds
        )
        acknowledged = {a for a in result.acknowledged if a}
        stored = set(open_store(server.database_url).card_uuids())
        report["load"] = {
            **result.summary(),
            "statuses": result.statuses,
            "feedback_acknowledged": len(acknowledged),
            "feedback_missing": len(acknowledged - stored),
        }
    server = ServerProcess(workers=workers)
    try:  # whatever happens, the server is stopped and its directory removed (after its database has been read)
        server.wait_ready()
        stop = threading.Event()

        def crash() -> None:
            server.kill()
            stop.set()

        killer = threading.Timer(kill_after, crash)
        killer.start()
        result = run_load(
            server.url,
            lambda i: ("/cds-services/backpain-patient-view/feedback", _feedback(f"kill-{i}"), f"kill-{i}"),
            concurrency=concurrency,
            count=100_000,
            max_seconds=kill_after + 5,
            stop_event=stop,
        )
        killer.join()
        server.stop()
        acknowledged = set(result.acknowledged)
        stored = set(open_store(server.database_url).card_uuids())
    finally:
        server.close()
    report["kill"] = {
        "sent": result.count,
        "acknowledged": len(acknowledged),
        "missing_after_kill": len(acknowledged - stored),
        "stored": len(stored),
    }
    return report


def load_test(args: argparse.Namespace) -> int:
    report = load_and_durability(
        workers=args.workers,
        requests_per_kind=args.requests,
        concurrency=args.concurrency,
        max_seconds=args.max_seconds,
        kill_after=args.kill_after,
    )
    load, kill = report["load"], report["kill"]
    print(
        f"load: {load['requests']} requests, {load['errors']} errors, {load['req_per_s']} req/s, p50 {load['p50_ms']} "
        "ms, "
        f"p99 {load['p99_ms']} ms; feedback acknowledged {load['feedback_acknowledged']}, missing "
        f"{load['feedback_missing']}"
    )
    print(
        f"kill -9 during load: {kill['acknowledged']} acknowledged, {kill['missing_after_kill']} missing after the "
        "crash "
        f"({kill['stored']} stored)"
    )
    ok = (
        load["errors"] == 0
        and load["feedback_missing"] == 0
        and kill["missing_after_kill"] == 0
        and kill["acknowledged"] > 0
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmark against the no-op floor under the production server (prints figures)")
    p.add_argument("--sizes", default="small,typical,large")
    p.add_argument("--hooks", default="patient-view,order-select")
    p.add_argument("--concurrency", default="1,8")
    p.add_argument(
        "--payloads",
        default=",".join(PAYLOAD_MODES),
        help="repeated (one chart, keystroke stream) and/or distinct (a new chart each call)",
    )
    p.add_argument("--requests", type=int, default=300, help="requests per run (large payloads use a tenth)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-seconds", type=float, default=60, help="bound on each run")
    p.add_argument("--soak", type=float, default=0, help="seconds of sustained load while sampling server memory")
    p.add_argument("--out", default="bench/results/latest.json")
    p.set_defaults(func=bench)
    p = sub.add_parser("load-test", help="bounded load + kill -9 durability check against the production server")
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--max-seconds", type=float, default=60)
    p.add_argument("--kill-after", type=float, default=1.0)
    p.set_defaults(func=load_test)
    p = sub.add_parser(
        "serve-floor", help="the benchmark floor (a no-op endpoint reading the body) under serve's gunicorn settings"
    )
    add_server_options(p)
    p.set_defaults(func=serve_floor)


def serve_floor(args: argparse.Namespace) -> int:
    from .floor import floor_app

    return run_server(server_settings(args), floor_app)
