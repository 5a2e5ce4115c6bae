"""GET /metrics: hook calls, cards, prefetch fetches, 412s, auth failures and feedback counted (Prometheus text format,
parsed back); the bearer-token protection and the separate port; and the sum over two gunicorn workers."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.loadgen import ServerProcess, free_port
from cds_service import auth
from cds_service.auth import AUTH_FAILURE_REASONS, auth_failure_code
from cds_service.errors import FHIRAccessError, FHIRTargetRefused, fetch_failure_reason
from hooks.wsgi import create_app
from tests.cds_service.auth_support import post, token
from tests.cds_service.prefetch_support import BASE, _missing
from tests.conftest import NOW, ROOT, call, fake_resolver, hook_request, sequential_uuids

KETOROLAC = json.loads((ROOT / "sandbox/examples/order-select-ketorolac.json").read_text())
ORDER_SELECT = "backpain-order-select"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape: (name, labels) → value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


def scrape(client, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain")
    return samples(resp.get_data(as_text=True))


def test_a_hook_call_counts_its_request_latency_and_cards(client):
    assert call(client, KETOROLAC).status_code == 200
    m = scrape(client)
    assert value(m, "backpain_cds_requests_total", endpoint="hook", service=ORDER_SELECT, status="200") == 1
    assert value(m, "backpain_cds_request_duration_seconds_count", endpoint="hook", service=ORDER_SELECT) == 1
    assert value(m, "backpain_cds_request_duration_seconds_sum", endpoint="hook", service=ORDER_SELECT) > 0
    topic = dict(service=ORDER_SELECT, topic="ketorolac-duration", indicator="critical")
    assert value(m, "backpain_cds_cards_total", **topic) == 1
    assert call(client, KETOROLAC).status_code == 200
    assert value(scrape(client), "backpain_cds_cards_total", **topic) == 2


def test_health_ready_and_metrics_are_not_counted_as_requests(client):
    client.get("/health")
    client.get("/ready")
    client.get("/metrics")
    assert not [k for k in scrape(client) if k[0] == "backpain_cds_requests_total"]


def test_an_unknown_service_id_is_counted_as_unknown_not_as_its_text(client):
    assert client.post("/cds-services/evil-%0Aname", json=hook_request("patient-view")).status_code == 404
    m = scrape(client)
    assert value(m, "backpain_cds_requests_total", endpoint="hook", service="unknown", status="404") == 1
    assert "evil" not in client.get("/metrics").get_data(as_text=True)


def test_a_412_and_its_failed_fetch_are_counted_by_key_and_reason(client, mocked):
    mocked.get(f"{BASE}/Condition", status=500, body="oops")
    assert call(client, _missing("conditions")).status_code == 412
    m = scrape(client)
    service = "backpain-patient-view"
    assert value(m, "backpain_cds_requests_total", endpoint="hook", service=service, status="412") == 1
    assert value(m, "backpain_cds_prefetch_unavailable_responses_total", service=service, key="conditions") == 1
    assert value(m, "backpain_cds_prefetch_fetches_total", key="conditions", outcome="failed") == 1
    assert value(m, "backpain_cds_prefetch_failures_total", reason="status") == 1


def test_a_successful_fallback_fetch_is_counted(client, mocked):
    mocked.get(f"{BASE}/Condition", json={"resourceType": "Bundle", "type": "searchset", "entry": []})
    assert call(client, _missing("conditions")).status_code == 200
    m = scrape(client)
    assert value(m, "backpain_cds_prefetch_fetches_total", key="conditions", outcome="fetched") == 1
    assert not [k for k in m if k[0] == "backpain_cds_prefetch_failures_total"]


@pytest.mark.parametrize(
    "exc, reason",
    [
        (FHIRAccessError("per-call deadline exceeded"), "deadline"),
        (FHIRAccessError("name resolution did not finish within the per-call deadline"), "deadline"),
        (FHIRAccessError("FHIR server timed out"), "timeout"),
        (FHIRAccessError("FHIR server unreachable (ConnectionError)"), "unreachable"),
        (FHIRAccessError("FHIR server answered HTTP 503", fhir_status=503), "status"),
        (FHIRAccessError("FHIR response larger than the configured cap"), "size_cap"),
        (FHIRAccessError("paged search exceeds the page/entry cap"), "page_cap"),
        (FHIRAccessError("FHIR server returned non-JSON"), "invalid_response"),
        (FHIRAccessError("FHIR server returned JSON that is not a resource"), "invalid_response"),
        (FHIRAccessError("cannot resolve host (Name or service not known)"), "dns"),
        (FHIRAccessError("host has no address"), "dns"),
        (FHIRAccessError("FHIR server answered an OperationOutcome"), "operation_outcome"),
        (FHIRAccessError("no fhirServer in the request"), "no_fhir_server"),
        (FHIRAccessError("template token cannot be resolved from the context"), "context_token"),
        (FHIRTargetRefused("FHIR server answered a redirect (302); not followed"), "redirect"),
        (FHIRTargetRefused("private-network address"), "refused_target"),
        (FHIRTargetRefused("credentials in URL"), "refused_target"),
        (FHIRAccessError("fhirServer is not on the allowlist"), "refused_target"),  # re-raised by prefetch.resolve
        (FHIRAccessError("something new"), "other"),
    ],
)
def test_fetch_failures_map_to_a_fixed_reason(exc, reason):
    assert fetch_failure_reason(exc) == reason


def test_every_refusal_the_authenticator_can_give_has_a_reason_code():
    """Every literal reason in auth.py maps to a code (never "other"); a hostile alg cannot choose one."""
    source = Path(auth.__file__).read_text()
    reasons = re.findall(r'Unauthorized\(\s*f?"([^"]*)"', source)
    assert len(reasons) >= 20
    for reason in reasons:
        assert auth_failure_code(reason.replace("{", "").replace("}", "")) in AUTH_FAILURE_REASONS - {"other"}, reason
    assert auth_failure_code("algorithm 'issuer not trusted' not allowed") == "algorithm"
    assert auth_failure_code("invalid token (ExpiredSignatureError)") == "expired"
    assert auth_failure_code("anything else") == "other"


def test_auth_failures_are_counted_by_reason_code_never_by_their_text(secured):
    client = secured()
    assert post(client, None).status_code == 401
    assert post(client, token(claims={"iss": "https://attacker.example/\nfree-text"})).status_code == 401
    m = scrape(client)
    assert value(m, "backpain_cds_auth_failures_total", reason="missing_token") == 1
    assert value(m, "backpain_cds_auth_failures_total", reason="untrusted_issuer") == 1
    assert value(m, "backpain_cds_requests_total", endpoint="hook", service="backpain-patient-view", status="401") == 2
    text = client.get("/metrics").get_data(as_text=True)
    assert "attacker" not in text and "eyJ" not in text


def test_feedback_outcomes_are_counted_by_the_card_topic(app, client):
    card = call(client, KETOROLAC).get_json()["cards"][0]
    app.extensions["backpain"]["ledger"].flush()  # the issued card's topic is recorded off the call's path
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-22T03:32:27.155Z"}
    assert client.post(f"/cds-services/{ORDER_SELECT}/feedback", json={"feedback": [item]}).status_code == 200
    unknown = {**item, "card": "never-issued", "outcome": "accepted"}
    assert client.post(f"/cds-services/{ORDER_SELECT}/feedback", json={"feedback": [unknown]}).status_code == 200
    m = scrape(client)
    labels = dict(service=ORDER_SELECT, topic="ketorolac-duration")
    assert value(m, "backpain_cds_feedback_total", **labels, outcome="overridden") == 1
    assert value(m, "backpain_cds_feedback_total", **labels, outcome="accepted") == 0
    assert value(m, "backpain_cds_feedback_total", service=ORDER_SELECT, topic="unknown", outcome="accepted") == 1
    assert value(m, "backpain_cds_requests_total", endpoint="feedback", service=ORDER_SELECT, status="200") == 2


def _app(tmp_path, **settings):
    base = {"database_url": f"sqlite:///{tmp_path}/f.db"}
    return create_app(
        {**base, **settings}, clock=lambda: NOW, resolver=fake_resolver, uuid_factory=sequential_uuids()
    ).test_client()


def test_a_bearer_token_file_protects_metrics_on_the_main_port(tmp_path):
    secret = tmp_path / "metrics-token"
    secret.write_text("metrics-secret-token\n")  # the trailing newline of an editor or a Secret mount is not part
    client = _app(tmp_path, metrics_bearer_token_file=str(secret))
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics").headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Basic metrics-secret-token"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer metrics-secret-token"}).status_code == 200
    assert client.get("/health").status_code == 200  # only /metrics is behind the token


def test_an_empty_token_file_is_refused_at_start(tmp_path):
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="metrics_bearer_token_file is empty"):
        _app(tmp_path, metrics_bearer_token_file=str(tmp_path / "empty"))


@pytest.mark.parametrize("settings", [{"metrics_enabled": False}, {"metrics_port": 9464}])
def test_no_metrics_on_the_main_port_when_off_or_on_their_own_port(tmp_path, settings):
    client = _app(tmp_path, **settings)
    assert client.get("/metrics").status_code == 404
    assert call(client, KETOROLAC).status_code == 200  # the service itself is unchanged


# --- under gunicorn: two workers, one sum ------------------------------------------------------------------------


def _calls(url: str, count: int) -> None:
    """``count`` hook calls from four threads at once, so both workers take some."""
    statuses: list[int] = []

    def worker(n: int) -> None:
        for _ in range(n):
            resp = requests.post(f"{url}/cds-services/{ORDER_SELECT}", json=KETOROLAC, timeout=10)
            statuses.append(resp.status_code)

    threads = [threading.Thread(target=worker, args=(count // 4,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [200] * count


@pytest.mark.slow
def test_metrics_sum_over_the_gunicorn_workers(tmp_path):
    directory = tmp_path / "metrics"
    with ServerProcess(workers=2, extra_config=f'metrics_dir = "{directory}"\n') as server:
        _calls(server.url, 12)
        m = samples(requests.get(f"{server.url}/metrics", timeout=10).text)
        assert value(m, "backpain_cds_requests_total", endpoint="hook", service=ORDER_SELECT, status="200") == 12
        assert value(m, "backpain_cds_request_duration_seconds_count", endpoint="hook", service=ORDER_SELECT) == 12
        topic = dict(service=ORDER_SELECT, topic="ketorolac-duration", indicator="critical")
        assert value(m, "backpain_cds_cards_total", **topic) == 12
        workers = {p.stem.rsplit("_", 1)[1] for p in directory.glob("counter_*.db")}
        assert len(workers) >= 1  # a file per worker that counted (two in every run seen; the kernel spreads calls)
    assert not list(directory.glob("*.db"))  # the server empties the directory it was given when it stops


@pytest.mark.slow
def test_metrics_on_their_own_port_served_by_the_master(tmp_path):
    port = free_port()
    with ServerProcess(workers=2, extra_config=f"metrics_port = {port}\n") as server:
        _calls(server.url, 8)
        assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 404  # not on the hook port
        m = samples(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
        assert value(m, "backpain_cds_requests_total", endpoint="hook", service=ORDER_SELECT, status="200") == 8
