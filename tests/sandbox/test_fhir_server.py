"""The fallback path end to end: no prefetch at all; the service fetches every key from a real FHIR server
(Medplum's in-memory router in sandbox/fhir-server, bearer token required) holding the synthetic patients."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from bench.loadgen import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
SERVER_DIR = ROOT / "sandbox" / "fhir-server"
TOKEN = "replay-token-123"


@pytest.fixture(scope="module")
def fhir_server():
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js not installed: the in-memory FHIR server cannot run")
    if not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        pytest.skip("sandbox/fhir-server dependencies not installed (make test runs npm ci there)")
    port = free_port()
    proc = subprocess.Popen(
        [node, "server.mjs", "--port", str(port), "--token", TOKEN],
        cwd=SERVER_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("listening"), line
    yield f"http://127.0.0.1:{port}/fhir"
    proc.terminate()
    proc.wait(timeout=10)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hooks.cli", *args], capture_output=True, text=True, timeout=300)


def test_fhir_server_requires_the_bearer_token(fhir_server):
    import requests

    assert requests.get(f"{fhir_server}/Patient", timeout=5).status_code == 401


def test_every_patient_through_the_fallback_fetch_path(fhir_server):
    loaded = _cli("load-patients", "--fhir", fhir_server, "--token", TOKEN)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert loaded.stdout.count("loaded ") >= 20
    replay = _cli("replay", "--no-colour", "--fhir", fhir_server, "--fhir-token", TOKEN)
    print(replay.stdout[-1500:])
    assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-2000:]
    assert ", 0 failed" in replay.stdout


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_patient_searches_by_bare_id_and_by_reference_give_the_same_records(fhir_server, method):
    import requests

    loaded = _cli(
        "load-patients",
        "--fhir",
        fhir_server,
        "--token",
        TOKEN,
        "sandbox/patients/06-ketorolac-iv-then-oral.bundle.json",
    )
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def ids(patient: str) -> list[str]:
        if method == "GET":
            resp = requests.get(f"{fhir_server}/Condition", params={"patient": patient}, headers=auth, timeout=10)
        else:  # the CDS Hooks sandbox searches by POST first
            resp = requests.post(
                f"{fhir_server}/Condition/_search", data={"patient": patient}, headers=auth, timeout=10
            )
        assert resp.status_code == 200
        return sorted(e["resource"]["id"] for e in resp.json().get("entry", []))

    assert ids("bp06") == ids("Patient/bp06") == ["bp06-cond1"]


def test_without_the_token_the_service_answers_412(fhir_server):
    replay = _cli("replay", "--json", "--fhir", fhir_server, "sandbox/patients/25-no-back-pain.expected.json")
    assert replay.returncode == 1
    assert '"HTTP 412' in replay.stdout
