"""The fallback path end to end: no prefetch at all; the service fetches every key from a real FHIR server
(Medplum's in-memory router in sandbox/fhir-server, bearer token required) holding the synthetic patients."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cds_service.loadgen import free_port

pytestmark = pytest.mark.slow
SERVER_DIR = Path(__file__).resolve().parent.parent / "sandbox" / "fhir-server"
TOKEN = "replay-token-123"


@pytest.fixture(scope="module")
def fhir_server():
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js not installed: the in-memory FHIR server cannot run")
    if not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        pytest.skip("sandbox/fhir-server dependencies not installed (make test runs npm ci there)")
    port = free_port()
    proc = subprocess.Popen([node, "server.mjs", "--port", str(port), "--token", TOKEN], cwd=SERVER_DIR,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening"), line
    yield f"http://127.0.0.1:{port}/fhir"
    proc.terminate()
    proc.wait(timeout=10)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cds_service.cli", *args], capture_output=True, text=True, timeout=300)


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


def test_without_the_token_the_service_answers_412(fhir_server):
    replay = _cli("replay", "--json", "--fhir", fhir_server, "sandbox/patients/25-no-back-pain.expected.json")
    assert replay.returncode == 1
    assert '"HTTP 412' in replay.stdout
