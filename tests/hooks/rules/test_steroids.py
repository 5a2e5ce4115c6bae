"""Systemic-steroid-back-pain: inclusion, other indications (exacerbations, not diagnoses), local injections."""

from __future__ import annotations

import pytest

from tests.conftest import topics
from tests.factories import DEXAMETHASONE_INJ, ICD10, PREDNISONE, SCIATICA, SNOMED, condition, draft, med_request
from tests.hooks.support import BACK_PAIN_REASON, LBP_10D, LBP_RECENT, card, order, view


def test_steroid_for_back_pain_warns_with_alternatives(client):
    resp = order(client, [draft("s", *PREDNISONE, supply_days=5)], conditions=[LBP_RECENT])
    assert topics(resp) == [("systemic-steroid-back-pain", "warning")]
    c = card(resp, "systemic-steroid-back-pain")
    assert [s["label"] for s in c["suggestions"]] == [
        "Replace with naproxen 500 mg twice daily",
        "Replace with physiotherapy referral",
        "Remove the steroid order",
    ]
    physio = c["suggestions"][1]["actions"][0]["resource"]  # created first, then the steroid order removed
    assert physio["resourceType"] == "ServiceRequest" and physio["code"]["coding"][0]["code"] == "308447003"
    assert c["source"]["url"] == "https://www.acpjournals.org/doi/10.7326/M16-2367"


@pytest.mark.parametrize(
    "extra_condition",
    [
        condition("a", "J45.901", "Asthma with acute exacerbation", system=ICD10),
        condition("r", "69896004", "Rheumatoid arthritis"),
    ],
)
def test_steroid_with_another_indication_is_silent(client, extra_condition):
    resp = order(client, [draft("s", *PREDNISONE, supply_days=5)], conditions=[LBP_RECENT, extra_condition])
    assert topics(resp) == []


@pytest.mark.parametrize("route", ["epidural", "intra-articular"])
def test_local_steroid_injection_is_silent(client, route):
    resp = order(
        client,
        [draft("s", None, "methylprednisolone acetate 80 MG/ML Injectable Suspension", text_only=True, route=route)],
        conditions=[LBP_RECENT],
    )
    assert topics(resp) == []


def test_parenteral_steroid_product_without_route_fires(client):
    resp = order(client, [draft("s", *DEXAMETHASONE_INJ, text_only=True)], conditions=[LBP_RECENT])
    assert topics(resp) == [("systemic-steroid-back-pain", "warning")]


def test_steroid_with_back_pain_reason_code_only(client):
    d = draft("s", None, "prednisone 20 mg tab", text_only=True, reason=(SNOMED, *SCIATICA))
    assert topics(order(client, [d])) == [("systemic-steroid-back-pain", "warning")]


def test_steroid_without_back_pain_is_silent(client):
    assert topics(order(client, [draft("s", *PREDNISONE, supply_days=5)])) == []


def test_patient_view_active_steroid_course(client):
    resp = view(
        client,
        conditions=[LBP_RECENT],
        medications=[med_request("s", *PREDNISONE, authored="2026-11-20", supply_days=10)],
    )
    assert topics(resp) == [("systemic-steroid-back-pain", "warning")]
    c = card(resp, "systemic-steroid-back-pain")
    assert [s["label"] for s in c["suggestions"]] == [
        "Replace with naproxen 500 mg twice daily",
        "Replace with physiotherapy referral",
        "Stop the steroid order",
    ]
    assert c["detail"].endswith("Prefer an NSAID if not contraindicated, and active physiotherapy.")


def test_patient_reported_steroid_gets_the_referral_alone(client):
    """A MedicationStatement cannot be stopped by the service: the physiotherapy referral is still offered, created."""
    statement = {
        "resourceType": "MedicationStatement",
        "id": "ms",
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": PREDNISONE[0],
                    "display": PREDNISONE[1],
                }
            ]
        },
        "effectivePeriod": {"start": "2026-11-20"},
        "dosage": [{"route": {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]}}],
    }
    resp = view(client, conditions=[LBP_RECENT], medications=[statement])
    c = card(resp, "systemic-steroid-back-pain")
    (suggestion,) = c["suggestions"]
    assert suggestion["label"] == "Refer to physiotherapy" and suggestion["isRecommended"] is True
    (action,) = suggestion["actions"]
    assert action["type"] == "create" and action["resource"]["resourceType"] == "ServiceRequest"
    assert action["resource"]["code"]["coding"][0]["code"] == "308447003"


def test_no_other_indication_names_exacerbations_not_diagnoses(client):
    resp = order(client, [draft("s", *PREDNISONE, supply_days=5)], conditions=[LBP_RECENT])
    assert (
        "No other steroid indication (an asthma/COPD exacerbation, inflammatory arthritis"
        in card(resp, "systemic-steroid-back-pain")["detail"]
    )


@pytest.mark.parametrize(
    "other, fires",
    [
        (condition("copd", "J44.9", "Chronic obstructive pulmonary disease, unspecified", system=ICD10), True),
        (condition("copd", "13645005", "Chronic obstructive lung disease"), True),
        (condition("asthma", "J45.909", "Unspecified asthma, uncomplicated", system=ICD10), True),
        (
            condition("copd", "J44.1", "Chronic obstructive pulmonary disease with (acute) exacerbation", system=ICD10),
            False,
        ),
        (condition("copd", "195951007", "Acute exacerbation of chronic obstructive airways disease"), False),
        (condition("asthma", "J45.41", "Moderate persistent asthma with (acute) exacerbation", system=ICD10), False),
    ],
)
def test_stable_asthma_or_copd_is_no_steroid_indication(client, other, fires):
    rx = draft("s", *PREDNISONE, supply_days=5, route="oral", reason=BACK_PAIN_REASON)
    resp = order(client, [rx], conditions=[LBP_10D, other])
    assert (topics(resp) == [("systemic-steroid-back-pain", "warning")]) is fires
