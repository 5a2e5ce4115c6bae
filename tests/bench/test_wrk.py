"""The wrk driver of bench-wrk: its Lua script writes a new patient id into every place the chart names it (distinct)
or the same one (repeated), and the server's CPU time is read from /proc. Skipped without Debian's wrk."""

from __future__ import annotations

import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.charts import hook_body, synthetic_prefetch
from bench.wrk import LUA, PLACEHOLDER, cpu_seconds, run_wrk

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install wrk)")


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, int]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        pid = body["context"]["patientId"]
        mentions = json.dumps(body).count(pid)
        self.seen.append((pid, mentions))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "12")
        self.end_headers()
        self.wfile.write(b'{"cards":[]}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("mode", ["distinct", "repeated"])
def test_the_lua_script_varies_the_patient_everywhere_or_nowhere(tmp_path: Path, mode: str) -> None:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        body = tmp_path / "body.json"
        body.write_bytes(hook_body("order-select", synthetic_prefetch("small", pid=PLACEHOLDER), pid=PLACEHOLDER))
        expected_mentions = body.read_bytes().count(PLACEHOLDER.encode())
        script = tmp_path / "vary.lua"
        script.write_text(LUA)
        url = f"http://127.0.0.1:{server.server_address[1]}/cds-services/backpain-order-select"
        warm_up = run_wrk(url, body, script, mode, connections=2, seconds=1)  # as bench-wrk measures: warm-up first
        result = run_wrk(url, body, script, mode, connections=2, seconds=1)
    finally:
        server.shutdown()
        server.server_close()
    assert result["requests"] > 0 and result["errors"] == 0 and result["non2xx"] == 0
    assert len(_Recorder.seen) >= warm_up["requests"] + result["requests"]  # (and the calls still in flight)
    ids = [pid for pid, _ in _Recorder.seen]
    assert PLACEHOLDER not in "".join(ids)
    assert {m for _, m in _Recorder.seen} == {expected_mentions}  # every mention replaced, in every request
    if mode == "distinct":
        assert len(set(ids)) == len(ids)  # a new patient per call, across wrk's connections and across runs
    else:
        assert set(ids) == {"w0"}


def test_cpu_seconds_reads_the_group_of_this_process() -> None:
    before = cpu_seconds(os.getpgid(0))
    sum(i * i for i in range(2_000_000))  # some CPU in this process
    assert cpu_seconds(os.getpgid(0)) > before
