"""One NSAID-contraindication list guards every NSAID suggestion."""

from __future__ import annotations

import pytest

from tests.conftest import topics
from tests.factories import ICD10, PREDNISONE, condition, draft
from tests.hooks.support import (
    CKD4,
    IBUPROFEN_CODE,
    LBP_10D,
    NAPROXEN_CODE,
    WARFARIN,
    card,
    labels,
    offered_drugs,
    order,
)


@pytest.mark.parametrize(
    "contra",
    [
        {"conditions": [LBP_10D, CKD4]},
        {"conditions": [LBP_10D], "medications": [WARFARIN]},
        {
            "conditions": [
                LBP_10D,
                condition("preg", "Z3A.24", "24 weeks gestation of pregnancy", system=ICD10, recorded="2026-11-15"),
            ]
        },
    ],
)
def test_no_rule_suggests_an_nsaid_to_a_patient_who_must_not_have_one(client, contra):
    steroid = order(client, [draft("s", *PREDNISONE, supply_days=5, route="oral")], **contra)
    assert topics(steroid) == [("systemic-steroid-back-pain", "warning")]
    assert labels(steroid)[:2] == [
        "Replace with acetaminophen 1 g every 8 hours",
        "Replace with physiotherapy referral",
    ]
    assert "198440" in offered_drugs(steroid) and not offered_drugs(steroid) & {NAPROXEN_CODE, IBUPROFEN_CODE}
    assert "An NSAID is not advised here: " in card(steroid, "systemic-steroid-back-pain")["detail"]
    assert "Prefer an NSAID" not in card(steroid, "systemic-steroid-back-pain")["detail"]
    opioid = order(
        client,
        [draft("o", "1049621", "oxycodone hydrochloride 5 MG Oral Tablet", supply_days=10, route="oral")],
        **contra,
    )
    assert "198440" in offered_drugs(opioid) and not offered_drugs(opioid) & {
        NAPROXEN_CODE,
        IBUPROFEN_CODE,
    }  # acetaminophen
