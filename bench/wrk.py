"""``backpain-cds bench-wrk``: the floor measured as the limit it is, with a C load generator.

wrk (Debian's package) drives the production server on 127.0.0.1 with a small Lua script that writes the patient id
into every place the chart names it — a new patient per call for first looks (``distinct``), one patient for a
keystroke stream (``repeated``) — so the client's own cost is not added to the floor's. Beside latency it reads the
server's CPU time per call from ``/proc`` (every process of the server's group: master and workers) and the workers'
resident memory, and prints the spread over rounds. Servers run one at a time (floor, then each service variant) for
each round, so every ratio is to a floor measured in the same run. Nothing here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .charts import hook_body, synthetic_prefetch
from .loadgen import ServerProcess, group_pids, rss_kb, write_rows

PLACEHOLDER = "WRKPID"  # the patient id in the body as generated; the Lua script replaces every occurrence
SERVICES = {"patient-view": "backpain-patient-view", "order-select": "backpain-order-select"}

LUA = r"""
local parts, distinct, counter, prefix = {}, false, 0, "w"
local threads = 0
setup = function(thread) thread:set("tid", threads); threads = threads + 1 end
init = function(args)
  local f = io.open(args[1], "rb"); local body = f:read("*a"); f:close()
  distinct = args[2] == "distinct"
  prefix = args[3] or "w"
  local start = 1
  while true do
    local i, j = string.find(body, "WRKPID", start, true)
    if not i then table.insert(parts, string.sub(body, start)); break end
    table.insert(parts, string.sub(body, start, i - 1)); start = j + 1
  end
end
request = function()
  counter = counter + 1
  local id = distinct and (prefix .. tostring(tid) .. "x" .. tostring(counter)) or "w0"
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, table.concat(parts, id))
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"errors":%d,"non2xx":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"duration_us":%d}\n', summary.requests, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), summary.duration))
end
"""


def cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in the group (``/proc/<pid>/stat`` fields 14 and 15)."""
    total = 0
    for pid in group_pids(pgid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def worker_rss_kb(pgid: int) -> list[int]:
    """Resident memory of each worker of the group (every process but the group leader, the gunicorn master)."""
    return [rss_kb(pid) for pid in group_pids(pgid) if pid != pgid]


_RUNS = itertools.count(1)


def run_wrk(url: str, body_file: Path, script: Path, mode: str, connections: int, seconds: float) -> dict[str, Any]:
    """One wrk run. Patient ids of a distinct run carry a prefix of this run's own, so no two runs (a warm-up and the
    measured run after it) ever send the same patient: a second sighting would let the caches keep the chart."""
    cmd = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s", "--latency", "--timeout", "10s"]
    cmd += ["-s", str(script), url, "--", str(body_file), mode, f"r{os.getpid()}n{next(_RUNS)}t"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    result: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
    return result


def measure(
    server: ServerProcess, path: str, body_file: Path, script: Path, mode: str, connections: int, seconds: float
) -> dict[str, Any]:
    pgid = server.proc.pid
    run_wrk(server.url + path, body_file, script, mode, connections, min(2.0, seconds))  # warm-up (imports, caches)
    cpu_before = cpu_seconds(pgid)
    r = run_wrk(server.url + path, body_file, script, mode, connections, seconds)
    cpu = cpu_seconds(pgid) - cpu_before
    rss = worker_rss_kb(pgid)
    calls = max(r["requests"], 1)
    return {
        "requests": r["requests"],
        "errors": r["errors"] + r["non2xx"],
        "req_per_s": round(r["requests"] / (r["duration_us"] / 1e6), 1),
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "cpu_ms_per_call": round(cpu * 1000 / calls, 3),
        "worker_rss_mb": round(max(rss, default=0) / 1024, 1),
    }


def bench_wrk(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk (Debian's package)")
        return 2
    variants, envs = _variants(args)
    work = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
    script = work / "vary.lua"
    script.write_text(LUA)
    rows: list[dict[str, Any]] = []
    for size in args.sizes.split(","):
        prefetch = synthetic_prefetch(size, pid=PLACEHOLDER)
        for hook in args.hooks.split(","):
            body_file = work / f"{size}-{hook}.json"
            body_file.write_bytes(hook_body(hook, prefetch, pid=PLACEHOLDER))
            path = f"/cds-services/{SERVICES[hook]}"
            for mode in args.payloads.split(","):
                for connections in [int(c) for c in args.connections.split(",")]:
                    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
                    for _ in range(args.rounds):
                        for name, extra in variants.items():
                            with _server(args.workers, extra, envs.get(name)) as s:
                                rounds[name].append(
                                    measure(s, path, body_file, script, mode, connections, args.seconds)
                                )
                    rows.append(_row(size, hook, mode, connections, body_file.stat().st_size, rounds))
                    print(_line(rows[-1]), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    out = write_rows(args.out, rows)
    print(f"written: {out}\n\n{markdown_table(rows)}")
    return 0


def _variants(args: argparse.Namespace) -> tuple[dict[str, str | None], dict[str, dict[str, str]]]:
    """The servers of each round: name → extra configuration (None: the floor), and the environment of those that run
    another copy of the code (the compiled build, ``make compiled``: its copy first on the server's path)."""
    variants: dict[str, str | None] = {"floor": None, "service": ""}
    for n in args.admission:
        variants[f"service (admission {n})"] = f"snapshot_cache_admission = {n}\n"
    envs: dict[str, dict[str, str]] = {}
    if args.compiled:
        variants["service (compiled)"] = ""
        envs["service (compiled)"] = os.environ | {"PYTHONPATH": str(Path(args.compiled).resolve())}
    return variants, envs


@contextlib.contextmanager
def _server(workers: int, extra: str | None, env: dict[str, str] | None) -> Iterator[ServerProcess]:
    with ServerProcess(workers=workers, floor=extra is None, extra_config=extra or "", env=env) as s:
        if env is not None and not s.runs_compiled():
            raise SystemExit("the server is not running the compiled build (make compiled)")  # else: wrong figures
        yield s


def _row(
    size: str, hook: str, mode: str, connections: int, body_bytes: int, rounds: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    def med(name: str, key: str) -> float:
        return round(float(statistics.median(r[key] for r in rounds[name])), 2)

    floor_p50, floor_cpu = med("floor", "p50_ms"), med("floor", "cpu_ms_per_call")
    variants = {}
    for name in rounds:
        p50s = [r["p50_ms"] for r in rounds[name]]
        variants[name] = {
            "p50_ms": med(name, "p50_ms"),
            "p50_spread_ms": [min(p50s), max(p50s)],
            "p99_ms": med(name, "p99_ms"),
            "req_per_s": med(name, "req_per_s"),
            "cpu_ms_per_call": med(name, "cpu_ms_per_call"),
            "worker_rss_mb": med(name, "worker_rss_mb"),
            "errors": sum(r["errors"] for r in rounds[name]),
            "x_floor_p50": round(med(name, "p50_ms") / floor_p50, 2) if floor_p50 else None,
            "x_floor_cpu": round(med(name, "cpu_ms_per_call") / floor_cpu, 2) if floor_cpu else None,
        }
    return {
        "size": size,
        "hook": hook,
        "payloads": mode,
        "connections": connections,
        "body_kb": body_bytes // 1024,
        "variants": variants,
    }


def _line(row: dict[str, Any]) -> str:
    head = f"{row['size']} ({row['body_kb']} KB) {row['hook']} {row['payloads']} c={row['connections']}"
    parts = []
    for name, v in row["variants"].items():
        lo, hi = v["p50_spread_ms"]
        parts.append(
            f"{name}: p50 {v['p50_ms']:.2f} ms [{lo:.2f}–{hi:.2f}] ×{v['x_floor_p50']}, "
            f"CPU {v['cpu_ms_per_call']:.2f} ms/call ×{v['x_floor_cpu']}, RSS {v['worker_rss_mb']} MB, "
            f"{v['req_per_s']} req/s, errors {v['errors']}"
        )
    return head + "\n  " + "\n  ".join(parts)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The README's table: per row and variant, p50 (spread over rounds), CPU per call and worker RSS, and ratios."""
    lines = [
        "| payload | charts | clients | variant | p50 ms [spread] | ×floor p50 | CPU ms/call | ×floor CPU "
        "| worker RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for name, v in r["variants"].items():
            lo, hi = v["p50_spread_ms"]
            lines.append(
                f"| {r['size']} ({r['body_kb']} KB) | {r['payloads']} | {r['connections']} | {name} | "
                f"{v['p50_ms']:.2f} [{lo:.2f}–{hi:.2f}] | {v['x_floor_p50']} | {v['cpu_ms_per_call']:.2f} | "
                f"{v['x_floor_cpu']} | {v['worker_rss_mb']:.0f} |"
            )
    return "\n".join(lines)


def register(sub: Any) -> None:
    p = sub.add_parser("bench-wrk", help="floor vs service with wrk (C load generator): latency, CPU per call, RSS")
    p.add_argument("--sizes", default="typical,large")
    p.add_argument("--hooks", default="order-select")
    p.add_argument("--payloads", default="distinct,repeated", help="distinct (a new patient per call) / repeated")
    p.add_argument("--connections", default="1,8")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each measured run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--admission", type=int, nargs="*", default=[], help="also run these snapshot_cache_admission values"
    )
    p.add_argument(
        "--compiled", default="", help="also run the service from this compiled copy of the checkout (make compiled)"
    )
    p.add_argument("--out", default="bench/results/wrk-latest.json")
    p.set_defaults(func=bench_wrk)
