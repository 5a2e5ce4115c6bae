"""The captured public-sandbox requests and the README's example request, answered as the sandbox and README show."""

from __future__ import annotations

import pytest
from responses import matchers

from cds_service.schemas import Validators
from tests.conftest import FIXTURES, PREFETCH_KEYS, ROOT, call, sample, topics

SANDBOX_SERVICES = {
    "patient-view": "backpain-patient-view",
    "order-select": "backpain-order-select",
    "order-sign": "backpain-order-sign",
}


def _serve_missing_keys(mocked, body):
    """The sandbox's FHIR server answers our fallback searches for the keys its prefetch did not carry."""
    base = body["fhirServer"]
    from cds_service.prefetch import render
    from hooks.services import PREFETCH

    for template in PREFETCH:
        if template.key not in (body.get("prefetch") or {}):
            url = f"{base}/{render(template.query, {'patientId': 'pat-1'})}"
            payload = {"resourceType": "Bundle", "type": "searchset", "entry": []}
            mocked.get(
                url, json=payload, match=[matchers.query_string_matcher(url.split("?", 1)[1] if "?" in url else "")]
            )


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
    assert (
        naproxen["medicationCodeableConcept"]["text"] == "Naproxen 500 MG Oral Tablet"
    )  # the sandbox needs text and code
    assert naproxen["subject"] == {"reference": "Patient/pat-1"}
    # ketorolac's tablet count and 30-day supply are not inherited: a bounded naproxen supply (alternative_supply_days)
    assert naproxen["dispenseRequest"] == {
        "quantity": {"value": 14, "unit": "tablet", "system": "http://unitsofmeasure.org", "code": "{tbl}"},
        "expectedSupplyDuration": {"value": 7, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"},
    }
    shorten = card["suggestions"][1]
    assert shorten["label"] == "Shorten this order to 5 days (supply and duration)"
    updated = shorten["actions"][0]["resource"]
    assert updated["id"] == "request-123"
    assert updated["dispenseRequest"]["expectedSupplyDuration"]["value"] == 5
    assert updated["category"][0]["coding"][0]["code"] == "community"  # the sandbox's single object, sent back as FHIR
    assert [r["code"] for r in card["overrideReasons"]] == [
        "parenteral-not-recorded",
        "record-wrong",
        "benefit-outweighs-risk",
    ]


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


def test_a_captured_sandbox_request_sent_again_as_captured_reuses_its_parsed_prefetch(client, mocked, caplog):
    """The sandbox's own bytes (pretty-printed, prefetch last): kept from the second identical call
    (snapshot_cache_admission), the third parses only the head."""
    import logging

    raw = (FIXTURES / "public-sandbox" / "order-select-ketorolac.json").read_bytes()
    _serve_missing_keys(mocked, sample("order-select-ketorolac"))
    caplog.set_level(logging.INFO, logger="backpain_cds.request")
    answers = [
        client.post("/cds-services/backpain-order-select", data=raw, content_type="application/json", buffered=True)
        for _ in range(3)
    ]
    assert [topics(a) for a in answers] == [[("ketorolac-duration", "critical")]] * 3
    assert answers[0].get_json()["cards"][0]["summary"] == answers[2].get_json()["cards"][0]["summary"]
    assert [r.prefetch_reused for r in caplog.records if getattr(r, "msg", "") == "hook call"] == [False, False, True]


def test_the_readme_example_request_gets_the_card_the_readme_shows(client):
    """The newcomer's first call (README "First hook call"): a self-contained request, every prefetch key given."""
    import json

    root = ROOT
    body = json.loads((root / "sandbox/examples/order-select-ketorolac.json").read_text())
    expected = json.loads((root / "sandbox/examples/order-select-ketorolac.expected.json").read_text())["cards"]
    cards = call(client, body, "backpain-order-select").get_json()["cards"]
    assert [
        {
            "topic": c["source"]["topic"]["code"],
            "indicator": c["indicator"],
            "summary": c["summary"],
            "suggestions": [s["label"] for s in c["suggestions"]],
        }
        for c in cards
    ] == expected
    readme = (root / "README.md").read_text()
    assert "curl -s -X POST http://127.0.0.1:8080/cds-services/backpain-order-select" in readme
    assert "-d @sandbox/examples/order-select-ketorolac.json" in readme
    assert expected[0]["summary"] in " ".join(readme.split())  # as quoted, whatever the line breaks
