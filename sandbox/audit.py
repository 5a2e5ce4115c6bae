"""``backpain-cds audit NDJSON_DIR``: every patient of a Bulk Data export through the service's rules, on Dask.

The driver indexes the export (one streaming pass: where each patient's lines are, never the resources), cuts the
patients into partitions of ``--partition-size``, and submits one task per partition to a Dask cluster — a
``LocalCluster`` of ``--workers`` processes (one thread each) by default, or the scheduler at ``--scheduler``. A task
reads only its partition's lines, evaluates each patient in an in-process service built once per worker process
(in-memory feedback, the clock pinned to ``--today``), and returns a ``Tally``: counts and patient ids, no other
patient data. The driver adds the tallies up as they arrive and writes ``counts.json`` and ``report.html``.

On a real cluster every worker must see NDJSON_DIR at the same path (a shared file system) and have this checkout
installed (``pip install -e '.[tools]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from .population import Entry, Services, Tally, index_export, iter_partitions, read_partition
from .replay import Send, today_start


@lru_cache(maxsize=4)
def _service(now_iso: str) -> tuple[Send, Services]:
    """The in-process service for this pinned moment, built once per worker process (each task reuses it)."""
    from hooks.wsgi import create_app

    from .cli import _services

    now = datetime.fromisoformat(now_iso)
    settings = {"database_url": "sqlite:///:memory:", "validate_responses": False, "log_level": "ERROR"}
    client = create_app(settings, clock=lambda: now).test_client()

    def send(service_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        resp = client.post(f"/cds-services/{service_id}", json=body, buffered=True)
        return resp.status_code, resp.get_json() or {}

    return send, _services(client.get("/cds-services").get_json())


def audit_partition(files: list[str], patients: list[tuple[str, list[Entry]]], now_iso: str) -> Tally:
    """One task: the partition's patients read from the export and evaluated; only the tally goes back."""
    send, services = _service(now_iso)
    now = datetime.fromisoformat(now_iso)
    tally = Tally()
    for pid, resources in read_partition(files, patients):
        try:
            tally.add_patient(pid, resources, send, services, now)
        except Exception:  # one patient's surprising record: counted, the partition goes on (no text kept)
            tally.errors += 1
    return tally


@dataclass
class AuditRun:
    tally: Tally
    tasks: int  # tasks submitted: one per partition
    largest_partition: int  # patients in the largest partition (≤ the partition size)
    partition_size: int
    workers: int
    scheduler: str
    now: datetime
    elapsed_s: float  # the whole run: index, cluster start (a LocalCluster), tasks, cluster stop
    phases: dict[str, float]  # seconds: index (the first pass), cluster (start and connect), tasks (submit → last)
    unreadable_lines: int = 0  # export lines that are not JSON (skipped)

    def counts(self) -> dict[str, Any]:
        return {
            "today": self.now.date().isoformat(),
            "partition_size": self.partition_size,
            "tasks": self.tasks,
            "largest_partition": self.largest_partition,
            "workers": self.workers,
            "scheduler": self.scheduler,
            "elapsed_s": round(self.elapsed_s, 2),
            "phases_s": {k: round(v, 2) for k, v in self.phases.items()},
            "unreadable_lines": self.unreadable_lines,
            **self.tally.summary(),
        }


def run_audit(
    directory: Path,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    today: date | None = None,
    partition_size: int = 100,
) -> AuditRun:
    """Audit the export on the cluster at ``scheduler`` (a fresh LocalCluster when None; closed afterwards)."""
    from dask.distributed import Client, LocalCluster, as_completed

    started = time.perf_counter()
    now = today_start(today)
    index = index_export(directory)
    phases = {"index": time.perf_counter() - started}
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
        )
    client = Client(scheduler or cluster)
    phases["cluster"] = time.perf_counter() - started - phases["index"]
    try:
        mark = time.perf_counter()
        total = Tally()
        chunks = iter_partitions(index, partition_size)
        tasks = largest = 0

        def submit() -> Any:
            nonlocal tasks, largest
            chunk = next(chunks, None)
            if chunk is None:
                return None
            tasks, largest = tasks + 1, max(largest, len(chunk))
            return client.submit(audit_partition, index.files, chunk, now.isoformat(), pure=False)

        # a few partitions in flight per worker, the next one submitted as each completes: the driver and the
        # scheduler hold a bounded number of partitions' entry lists, whatever the population
        pending = as_completed([f for f in (submit() for _ in range(max(2 * workers, 4))) if f is not None])
        for future in pending:
            total.merge(future.result())
            future.release()  # the tally is added up: let the cluster forget it
            following = submit()
            if following is not None:
                pending.add(following)
        phases["tasks"] = time.perf_counter() - mark
        workers_seen = len(client.scheduler_info().get("workers", {}))
        address = str(client.scheduler.address) if client.scheduler else str(scheduler)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return AuditRun(
        total,
        tasks,
        largest,
        partition_size,
        workers_seen,
        address if scheduler else "LocalCluster",
        now,
        time.perf_counter() - started,
        phases,
        index.unreadable,
    )


def audit(args: argparse.Namespace) -> int:
    from .audit_report import write_report

    directory = Path(args.ndjson_dir)
    if not directory.is_dir() or not any(directory.glob("*.ndjson")):
        print(f"{directory}: no *.ndjson files (a Bulk Data export directory)", file=sys.stderr)
        return 2
    run = run_audit(
        directory,
        scheduler=args.scheduler,
        workers=args.workers,
        today=date.fromisoformat(args.today) if args.today else None,
        partition_size=args.partition_size,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counts = run.counts()
    (out / "counts.json").write_text(json.dumps(counts, indent=2) + "\n")
    write_report(counts, out / "report.html")
    print(
        f"{counts['patients']} patients, {sum(counts['calls'].values())} calls, {counts['cards']} cards, "
        f"{counts['errors']} errors in {run.tasks} tasks on {run.workers} workers ({run.elapsed_s:.1f} s) → "
        f"{out / 'counts.json'}, {out / 'report.html'}"
    )
    return 1 if counts["errors"] else 0


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="how often each card would fire across a Bulk Data NDJSON export (on Dask)")
    p.add_argument("ndjson_dir", help="a Bulk Data export directory (Patient.ndjson, Condition.ndjson, …)")
    p.add_argument("--out", default="audit-out", help="where counts.json and report.html go (default: audit-out)")
    p.add_argument("--scheduler", help="a running Dask scheduler (tcp://host:port); default: a local cluster")
    p.add_argument(
        "--workers",
        type=int,
        default=min(os.cpu_count() or 1, 4),
        help="local cluster: worker processes, one thread each (default: the cores, at most 4)",
    )
    p.add_argument("--today", help="pin 'now' to this date (YYYY-MM-DD); default: the real date")
    p.add_argument(
        "--partition-size",
        type=int,
        default=100,
        help="patients per task: a worker holds one partition's resources at a time (default: 100)",
    )
    p.set_defaults(func=audit)
