"""Reading records as EHRs send them, through the service: older FHIR shapes, incomplete drafts, records under two
keys, revised orders, the history window."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import bundle, call, hook_request, topics
from tests.factories import KETOROLAC_ORAL, LBP, SNOMED, draft, finding, med_request
from tests.hooks.support import LBP_10D, SCIATICA_OLD, card, order, view


def _dstu2_condition(cid, code, display, onset, **extra):
    return {
        "resourceType": "Condition",
        "id": cid,
        "patient": {"reference": "Patient/p1"},
        "clinicalStatus": "active",
        "verificationStatus": extra.get("verification", "confirmed"),
        "onsetDateTime": onset,
        "code": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
    }


def _toradol(**changes):
    rx = draft("k", None, "Toradol 10 mg tablets", text_only=True, supply_days=7, route="oral")
    rx.update(changes)
    return rx


def test_finished_courses_beyond_every_lookback_are_not_read(client):
    old = med_request(
        "nap", "198014", "Naproxen 500 MG Oral Tablet", authored="2024-01-05", supply_days=30, status="completed"
    )
    assert (
        topics(view(client, conditions=[SCIATICA_OLD], medications=[old])) == []
    )  # not conservative care within 12 months


def test_dstu2_medication_order_and_conditions_are_read(client):
    order_ = {
        "resourceType": "MedicationOrder",
        "id": "mo1",
        "status": "active",
        "dateWritten": "2026-11-14",
        "patient": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "834022"}]
        },
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 4, "period": 1, "periodUnit": "d"}},
                "doseQuantity": {"value": 10, "unit": "mg", "code": "mg"},
            }
        ],
        "dispenseRequest": {"expectedSupplyDuration": {"value": 10, "unit": "days", "code": "d"}},
    }
    conditions = [
        _dstu2_condition("c1", *LBP, "2026-11-10"),
        _dstu2_condition("c2", "192970008", "Cauda equina syndrome", "2026-11-21"),
    ]
    resp = view(client, conditions=conditions, medications=[order_])
    assert topics(resp) == [("ketorolac-duration", "critical"), ("imaging-red-flags", "critical")]


def test_stu3_refuted_condition_is_ignored(client):
    conditions = [
        _dstu2_condition("c1", *LBP, "2026-11-10"),
        _dstu2_condition("c2", "192970008", "Cauda equina syndrome", "2026-11-21", verification="refuted"),
    ]
    assert topics(view(client, conditions=conditions)) == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r.pop("intent"),
        lambda r: r.pop("status"),
        lambda r: r.pop("subject"),
        lambda r: r.update(dosageInstruction=r["dosageInstruction"][0]),  # a single object, not an array
        lambda r: r.update(intent="not-a-code", status=7),
        lambda r: r["dosageInstruction"][0]["route"].update(coding=r["dosageInstruction"][0]["route"]["coding"][0]),
    ],
)
def test_an_incomplete_draft_whose_drug_is_recognised_is_evaluated(client, damage):
    rx = _toradol()
    damage(rx)
    assert ("ketorolac-duration", "critical") in topics(order(client, [rx]))


def test_a_draft_naming_no_drug_is_logged_and_counted(client, caplog):
    empty = {
        "resourceType": "MedicationRequest",
        "id": "blank",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
    }
    with caplog.at_level(logging.INFO, logger="backpain_cds"):
        resp = order(client, [empty])
    assert topics(resp) == []
    assert any(
        r.getMessage().startswith("draft order unreadable") and r.resource == "MedicationRequest/blank"
        for r in caplog.records
    )
    assert next(r for r in caplog.records if r.getMessage() == "hook call").unread_drafts == 1


def test_a_record_sent_under_two_keys_is_listed_once(client):
    saddle = finding("f1", "449813001", "Numbness of saddle area", "2026-11-21")
    resp = view(client, conditions=[LBP_10D], labs=[saddle], findings=[saddle])  # a server that ignored code=
    c = card(resp, "imaging-red-flags")
    assert c["detail"].count("Observation/f1") == 1


def test_a_revised_order_at_order_sign_replaces_the_prefetched_version(client):
    active = med_request("k", *KETOROLAC_ORAL, authored="2026-11-15", supply_days=10, route="oral")
    revised = med_request(
        "k", *KETOROLAC_ORAL, authored="2026-11-15", supply_days=3, route="oral"
    )  # shortened, not a draft
    resp = call(client, hook_request("order-sign", drafts=[revised], prefetch={"medications": bundle(active)}))
    assert topics(resp) == [("ketorolac-oral-start", "warning")]  # 11-15..11-17: the 10-day version no longer exists
