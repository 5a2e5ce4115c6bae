"""CDS Hooks 2.0.1 protocol: discovery, request validation, status codes, CORS, captured sandbox requests."""

from __future__ import annotations

import copy
import json
import re

import pytest
from responses import matchers

from cds_service.schemas import Validators
from tests.conftest import FIXTURES, PREFETCH_KEYS, PRODUCTION, ROOT, call, hook_request, sample, topics

TOKEN_RE = re.compile(r"\{\{([^}]*)\}\}")
ALLOWED_TOKENS = {"context.patientId", "context.userId", "context.encounterId", "userPractitionerId",
                  "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}


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
        assert {"http://snomed.info/sct|449813001", "http://snomed.info/sct|386661006",  # saddle numbness, fever
                "http://snomed.info/sct|422868009", "http://snomed.info/sct|228388006"} <= set(codes)  # weight loss, IVDU
        for template in prefetch.values():
            assert set(TOKEN_RE.findall(template)) <= ALLOWED_TOKENS, template


def test_health(client):
    assert client.get("/health").get_json()["status"] == "ok"


@pytest.mark.parametrize("mutate, status, field", [
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
    (lambda b: b.update(fhirAuthorization={"access_token": "secret-token", "token_type": "Bearer", "expires_in": 300,
                                           "scope": "patient/*.read", "subject": "cds"}), 400, "fhirServer"),
    (lambda b: b.update(fhirServer="ftp://example.org"), 400, "fhirServer"),
    (lambda b: b.update(hook="order-sign"), 400, "hook"),
])
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


@pytest.mark.parametrize("hook, drop", [("order-select", "selections"), ("order-select", "draftOrders"), ("order-sign", "draftOrders")])
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
    assert client.post("/cds-services/backpain-patient-view", data=deep, content_type="application/json").status_code == 400
    assert client.post("/cds-services/backpain-patient-view", data=b"[]", content_type="application/json").status_code == 400


def test_body_over_the_cap_gets_413(tmp_path):
    from hooks.wsgi import create_app

    app = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "max_body_bytes": 1000})
    body = json.dumps(hook_request("patient-view", padding="x" * 2000))
    resp = app.test_client().post("/cds-services/backpain-patient-view", data=body, content_type="application/json")
    assert resp.status_code == 413
    assert resp.get_json()["issue"][0]["code"] == "too-costly"


def test_cors_preflight_and_private_network_access(client):
    resp = client.options("/cds-services/backpain-order-select", headers={
        "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization", "Access-Control-Request-Private-Network": "true"})
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://sandbox.cds-hooks.org"
    assert resp.headers["Access-Control-Allow-Private-Network"] == "true"
    assert {"GET", "POST", "OPTIONS"} <= set(resp.headers["Access-Control-Allow-Methods"].replace(" ", "").split(","))
    assert {"content-type", "authorization"} <= set(resp.headers["Access-Control-Allow-Headers"].lower().replace(" ", "").split(","))
    other = client.options("/cds-services", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_response_never_contains_empty_optional_fields(client):
    resp = call(client, hook_request("patient-view"))
    assert resp.get_json() == {"cards": []}


# --- the captured public-sandbox requests ------------------------------------------------------------------------

SANDBOX_SERVICES = {"patient-view": "backpain-patient-view", "order-select": "backpain-order-select",
                    "order-sign": "backpain-order-sign"}


def _serve_missing_keys(mocked, body):
    """The sandbox's FHIR server answers our fallback searches for the keys its prefetch did not carry."""
    base = body["fhirServer"]
    from cds_service.prefetch import render
    from hooks.services import PREFETCH

    for template in PREFETCH:
        if template.key not in (body.get("prefetch") or {}):
            url = f"{base}/{render(template.query, {'patientId': 'pat-1'})}"
            payload = {"resourceType": "Bundle", "type": "searchset", "entry": []}
            mocked.get(url, json=payload, match=[matchers.query_string_matcher(url.split("?", 1)[1] if "?" in url else "")])


@pytest.mark.parametrize("name", ["patient-view", "order-select-ketorolac", "order-select-empty-draft", "order-sign"])
def test_every_captured_sandbox_request_gets_a_spec_valid_200(client, mocked, name):
    body = sample(name)
    _serve_missing_keys(mocked, body)
    resp = call(client, body, SANDBOX_SERVICES[body["hook"]])
    assert resp.status_code == 200, resp.get_json()
    Validators().response(resp.get_json())
    fetched = {c.request.url.split("?")[0].rsplit("/", 1)[-1] for c in mocked.calls}
    assert "Patient" not in fetched  # the sandbox sent the patient: not refetched


def test_sandbox_ketorolac_order_select_gives_the_ketorolac_card(client, mocked):
    body = sample("order-select-ketorolac")
    _serve_missing_keys(mocked, body)
    resp = call(client, body, "backpain-order-select")
    assert topics(resp) == [("ketorolac-duration", "critical")]
    card = resp.get_json()["cards"][0]
    assert card["summary"].startswith("Ketorolac would run 30 days (limit 5")
    assert "| Planned last day | 2026-12-21 (30-day supply) |" in card["detail"]
    assert card["selectionBehavior"] == "at-most-one"
    replace = card["suggestions"][0]
    assert replace["isRecommended"] is True
    # the draft replaced in place (one update, same id): what the sandbox applies whole (sandbox/README.md)
    (action,) = replace["actions"]
    assert (action["type"], action["resource"]["id"]) == ("update", "request-123")
    naproxen = action["resource"]
    assert naproxen["medicationCodeableConcept"]["coding"][0]["code"] == "198014"
    assert naproxen["medicationCodeableConcept"]["text"] == "Naproxen 500 MG Oral Tablet"  # the sandbox needs text and code
    assert naproxen["subject"] == {"reference": "Patient/pat-1"}
    # ketorolac's tablet count and 30-day supply are not inherited: a bounded naproxen supply (alternative_supply_days)
    assert naproxen["dispenseRequest"] == {
        "quantity": {"value": 14, "unit": "tablet", "system": "http://unitsofmeasure.org", "code": "{tbl}"},
        "expectedSupplyDuration": {"value": 7, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}}
    shorten = card["suggestions"][1]
    assert shorten["label"] == "Shorten this order to 5 days (supply and duration)"
    updated = shorten["actions"][0]["resource"]
    assert updated["id"] == "request-123"
    assert updated["dispenseRequest"]["expectedSupplyDuration"]["value"] == 5
    assert updated["category"][0]["coding"][0]["code"] == "community"  # the sandbox's single object, sent back as FHIR
    assert [r["code"] for r in card["overrideReasons"]] == ["parenteral-not-recorded", "record-wrong", "benefit-outweighs-risk"]


def test_sandbox_ketorolac_with_five_day_supply_gives_no_duration_card(client, mocked):
    body = sample("order-select-ketorolac")
    body["context"]["draftOrders"]["entry"][0]["resource"]["dispenseRequest"]["expectedSupplyDuration"]["value"] = 5
    _serve_missing_keys(mocked, body)
    resp = call(client, body, "backpain-order-select")
    assert topics(resp) == [("ketorolac-oral-start", "warning")]


def test_prefetch_complete_means_no_outbound_call(client, mocked):
    body = sample("order-select-ketorolac")
    for key in PREFETCH_KEYS:
        body["prefetch"].setdefault(key, None)
    resp = call(client, body, "backpain-order-select")
    assert resp.status_code == 200
    assert len(mocked.calls) == 0


def test_hook_instance_may_repeat(client):
    body = hook_request("patient-view")
    assert call(client, body).status_code == 200
    assert call(client, copy.deepcopy(body)).status_code == 200


def test_readme_configuration_table_lists_every_setting():

    from cds_service.config import reference

    readme = (ROOT / "README.md").read_text()
    for key, _default, reason in reference():
        assert f"| `{key}` |" in readme and reason.replace("|", "\\|") in readme, key


def test_a_captured_sandbox_request_sent_again_as_captured_reuses_its_parsed_prefetch(client, mocked, caplog):
    """The sandbox's own bytes (pretty-printed, prefetch last): the second identical call parses only the head."""
    import logging

    raw = (FIXTURES / "public-sandbox" / "order-select-ketorolac.json").read_bytes()
    _serve_missing_keys(mocked, sample("order-select-ketorolac"))
    caplog.set_level(logging.INFO, logger="backpain_cds.request")
    answers = [client.post("/cds-services/backpain-order-select", data=raw, content_type="application/json", buffered=True)
               for _ in range(2)]
    assert [topics(a) for a in answers] == [[("ketorolac-duration", "critical")]] * 2
    assert answers[0].get_json()["cards"][0]["summary"] == answers[1].get_json()["cards"][0]["summary"]
    assert [r.prefetch_reused for r in caplog.records if getattr(r, "msg", "") == "hook call"] == [False, True]


def test_the_readme_example_request_gets_the_card_the_readme_shows(client):
    """The newcomer's first call (README "First hook call"): a self-contained request, every prefetch key given."""
    import json

    root = ROOT
    body = json.loads((root / "sandbox/examples/order-select-ketorolac.json").read_text())
    expected = json.loads((root / "sandbox/examples/order-select-ketorolac.expected.json").read_text())["cards"]
    cards = call(client, body, "backpain-order-select").get_json()["cards"]
    assert [{"topic": c["source"]["topic"]["code"], "indicator": c["indicator"], "summary": c["summary"],
             "suggestions": [s["label"] for s in c["suggestions"]]} for c in cards] == expected
    readme = (root / "README.md").read_text()
    assert "curl -s -X POST http://127.0.0.1:8080/cds-services/backpain-order-select" in readme
    assert "-d @sandbox/examples/order-select-ketorolac.json" in readme
    assert expected[0]["summary"] in " ".join(readme.split())  # as quoted, whatever the line breaks

# --- CORS pattern language: exact origins and anchored '*.' subdomain wildcards ------------------------------------

CORS_ORIGINS = ["https://*.ehr.example", "https://sandbox.cds-hooks.org", "http://localhost:8080", "https://fhir.example:8443",
                "https://[::1]:9443"]


@pytest.fixture
def cors_client(tmp_path):
    from hooks.wsgi import create_app

    return create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "cors_origins": CORS_ORIGINS}).test_client()


@pytest.mark.parametrize("origin", [
    "https://portal.ehr.example", "https://a.b.ehr.example", "https://PORTAL.Ehr.Example", "https://x-1.ehr.example",
    "https://portal.ehr.example:443", "https://sandbox.cds-hooks.org", "https://sandbox.cds-hooks.org:443",
    "http://localhost:8080", "https://fhir.example:8443", "https://[::1]:9443",
])
@pytest.mark.parametrize("method", ["preflight", "get"])
def test_cors_reflects_an_allowed_origin(cors_client, origin, method):
    if method == "preflight":
        resp = cors_client.options("/cds-services/backpain-order-select", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    else:
        resp = cors_client.get("/cds-services", headers={"Origin": origin})
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == origin
    assert "Origin" in resp.headers["Vary"]


@pytest.mark.parametrize("origin", [
    "https://ehr.example",  # the domain itself is not one of its subdomains
    "https://ehr.example.attacker.test", "https://portal.ehr.example.evil", "https://portal.ehr.example.attacker.test",
    "https://evilehr.example", "https://portal-ehr.example", "https://portal.evilehr.example", "https://.ehr.example",
    "https://a..ehr.example", "https://-a.ehr.example", "http://portal.ehr.example", "https://portal.ehr.example:8443",
    "https://portal.ehr.example/", "https://portal.ehr.example/x", "https://user@portal.ehr.example",
    "https://sandbox.cds-hooks.org.evil", "https://xsandbox.cds-hooks.org", "https://sandbox.cds-hooks.org:8443",
    "http://sandbox.cds-hooks.org", "https://sandboxxcds-hooks.org",
    "http://localhost:8081", "http://localhost", "https://localhost:8080", "http://localhost:80800",
    "https://fhir.example", "https://fhir.example:443", "https://[::2]:9443", "null", "", "*",
])
@pytest.mark.parametrize("method", ["preflight", "get"])
def test_cors_refuses_an_origin_not_listed(cors_client, origin, method):
    if method == "preflight":
        resp = cors_client.options("/cds-services/backpain-order-select", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    else:
        resp = cors_client.get("/cds-services", headers={"Origin": origin})
    assert "Access-Control-Allow-Origin" not in resp.headers


@pytest.mark.parametrize("entry", [
    "https://ehr.example/", "https://ehr.example/path", "https://*.example", "https://*", "https://a.*.ehr.example",
    "https://**.ehr.example", "https://*ehr.example", "*.ehr.example", "ehr.example", "ftp://ehr.example", "https://",
    "https://ehr.example:99999", "https://ehr.example:0", "https://user@ehr.example", "https://ehr.example?x=1",
    "https://ehr.example#x", "https://ehr_example.org", "https://[not-v6]", "https://ehr.example:", " https://ehr.example",
])
def test_a_malformed_cors_entry_is_refused_at_start_up(entry):
    from cds_service.config import load_settings

    with pytest.raises(ValueError, match="cors_origins entry"):
        load_settings(overrides={"cors_origins": [entry]})


def test_cors_wildcard_alone_is_for_development_only(tmp_path):
    from cds_service.config import load_settings
    from hooks.wsgi import create_app

    resp = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "cors_origins": ["*"]}).test_client().get(
        "/cds-services", headers={"Origin": "https://anything.example"})
    assert resp.headers["Access-Control-Allow-Origin"] in ("*", "https://anything.example")
    with pytest.raises(ValueError, match="only acceptable in development"):
        load_settings(overrides={**PRODUCTION, "cors_origins": ["*"]})
