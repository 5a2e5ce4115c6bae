"""Bounded load on 127.0.0.1: start the production server (gunicorn) as a subprocess, drive it, stop it by pid.

Every loop is bounded in request count and in time; servers listen on loopback only and are stopped by their
process id (the whole process group, so no worker is left behind).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from cds_service.build_info import compiled_modules


def group_pids(pgid: int) -> list[int]:
    """The live processes of a process group (a server and its workers), from /proc."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getpgid(int(name)) == pgid:
                    pids.append(int(name))
            except (OSError, ProcessLookupError):
                continue
    return pids


def rss_kb(pid: int) -> int:
    """A process's resident memory (``VmRSS``), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CHECKOUT = Path(__file__).resolve().parent.parent  # the tree this module (and the code it serves) belongs to


def write_rows(out: str, rows: list[dict[str, Any]]) -> Path:
    """A benchmark's figures as JSON at ``out`` (its directory made), stamped with the time of the run."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}, indent=1))
    return path


def _pythonpath() -> list[str]:
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


class ServerProcess:
    """``backpain-cds serve`` on 127.0.0.1 in its own process group.

    ``python``: the interpreter to run it with (another environment's, to test an installed copy); it runs in the
    server's own directory, so ``-m hooks.cli`` never picks up a source tree from the working directory. ``floor``: the
    benchmark's no-op endpoint under the same server configuration (``serve-floor``, a command of this tooling).
    ``env``: the server's whole environment (default: this process's, with this checkout first on the path when the
    interpreter is this process's, so that the server runs the code this process runs — the compiled copy's in ``make
    test-compiled``, where a server that is not compiled is refused); ``BPCDS_*`` variables override the config file.
    """

    def __init__(
        self,
        *,
        workers: int = 2,
        floor: bool = False,
        database_url: str | None = None,
        extra_config: str = "",
        python: str = sys.executable,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="backpain-serve-"))
        self.database_url = database_url or f"sqlite:///{self.dir}/feedback.sqlite3"
        config = self.dir / "config.toml"
        level = "" if "log_level" in extra_config else 'log_level = "WARNING"\n'
        config.write_text(f'database_url = "{self.database_url}"\n{level}{extra_config}')
        cmd = [
            python,
            "-m",
            "hooks.cli",
            "--config",
            str(config),
            "serve-floor" if floor else "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        self.same_code = env is None and python == sys.executable and not floor
        if env is None and python == sys.executable:
            env = os.environ | {"PYTHONPATH": os.pathsep.join([str(CHECKOUT), *_pythonpath()])}
        self.log = open(self.dir / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.dir, env=env
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerProcess:
        try:
            self.wait_ready()
            if self.same_code and compiled_modules() and not self.runs_compiled():
                raise RuntimeError("this process runs the compiled build and its server does not")
        except BaseException:  # whatever went wrong while waiting, never leave the server running
            self.close()
            raise
        return self

    def log_text(self) -> str:
        return (self.dir / "server.log").read_text()

    def runs_compiled(self) -> bool:
        """The server said at start-up that it runs the compiled build (``cds_service.build_info``)."""
        return "backpain-cds build: chart reading compiled" in self.log_text()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server and remove its directory (config, log, SQLite file): read what you need before this."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def wait_ready(self, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.dir / 'server.log').read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not become ready")

    def kill(self) -> None:
        """SIGKILL the master and every worker at once (a crash, not a shutdown)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill()
        self.log.close()


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0  # transport errors and 5xx
    wall_s: float = 0.0
    acknowledged: list[Any] = field(default_factory=list)  # payload ids that got a 200

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(round(p / 100 * (len(data) - 1))))]

    @property
    def rps(self) -> float:
        return self.count / self.wall_s if self.wall_s else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.count,
            "errors": self.errors,
            "req_per_s": round(self.rps, 1),
            "p50_ms": round(self.pct(50), 2),
            "p95_ms": round(self.pct(95), 2),
            "p99_ms": round(self.pct(99), 2),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else None,
        }


def run_load(
    url: str,
    make_request: Callable[[int], tuple[str, bytes, Any]],
    *,
    concurrency: int,
    count: int,
    max_seconds: float,
    stop_event: threading.Event | None = None,
    headers: Callable[[str], dict[str, str]] | None = None,
) -> LoadResult:
    """POST ``count`` requests (bounded by ``max_seconds``) from ``concurrency`` threads.

    ``make_request(i)`` returns (path, JSON body bytes, an id recorded when the answer is 200); ``url`` may be empty
    and each path a whole URL (requests spread over several servers). ``headers(path)``: more headers for a request
    (a client JWT of its own, say), made just before it is sent.
    """
    result = LoadResult()
    lock = threading.Lock()
    counter = iter(range(count))
    deadline = time.monotonic() + max_seconds
    stop = stop_event or threading.Event()

    def worker() -> None:
        session = requests.Session()
        while not stop.is_set() and time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            path, body, ident = make_request(i)
            started = time.perf_counter()
            try:
                sent = {"Content-Type": "application/json", **(headers(path) if headers else {})}
                resp = session.post(url + path, data=body, headers=sent, timeout=30)
                status = resp.status_code
            except requests.RequestException:
                status = 0
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                result.latencies_ms.append(elapsed)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == 0 or status >= 500:
                    result.errors += 1
                elif status == 200:
                    result.acknowledged.append(ident)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max_seconds + 35)
    result.wall_s = time.perf_counter() - started
    return result
