"""CDS Hooks 2.0.1 protocol: discovery, request validation, status codes, the body cap, the README's settings table."""

from __future__ import annotations

import copy
import json
import re

import pytest

from cds_service.schemas import Validators
from tests.conftest import ROOT, call, hook_request

TOKEN_RE = re.compile(r"\{\{([^}]*)\}\}")
ALLOWED_TOKENS = {
    "context.patientId",
    "context.userId",
    "context.encounterId",
    "userPractitionerId",
    "userPractitionerRoleId",
    "userPatientId",
    "userRelatedPersonId",
}


def test_discovery_lists_one_service_per_hook_with_2_0_prefetch(client):
    resp = client.get("/cds-services")
    assert resp.status_code == 200
    doc = resp.get_json()
    Validators().discovery(doc)
    by_hook = {s["hook"]: s for s in doc["services"]}
    assert set(by_hook) == {"patient-view", "order-select", "order-sign"}
    for service in doc["services"]:
        assert service["title"] and service["description"]
        assert service["usageRequirements"].startswith("FHIR R4 data")
        prefetch = service["prefetch"]
        assert prefetch["patient"] == "Patient/{{context.patientId}}"
        assert prefetch["conditions"] == "Condition?patient=Patient/{{context.patientId}}"
        assert prefetch["medications"] == "MedicationRequest?patient=Patient/{{context.patientId}}"
        assert {"medicationStatements", "medicationAdministrations", "labs", "serviceRequests"} <= set(prefetch)
        assert "98979-8" in prefetch["labs"] and "29463-7" in prefetch["labs"] and "2160-0" in prefetch["labs"]
        path, query = prefetch["findings"].split("&code=")  # red-flag findings recorded as Observations
        assert path == "Observation?patient=Patient/{{context.patientId}}"
        codes = query.split(",")
        assert len(codes) == len(set(codes)) == 66 and all(c.startswith("http://snomed.info/sct|") for c in codes)
        assert {
            "http://snomed.info/sct|449813001",
            "http://snomed.info/sct|386661006",  # saddle numbness, fever
            "http://snomed.info/sct|422868009",
            "http://snomed.info/sct|228388006",
        } <= set(codes)  # weight loss, IVDU
        for template in prefetch.values():
            assert set(TOKEN_RE.findall(template)) <= ALLOWED_TOKENS, template


def test_health(client):
    assert client.get("/health").get_json()["status"] == "ok"


@pytest.mark.parametrize(
    "mutate, status, field",
    [
        (lambda b: b.pop("hook"), 400, "hook"),
        (lambda b: b.pop("hookInstance"), 400, "hookInstance"),
        (lambda b: b.update(hookInstance="not-a-uuid"), 400, "hookInstance"),
        (lambda b: b.pop("context"), 400, "context"),
        (lambda b: b["context"].pop("patientId"), 400, "context.patientId"),
        (lambda b: b["context"].pop("userId"), 400, "context.userId"),
        (lambda b: b["context"].update(patientId=123), 400, "context.patientId"),
        (lambda b: b["context"].update(patientId="Practitioner/9"), 400, "context.patientId"),
        (lambda b: b.update(context=[]), 400, "context"),
        (lambda b: b.update(prefetch=[]), 400, "prefetch"),
        (lambda b: b["prefetch"].update(patient={"id": "p1"}), 400, "prefetch.patient.resourceType"),
        (
            lambda b: b.update(
                fhirAuthorization={
                    "access_token": "secret-token",
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "scope": "patient/*.read",
                    "subject": "cds",
                }
            ),
            400,
            "fhirServer",
        ),
        (lambda b: b.update(fhirServer="ftp://example.org"), 400, "fhirServer"),
        (lambda b: b.update(hook="order-sign"), 400, "hook"),
    ],
)
def test_malformed_requests_get_400_naming_the_field(client, mutate, status, field):
    body = hook_request("patient-view")
    mutate(body)
    resp = call(client, body, "backpain-patient-view")
    assert resp.status_code == status
    outcome = resp.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue["expression"] == [field]
    assert "secret-token" not in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    "hook, drop", [("order-select", "selections"), ("order-select", "draftOrders"), ("order-sign", "draftOrders")]
)
def test_order_hooks_require_their_context(client, hook, drop):
    body = hook_request(hook, drafts=[])
    body["context"].pop(drop)
    resp = call(client, body)
    assert resp.status_code == 400
    assert resp.get_json()["issue"][0]["expression"] == [f"context.{drop}"]


def test_unknown_fields_are_ignored(client):
    body = hook_request("patient-view", extension={"com.example": {"x": 1}}, somethingNew=True)
    body["context"]["futureField"] = "ok"
    assert call(client, body).status_code == 200


@pytest.mark.parametrize("pid", ["p1", "Patient/p1"])
def test_patient_id_accepted_in_both_forms(client, pid):
    body = hook_request("patient-view", pid="p1")
    body["context"]["patientId"] = pid
    assert call(client, body).status_code == 200


def test_status_codes_for_transport_errors(client):
    assert client.post("/cds-services/nope", json=hook_request("patient-view")).status_code == 404
    assert client.get("/cds-services/backpain-patient-view").status_code == 405
    assert client.put("/cds-services").status_code == 405
    resp = client.post("/cds-services/backpain-patient-view", data="hook=patient-view", content_type="text/plain")
    assert resp.status_code == 415
    assert resp.get_json()["resourceType"] == "OperationOutcome"
    for broken in (b"{", b'{"hook": "patient-view",', b"[1, 2", b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe"):
        resp = client.post("/cds-services/backpain-patient-view", data=broken, content_type="application/json")
        assert resp.status_code == 400, broken
        assert "Traceback" not in resp.get_data(as_text=True)
    deep = b"[" * 5000 + b"]" * 5000
    assert (
        client.post("/cds-services/backpain-patient-view", data=deep, content_type="application/json").status_code
        == 400
    )
    assert (
        client.post("/cds-services/backpain-patient-view", data=b"[]", content_type="application/json").status_code
        == 400
    )


def test_body_over_the_cap_gets_413(tmp_path):
    from hooks.wsgi import create_app

    app = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "max_body_bytes": 1000})
    body = json.dumps(hook_request("patient-view", padding="x" * 2000))
    resp = app.test_client().post("/cds-services/backpain-patient-view", data=body, content_type="application/json")
    assert resp.status_code == 413
    assert resp.get_json()["issue"][0]["code"] == "too-costly"


def test_response_never_contains_empty_optional_fields(client):
    resp = call(client, hook_request("patient-view"))
    assert resp.get_json() == {"cards": []}


def test_hook_instance_may_repeat(client):
    body = hook_request("patient-view")
    assert call(client, body).status_code == 200
    assert call(client, copy.deepcopy(body)).status_code == 200


def test_readme_configuration_table_lists_every_setting():

    from cds_service.config import reference

    readme = (ROOT / "README.md").read_text()
    for key, _default, reason in reference():
        assert f"| `{key}` |" in readme and reason.replace("|", "\\|") in readme, key
