"""Shared fixtures: a pinned clock, deterministic uuids, strict outbound mocks and request builders."""

from __future__ import annotations

import copy
import itertools
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses

from cds_service.build_info import compiled_modules
from hooks.wsgi import create_app

ROOT = Path(__file__).resolve().parent.parent  # the checkout
FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
PREFETCH_KEYS = (
    "patient",
    "conditions",
    "medications",
    "medicationStatements",
    "medicationAdministrations",
    "labs",
    "findings",
    "serviceRequests",
    "procedures",
    "imagingStudies",
    "diagnosticReports",
    "allergies",
)
PUBLIC_IP = "93.184.216.34"
# The least a production configuration must say (Settings._validate_production); tests add what they examine.
PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "public_base_url": "https://cds.hospital.example",
    "fhir_allowed_origins": ["https://*"],
    "cors_origins": ["https://sandbox.cds-hooks.org"],
    "trusted_clients": [{"iss": "https://ehr.example.org", "jku": "https://ehr.example.org/.well-known/jwks.json"}],
    "metrics_port": 9464,  # metrics on their own listener, not openly on the hook port
}


def fake_resolver(host: str, port: int) -> list[str]:
    """Tests never touch DNS: every test host 'resolves' to a public address unless named otherwise."""
    table = {
        "metadata.internal": ["169.254.169.254"],
        "intranet.example.org": ["10.0.0.7"],
        "mapped.example.org": ["::ffff:127.0.0.1"],
        "v6local.example.org": ["fe80::1"],
    }
    return table.get(host, [PUBLIC_IP])


def sequential_uuids() -> Any:
    counter = itertools.count(1)
    return lambda: str(uuid.UUID(int=next(counter)))


def sample(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "public-sandbox" / f"{name}.json").read_text())


@pytest.fixture
def settings(tmp_path: Path) -> dict[str, Any]:
    return {"database_url": f"sqlite:///{tmp_path}/feedback.sqlite3", "validate_responses": True}


@pytest.fixture
def app(settings: dict[str, Any]):
    return create_app(settings, clock=lambda: NOW, resolver=fake_resolver, uuid_factory=sequential_uuids())


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def http(app):
    """The service over HTTP (Flask's test client), where a directory's own ``client`` evaluates in process."""
    return app.test_client()


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def patient(pid: str = "p1", birth: str = "1970-05-01", gender: str = "female") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "birthDate": birth, "gender": gender}


def hook_request(
    hook: str,
    *,
    pid: str = "p1",
    prefetch: dict[str, Any] | None = None,
    drafts: list[dict[str, Any]] | None = None,
    selections: list[str] | None = None,
    complete: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A spec-valid request; ``complete`` fills every prefetch key not given with null (no outbound fetch)."""
    context: dict[str, Any] = {"userId": "Practitioner/u1", "patientId": pid}
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = bundle(*(drafts or []))
        context["draftOrders"]["type"] = "collection"
    if hook == "order-select":
        context["selections"] = (
            selections if selections is not None else [f"{d['resourceType']}/{d['id']}" for d in drafts or []]
        )
    given = copy.deepcopy(prefetch or {})
    given.setdefault("patient", patient(pid))
    if complete:
        for key in PREFETCH_KEYS:
            given.setdefault(key, None)
    body = {"hook": hook, "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "context": context, "prefetch": given}
    body.update(extra)
    return body


SERVICE = {
    "patient-view": "backpain-patient-view",
    "order-select": "backpain-order-select",
    "order-sign": "backpain-order-sign",
}


def call(client, body: dict[str, Any], service: str | None = None):
    # buffered: the response is finished and closed, as a WSGI server does (after-response work runs then)
    if hasattr(client, "evaluate"):  # the rules in process (tests/hooks/conftest.py): the same cards, no HTTP
        resp = client.evaluate(body)
    else:
        resp = client.post(f"/cds-services/{service or SERVICE[body['hook']]}", json=body, buffered=True)
    if resp.status_code == 200:
        for card in resp.get_json().get("cards", []):
            assert_markdown_tables_whole(card.get("detail", ""))
    return resp


def assert_markdown_tables_whole(detail: str) -> None:
    """Every table in a card's detail is one block: a header, its separator row, then rows (a blank line inside a table
    breaks it into two, and the rows after the blank line render as text)."""
    for block in detail.split("\n\n"):
        lines = block.strip("\n").split("\n")
        rows = [line for line in lines if line.startswith("|")]
        if rows:
            assert rows == lines and len(rows) >= 2 and set(rows[1].replace("|", "")) <= {"-", ":", " "}, block


def topics(resp) -> list[tuple[str, str]]:
    assert resp.status_code == 200, resp.get_json()
    return [(c["source"]["topic"]["code"], c["indicator"]) for c in resp.get_json()["cards"]]


# --- every log line of the whole suite is checked for secrets --------------------------------------------------------


class _Capture:
    def __init__(self) -> None:
        import logging

        from cds_service.logs import JSONFormatter

        self.lines: list[str] = []
        self.handler = logging.Handler()
        formatter = JSONFormatter()
        self.handler.emit = lambda record: self.lines.append(formatter.format(record))  # type: ignore[method-assign]


SECRET_MARKERS = ("tok-123-SECRET", "secret-token", "eyJ")  # bearer tokens used by the tests; any JWT starts with eyJ


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs():
    import logging
    import re

    capture = _Capture()
    logger = logging.getLogger("backpain_cds")
    logger.addHandler(capture.handler)
    yield capture
    logger.removeHandler(capture.handler)
    leaks = [
        line for line in capture.lines if any(m in line for m in SECRET_MARKERS) or re.search(r"Bearer\s+\S", line)
    ]
    assert not leaks, f"secrets in logs: {leaks[:3]}"
    bodies = [
        line for line in capture.lines if '"resourceType"' in line
    ]  # FHIR content: records are logged as Type/id only
    assert not bodies, f"request bodies in logs: {bodies[:1]}"


POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture(scope="module")
def own_database() -> Iterator[str]:
    """A PostgreSQL database of the module's own, dropped afterwards: other suites use `test` and drop its tables."""
    try:
        import psycopg

        admin = psycopg.connect(f"{POSTGRES_SERVER}/postgres", connect_timeout=3, autocommit=True)
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(exc).__name__}: {exc})")
    name = f"bpcds_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # a killed server's connections too
        admin.close()


def pytest_sessionstart(session: pytest.Session) -> None:
    """``make test-compiled`` sets BPCDS_EXPECT_COMPILED=1: its run must test the compiled modules, not a source tree
    that happened to come first on the path."""
    if os.environ.get("BPCDS_EXPECT_COMPILED") == "1" and not compiled_modules():
        raise pytest.UsageError("BPCDS_EXPECT_COMPILED=1, but the service's modules are not compiled here")
