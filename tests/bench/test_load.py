"""The production server under bounded load on 127.0.0.1 (small counts; figures printed, no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

import orjson
import pytest
import requests

from bench.bench import distinct_bodies, load_and_durability
from bench.charts import hook_body, synthetic_prefetch
from bench.loadgen import ServerProcess

pytestmark = pytest.mark.slow


def test_make_serve_equivalent_answers_discovery():
    with ServerProcess(workers=1) as server:
        resp = requests.get(f"{server.url}/cds-services", timeout=5)
        assert resp.status_code == 200
        assert {s["id"] for s in resp.json()["services"]} == {
            "backpain-patient-view",
            "backpain-order-select",
            "backpain-order-sign",
        }
        assert resp.headers["Server"].startswith("gunicorn")
        assert (server.dir / "server.log").exists()
    assert server.proc.poll() is not None  # stopped by its pid
    assert not server.dir.exists()  # and its directory removed


def test_load_zero_errors_and_no_acknowledged_feedback_lost_even_on_kill(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the servers' directories are made
    report = load_and_durability(workers=2, requests_per_kind=40, concurrency=6, max_seconds=60, kill_after=0.8)
    print(json.dumps(report))
    assert report["load"]["errors"] == 0
    assert report["load"]["statuses"] == {200: 80}
    assert report["load"]["feedback_acknowledged"] == 40 and report["load"]["feedback_missing"] == 0
    assert report["kill"]["acknowledged"] > 0
    assert report["kill"]["missing_after_kill"] == 0
    assert list(tmp_path.iterdir()) == []  # both servers removed their directories once read


def test_benchmark_runs_and_writes_its_table(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hooks.cli",
            "bench",
            "--sizes",
            "small",
            "--hooks",
            "order-select",
            "--concurrency",
            "2",
            "--runs",
            "1",
            "--requests",
            "20",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(proc.stdout)
    result = json.loads(out.read_text())
    assert [r["payloads"] for r in result["rows"]] == ["repeated", "distinct"]
    for row in result["rows"]:
        assert row["size"] == "small" and row["concurrency"] == 2 and row["service"]["errors"] == 0
        assert row["ratio_p50"] is not None and row["service"]["requests"] == 20
    assert result["machine"]["cores"] >= 1
    assert proc.stdout.count("| small (20 res.") == 2  # the README table, one line per row
    assert result["replay"]["patients"] >= 20


def test_distinct_bodies_are_the_same_chart_for_patients_never_seen_before():
    base = hook_body("order-select", synthetic_prefetch("typical"))
    bodies = distinct_bodies(base, "bench-1", 3, "t")
    parsed = [orjson.loads(b) for b in bodies]
    assert [p["context"]["patientId"] for p in parsed] == ["t-0", "t-1", "t-2"]
    assert all(b"bench-1" not in b for b in bodies) and len({bytes(b) for b in bodies}) == 3
    for k, p in enumerate(parsed):  # renamed everywhere, nothing else changed
        assert p["prefetch"]["patient"]["id"] == f"t-{k}"
        subjects = {
            e["resource"]["subject"]["reference"]
            for key in ("conditions", "medications", "labs")
            for e in p["prefetch"][key]["entry"]
        }
        assert subjects == {f"Patient/t-{k}"}
        assert (
            orjson.loads(bodies[k].replace(f"t-{k}".encode(), b"bench-1"))["prefetch"] == orjson.loads(base)["prefetch"]
        )


def test_a_server_whose_start_fails_unexpectedly_is_stopped(monkeypatch):
    import bench.loadgen as loadgen

    def broken(*args, **kwargs):
        raise ValueError("unexpected")

    monkeypatch.setattr(loadgen.requests, "get", broken)
    server = ServerProcess(workers=1, floor=True)
    with pytest.raises(ValueError), server:
        pass
    assert server.proc.poll() is not None  # stopped, by its process group
    assert not server.dir.exists()
