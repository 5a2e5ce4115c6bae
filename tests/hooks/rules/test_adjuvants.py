"""Gabapentinoids, muscle relaxants, drug-class repeat."""

from __future__ import annotations

import pytest

from tests.conftest import topics
from tests.factories import ICD10, condition, draft, med_request, observation
from tests.hooks.support import LBP_10D, SCIATICA_OLD, card, order


def test_gabapentin_renal_band_needs_an_egfr(client):
    gaba = draft("g", "310433", "gabapentin 600 MG Oral Tablet", supply_days=30, route="oral", dose_mg=600, per_day=3)
    assert topics(order(client, [gaba], conditions=[SCIATICA_OLD])) == []
    resp = order(
        client,
        [gaba],
        conditions=[SCIATICA_OLD],
        labs=[observation("e", "98979-8", "eGFR", 45, "mL/min/{1.73_m2}", "2026-10-01")],
    )
    c = card(resp, "gabapentinoid-renal-dose")
    # the update keeps the 600 mg tablet, so the band's 700 mg twice daily becomes what whole tablets make
    assert (
        c["summary"]
        == "Gabapentin 1800 mg/day is above the 1400 mg/day maximum for eGFR 45. Reduce to 600 mg twice daily."
    )
    dosage = c["suggestions"][0]["actions"][0]["resource"]["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 600 and dosage["timing"]["repeat"]["frequency"] == 2


EGFR_25 = observation("e", "98979-8", "eGFR", 25, "mL/min/{1.73_m2}", "2026-10-01")
EGFR_12 = observation("e", "98979-8", "eGFR", 12, "mL/min/{1.73_m2}", "2026-10-01")


@pytest.mark.parametrize(
    "code, display, egfr, regimen, dose",
    [
        (
            "310430",
            "gabapentin 100 MG Oral Capsule",
            EGFR_25,
            "700 mg once daily",
            700,
        ),  # 7 capsules make the band's dose
        (None, "gabapentin", EGFR_25, "700 mg once daily", 700),  # strength unknown: the band's dose, as written
        ("310433", "gabapentin 600 MG Oral Tablet", EGFR_25, "600 mg once daily", 600),
    ],
)
def test_gabapentin_band_dose_is_one_the_product_can_make(client, code, display, egfr, regimen, dose):
    gaba = draft("g", code, display, supply_days=30, route="oral", dose_mg=600, per_day=3)
    c = card(order(client, [gaba], conditions=[SCIATICA_OLD], labs=[egfr]), "gabapentinoid-renal-dose")
    assert c["summary"].endswith(f"Reduce to {regimen}.")
    (suggestion,) = c["suggestions"]
    assert suggestion["label"] == f"Change to {regimen}"
    assert (
        suggestion["actions"][0]["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == dose
    )


def test_gabapentin_tablet_above_the_whole_band_offers_no_update(client):
    gaba = draft("g", "310433", "gabapentin 600 MG Oral Tablet", supply_days=30, route="oral", dose_mg=600, per_day=3)
    c = card(order(client, [gaba], conditions=[SCIATICA_OLD], labs=[EGFR_12]), "gabapentinoid-renal-dose")
    assert c["indicator"] == "warning"
    assert c["summary"] == (
        "Gabapentin 1800 mg/day is above the 300 mg/day maximum for eGFR 12. "
        "Reduce to at most 300 mg/day (a strength below the 600 mg ordered)."
    )
    assert "suggestions" not in c or c["suggestions"] == []


def test_pregabalin_is_not_banded(client):
    pre = draft("p", "483450", "pregabalin 75 MG Oral Capsule", supply_days=30, route="oral", dose_mg=300, per_day=3)
    resp = order(
        client,
        [pre],
        conditions=[SCIATICA_OLD],
        labs=[observation("e", "98979-8", "eGFR", 20, "mL/min/{1.73_m2}", "2026-10-01")],
    )
    assert topics(resp) == []


def test_muscle_relaxant_for_radicular_pain_is_info_under_65(client):
    resp = order(
        client,
        [draft("m", "828348", "Cyclobenzaprine hydrochloride 10 MG Oral Tablet", supply_days=7, route="oral")],
        conditions=[SCIATICA_OLD],
    )
    assert topics(resp) == [("muscle-relaxant", "info")]
    assert "radicular pain" in card(resp, "muscle-relaxant")["detail"]


def test_muscle_relaxant_for_plain_acute_back_pain_is_fine(client):
    resp = order(
        client,
        [draft("m", "828348", "Cyclobenzaprine hydrochloride 10 MG Oral Tablet", supply_days=7, route="oral")],
        conditions=[LBP_10D],
    )
    assert topics(resp) == []


def test_class_repeat_names_the_earlier_course_and_its_stop_reason(client):
    stopped = med_request(
        "p1",
        "312615",
        "Prednisone 20 MG Oral Tablet",
        authored="2026-11-14",
        supply_days=5,
        status="stopped",
        route="oral",
    )
    stopped["statusReason"] = {"text": "not effective"}
    resp = order(
        client,
        [draft("p2", "259966", "Methylprednisolone 4 MG Oral Tablet", supply_days=6, route="oral")],
        conditions=[LBP_10D, condition("a", "J45.901", "Asthma with acute exacerbation", system=ICD10)],
        medications=[stopped],
    )
    assert topics(resp) == [
        ("drug-class-repeat", "info")
    ]  # the asthma indication silences the steroid card, not the repeat
    assert (
        "Prednisone 20 MG Oral Tablet (2026-11-14, stopped, not effective)" in card(resp, "drug-class-repeat")["detail"]
    )


def test_renewal_of_a_current_course_is_not_a_repeat(client):
    current = med_request(
        "m1",
        "828348",
        "Cyclobenzaprine hydrochloride 10 MG Oral Tablet",
        authored="2026-11-18",
        supply_days=10,
        route="oral",
    )
    resp = order(
        client,
        [draft("m2", "828348", "Cyclobenzaprine hydrochloride 10 MG Oral Tablet", supply_days=7, route="oral")],
        conditions=[LBP_10D],
        medications=[current],
    )
    assert ("drug-class-repeat", "info") not in topics(resp)
