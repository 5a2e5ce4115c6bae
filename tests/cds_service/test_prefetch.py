"""Prefetch resolution exactly as the spec table; the FHIR client's limits (pages, size, timeouts, FHIR version)."""

from __future__ import annotations

import pytest
import requests
import responses
from responses import matchers

from cds_service.config import load_settings
from cds_service.errors import FHIRAccessError
from cds_service.fhir_client import FHIRClient
from cds_service.prefetch import render
from hooks.wsgi import create_app
from tests.cds_service.prefetch_support import AUTH, BASE, _missing
from tests.conftest import NOW, PREFETCH_KEYS, bundle, call, fake_resolver, hook_request, patient

EMPTY = {"resourceType": "Bundle", "type": "searchset", "entry": []}


def test_render_url_encodes_token_values():
    assert render("Patient/{{context.patientId}}", {"patientId": "a b/c?d"}) == "Patient/a%20b%2Fc%3Fd"
    assert render("Condition?patient={{context.patientId}}", {"patientId": "Patient/123"}) == "Condition?patient=123"
    assert render("Practitioner/{{userPractitionerId}}", {"userId": "Practitioner/9"}) == "Practitioner/9"
    assert render("Practitioner/{{userPractitionerId}}", {"userId": "PractitionerRole/9"}) is None
    assert render("Encounter/{{context.encounterId}}", {}) is None


def test_absent_key_is_fetched_with_exact_url_and_bearer_token(client, mocked):
    mocked.get(
        f"{BASE}/Condition",
        match=[
            matchers.query_string_matcher("patient=Patient/p1"),
            matchers.header_matcher({"Authorization": "Bearer tok-123-SECRET"}),
        ],
        json=EMPTY,
    )
    resp = call(client, _missing("conditions"))
    assert resp.status_code == 200
    assert len(mocked.calls) == 1
    assert mocked.calls[0].request.url == f"{BASE}/Condition?patient=Patient/p1"
    assert mocked.calls[0].request.headers["Accept"].startswith("application/fhir+json")


def test_open_server_needs_no_token(client, mocked):
    body = _missing("patient")
    body.pop("fhirAuthorization")
    mocked.get(f"{BASE}/Patient/p1", json=patient("p1"))
    assert call(client, body).status_code == 200
    assert "Authorization" not in mocked.calls[0].request.headers


def test_patient_id_with_reference_form_is_encoded_bare(client, mocked):
    body = _missing("medications")
    body["context"]["patientId"] = "Patient/p1"
    mocked.get(f"{BASE}/MedicationRequest", match=[matchers.query_string_matcher("patient=Patient/p1")], json=EMPTY)
    assert call(client, body).status_code == 200


def test_null_means_empty_and_is_never_refetched(client, mocked):
    assert call(client, hook_request("patient-view", fhirServer=BASE, fhirAuthorization=AUTH)).status_code == 200
    assert len(mocked.calls) == 0


def test_operation_outcome_is_refetched(client, mocked):
    body = hook_request("patient-view", fhirServer=BASE)
    body["prefetch"]["conditions"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    mocked.get(f"{BASE}/Condition", json=EMPTY)
    assert call(client, body).status_code == 200
    assert len(mocked.calls) == 1


def test_operation_outcome_without_server_is_412(client):
    body = hook_request("patient-view")
    body["prefetch"]["conditions"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    resp = call(client, body)
    assert resp.status_code == 412
    assert resp.get_json()["issue"][0]["expression"] == ["prefetch.conditions"]


def test_optional_key_unobtainable_is_not_fatal(client):
    body = hook_request("patient-view")
    body["prefetch"].pop("labs")
    assert call(client, body).status_code == 200


def test_paged_prefetch_follows_next_on_same_origin(client, mocked):
    page1 = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "next", "url": f"{BASE}/Condition?page=2"}],
        "entry": [],
    }
    mocked.get(
        f"{BASE}/Condition",
        match=[matchers.query_string_matcher("page=2")],
        json={"resourceType": "Bundle", "type": "searchset", "entry": []},
    )
    body = hook_request("patient-view", fhirServer=BASE)
    body["prefetch"]["conditions"] = page1
    assert call(client, body).status_code == 200
    assert mocked.calls[0].request.url == f"{BASE}/Condition?page=2"


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example.org/fhir/Condition?page=2",
        "http://ehr.example.org/fhir/Condition?page=2",
        "https://ehr.example.org:8443/fhir/Condition?page=2",
    ],
)
def test_next_link_on_another_origin_is_not_followed(client, mocked, next_url):
    body = hook_request("patient-view", fhirServer=BASE)
    body["prefetch"]["conditions"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [],
        "link": [{"relation": "next", "url": next_url}],
    }
    resp = call(client, body)
    assert resp.status_code == 412
    assert len(mocked.calls) == 0


def test_page_cap(tmp_path, mocked):
    app = create_app(
        {"database_url": f"sqlite:///{tmp_path}/f.db", "fhir_max_pages": 3}, resolver=fake_resolver, clock=lambda: NOW
    )
    for i in range(2, 4):
        mocked.get(
            f"{BASE}/Condition",
            match=[matchers.query_string_matcher(f"page={i}")],
            json={
                "resourceType": "Bundle",
                "link": [{"relation": "next", "url": f"{BASE}/Condition?page={i + 1}"}],
                "entry": [],
            },
        )
    body = hook_request("patient-view", fhirServer=BASE)
    body["prefetch"]["conditions"] = {
        "resourceType": "Bundle",
        "link": [{"relation": "next", "url": f"{BASE}/Condition?page=2"}],
        "entry": [],
    }
    resp = call(app.test_client(), body)
    assert resp.status_code == 412
    assert len(mocked.calls) == 2


@pytest.mark.parametrize(
    "reply",
    [
        dict(status=401, json={"resourceType": "OperationOutcome"}),
        dict(status=403, json={}),
        dict(status=404, json={}),
        dict(status=500, body="oops"),
        dict(status=200, body="<html>not json</html>"),
        dict(status=200, json=[1, 2, 3]),
        dict(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data"}),
        dict(status=200, body=requests.exceptions.ConnectTimeout("slow")),
        dict(status=200, body=requests.exceptions.ReadTimeout("slow")),
        dict(status=200, body=requests.exceptions.ConnectionError("refused")),
    ],
)
def test_fhir_server_failures_give_412_naming_the_key_never_the_token(client, mocked, reply):
    mocked.get(f"{BASE}/Condition", **reply)
    resp = call(client, _missing("conditions"))
    assert resp.status_code == 412
    text = resp.get_data(as_text=True)
    assert "prefetch.conditions" in text and "tok-123-SECRET" not in text
    urls = [c.request.url.split("?")[0] for c in mocked.calls]
    # no redirect followed, no retry storm; a 4xx "unknown type" answer also asks the server its FHIR version once
    expected = [f"{BASE}/Condition"] + ([f"{BASE}/metadata"] if reply.get("status") in (404,) else [])
    assert urls == expected


def test_response_size_cap(tmp_path, mocked):
    app = create_app(
        {"database_url": f"sqlite:///{tmp_path}/f.db", "fhir_max_response_bytes": 2000}, resolver=fake_resolver
    )
    mocked.get(
        f"{BASE}/Condition",
        json={"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Basic", "id": "x" * 5000}}]},
    )
    assert call(app.test_client(), _missing("conditions")).status_code == 412


def test_timeouts_and_no_redirects_are_passed_to_requests(monkeypatch):
    settings = load_settings(overrides={"fhir_connect_timeout": 1.5, "fhir_read_timeout": 2.0})
    seen = {}

    class Session(requests.Session):
        def get(self, url, **kw):  # type: ignore[override]
            seen.update(kw)
            raise requests.exceptions.ConnectTimeout()

    client = FHIRClient(BASE, settings, session=Session(), resolver=fake_resolver)
    with pytest.raises(FHIRAccessError):
        client.read("Patient/1")
    assert seen["allow_redirects"] is False and seen["stream"] is True
    connect, read = seen["timeout"]
    assert 0 < connect <= 1.5 and 0 < read <= 2.0


def test_deadline_across_all_fetches(tmp_path, mocked):
    app = create_app(
        {"database_url": f"sqlite:///{tmp_path}/f.db", "fhir_call_deadline": 0.5, "fhir_read_timeout": 0.5},
        resolver=fake_resolver,
    )
    import time

    def slow(request):
        time.sleep(0.3)
        return (200, {}, '{"resourceType": "Bundle", "entry": []}')

    mocked.add_callback(responses.GET, f"{BASE}/Condition", callback=slow)
    mocked.add_callback(responses.GET, f"{BASE}/MedicationRequest", callback=slow)
    mocked.assert_all_requests_are_fired = False
    started = time.monotonic()
    resp = call(app.test_client(), _missing("conditions", "medications", "serviceRequests"))
    assert resp.status_code == 412
    assert time.monotonic() - started < 1.5
    assert len(mocked.calls) <= 2


def test_missing_keys_without_fhir_server_give_412():
    from tests.conftest import sequential_uuids  # noqa: F401

    body = hook_request("patient-view")
    for key in PREFETCH_KEYS:
        body["prefetch"].pop(key, None)
    app = create_app({"database_url": "sqlite:///:memory:"}, resolver=fake_resolver)
    resp = call(app.test_client(), body)
    assert resp.status_code == 412
    assert resp.get_json()["issue"][0]["expression"] == ["prefetch.patient"]


def test_prefetched_bundle_used_as_is(client, mocked):
    body = hook_request("patient-view", prefetch={"conditions": bundle()})
    assert call(client, body).status_code == 200
    assert len(mocked.calls) == 0


@pytest.mark.parametrize(
    "metadata, expected",
    [
        ({"resourceType": "Conformance", "fhirVersion": "1.0.2"}, "DSTU2"),
        ({"resourceType": "CapabilityStatement", "fhirVersion": "3.0.2"}, "STU3"),
    ],
)
def test_pre_r4_fhir_server_gets_one_clear_info_card_instead_of_412(client, mocked, metadata, expected):
    body = hook_request("patient-view", fhirServer=BASE)
    body["prefetch"].pop("medications")
    mocked.get(f"{BASE}/MedicationRequest", status=404, json={"resourceType": "OperationOutcome"})
    mocked.get(f"{BASE}/metadata", json=metadata)
    resp = call(client, body)
    assert resp.status_code == 200
    [card] = resp.get_json()["cards"]
    assert card["indicator"] == "info" and card["source"]["topic"]["code"] == "fhir-version-unsupported"
    assert card["summary"] == f"This EHR's FHIR server is {expected}: back-pain checks need FHIR R4 and were not run."
    assert "`medications`" in card["detail"]


def test_r4_server_that_fails_still_gets_412(client, mocked):
    body = hook_request("patient-view", fhirServer=BASE)
    body["prefetch"].pop("medications")
    mocked.get(f"{BASE}/MedicationRequest", status=404, json={"resourceType": "OperationOutcome"})
    mocked.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"})
    assert call(client, body).status_code == 412


def test_fhir_server_401_still_gives_our_412(client, mocked):
    mocked.get(f"{BASE}/Condition", status=401, json={"resourceType": "OperationOutcome"})
    resp = call(client, _missing("conditions"))
    assert resp.status_code == 412
    assert resp.get_json()["issue"][0]["code"] == "incomplete"
