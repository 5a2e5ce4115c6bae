"""A current pregnancy from Conditions and Observations, and the records that describe none."""

from __future__ import annotations

import pytest

from cds_service.terminology import LOINC
from tests.conftest import topics
from tests.factories import ICD10, KETOROLAC_INJ, condition, draft
from tests.hooks.support import NOT_PREGNANT, PREGNANT, card, order


def _preg_obs(oid, code, display, when, **value):
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "effectiveDateTime": when,
        **value,
    }


@pytest.mark.parametrize(
    "prefetch, indicator, text",
    [
        (
            {
                "conditions": [
                    condition("g", "Z3A.24", "24 weeks gestation of pregnancy", system=ICD10, recorded="2026-11-01")
                ]
            },
            "critical",
            "pregnancy (27 weeks or more today)",
        ),
        (
            {
                "conditions": [
                    condition(
                        "g",
                        "O09.13",
                        "Supervision of pregnancy with history of ectopic pregnancy, third trimester",
                        system=ICD10,
                        recorded="2026-11-15",
                    )
                ]
            },
            "critical",
            "pregnancy (29 weeks or more today)",
        ),
        (
            {
                "conditions": [
                    condition(
                        "g",
                        "O60.03",
                        "Preterm labor without delivery, third trimester",
                        system=ICD10,
                        recorded="2026-11-21",
                    )
                ]
            },
            "critical",
            "pregnancy (20 weeks or more today)",
        ),
        (
            {
                "labs": [
                    _preg_obs("edd", "11778-8", "Delivery date Estimated", "2026-10-01", valueDateTime="2027-02-01")
                ]
            },
            "critical",
            "pregnancy (29 weeks or more today)",
        ),
        (
            {
                "labs": [
                    _preg_obs(
                        "ga",
                        "11884-4",
                        "Gestational age Estimated",
                        "2026-11-01",
                        valueQuantity={"value": 16, "unit": "wk", "system": "http://unitsofmeasure.org", "code": "wk"},
                    )
                ]
            },
            "warning",
            "pregnancy (19 weeks or more today)",
        ),
        (
            {"labs": [_preg_obs("ps", "82810-3", "Pregnancy status", "2026-11-20", **PREGNANT)]},
            "warning",
            "pregnancy (gestational age not recorded)",
        ),
        (
            {"conditions": [condition("p", "77386006", "Pregnant (finding)", recorded="2026-10-01")]},
            "warning",
            "pregnancy (gestational age not recorded)",
        ),
    ],
)
def test_pregnancy_is_a_ketorolac_contraindication(client, prefetch, indicator, text):
    resp = order(client, [draft("k", *KETOROLAC_INJ, supply_days=2, route="im")], **prefetch)
    assert topics(resp) == [("ketorolac-contraindication", indicator)]
    assert f"- {text}: " in card(resp, "ketorolac-contraindication")["detail"]


@pytest.mark.parametrize(
    "prefetch",
    [
        {
            "conditions": [
                condition("g", "Z3A.30", "30 weeks gestation of pregnancy", system=ICD10, recorded="2026-01-10")
            ]
        },  # delivered
        {
            "conditions": [condition("p", "77386006", "Pregnant (finding)", recorded="2025-09-01")]
        },  # a record long out of date
        {
            "conditions": [
                condition(
                    "l",
                    "Z39.1",
                    "Encounter for care and examination of lactating mother",
                    system=ICD10,
                    recorded="2026-11-01",
                )
            ]
        },  # breastfeeding is not pregnancy
        {
            "conditions": [condition("p", "77386006", "Pregnant (finding)", recorded="2026-06-01")],
            "labs": [_preg_obs("ps", "82810-3", "Pregnancy status", "2026-11-01", **NOT_PREGNANT)],
        },  # a later 'not pregnant'
        {
            "labs": [_preg_obs("edd", "11778-8", "Delivery date Estimated", "2026-03-01", valueDateTime="2026-09-01")]
        },  # past due
    ],
)
def test_pregnancy_records_that_do_not_describe_a_current_pregnancy(client, prefetch):
    assert topics(order(client, [draft("k", *KETOROLAC_INJ, supply_days=2, route="im")], **prefetch)) == []
