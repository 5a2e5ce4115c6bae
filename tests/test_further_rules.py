"""Further guideline rules: opioids, NSAID duplication, gabapentinoids, muscle relaxants, benzodiazepines, repeats."""

from __future__ import annotations

import pytest

from tests.factories import ICD10, LBP, condition, draft, med_admin, med_request, observation
from tests.test_rules import SCIATICA_OLD, card, order, topics, view

LBP_10D = condition("lbp", *LBP, onset="2026-11-12")
NAPROXEN_TRIED = med_request("nap", "198014", "Naproxen 500 MG Oral Tablet", authored="2026-11-13", supply_days=5, status="completed")
OXY = ("1049621", "Oxycodone Hydrochloride 5 MG Oral Tablet")
OXY_ER = ("1049502", "12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet")


def test_long_acting_opioid_for_acute_pain(client):
    resp = order(client, [draft("o", *OXY_ER, supply_days=3, route="oral")], conditions=[LBP_10D], medications=[NAPROXEN_TRIED])
    assert topics(resp) == [("opioid-first-line", "warning")]
    c = card(resp, "opioid-first-line")
    assert c["summary"].startswith("Opioid for back pain: long-acting opioid for acute pain.")
    assert "12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet" in c["detail"]


@pytest.mark.parametrize("supply, expected", [(3, []), (5, [("opioid-first-line", "info")]), (8, [("opioid-first-line", "warning")])])
def test_opioid_supply_bands_after_a_non_opioid(client, supply, expected):
    resp = order(client, [draft("o", *OXY, supply_days=supply, route="oral")], conditions=[LBP_10D], medications=[NAPROXEN_TRIED])
    assert topics(resp) == expected


def test_opioid_shorten_suggestion_updates_the_supply(client):
    resp = order(client, [draft("o", *OXY, supply_days=8, route="oral", dose_mg=5, per_day=4)], conditions=[LBP_10D],
                 medications=[NAPROXEN_TRIED])
    shorten = card(resp, "opioid-first-line")["suggestions"][1]
    assert shorten["label"] == "Shorten this order to 3 days (supply and duration)"
    assert shorten["actions"][0]["resource"]["dispenseRequest"]["expectedSupplyDuration"]["value"] == 3


def test_buprenorphine_is_not_evaluated(client):
    bup = draft("b", None, "Buprenorphine 8 MG Sublingual Tablet", text_only=True, supply_days=30)
    assert topics(order(client, [bup], conditions=[LBP_10D])) == []


def test_patient_view_active_opioid_with_benzodiazepine(client):
    meds = [med_request("o", *OXY, authored="2026-11-15", route="oral"),
            med_request("d", "197591", "Diazepam 5 MG Oral Tablet", authored="2026-11-10", route="oral")]
    resp = view(client, conditions=[LBP_10D], medications=meds)
    assert topics(resp) == [("opioid-sedative", "warning")]
    assert card(resp, "opioid-sedative")["summary"].startswith("Opioid and benzodiazepine are both active")


def test_sedative_ordered_for_a_patient_on_an_opioid(client):
    resp = order(client, [draft("g", "310431", "gabapentin 300 MG Oral Capsule", supply_days=30, route="oral")],
                 conditions=[SCIATICA_OLD], medications=[med_request("o", *OXY, authored="2026-11-20", route="oral")])
    assert topics(resp) == [("opioid-sedative", "warning")]
    assert card(resp, "opioid-sedative")["suggestions"][0]["actions"][0]["resourceId"] == "MedicationRequest/g"


@pytest.mark.parametrize("aspirin, fires", [
    (dict(dose_mg=81, per_day=1), False), (dict(dose_mg=650, per_day=4), True), (dict(), False)])
def test_aspirin_counts_only_above_325_mg_per_day(client, aspirin, fires):
    current = med_request("asa", None, "aspirin tablet", authored="2026-11-01", route="oral", text_only=True, **aspirin)
    resp = order(client, [draft("n", "198014", "Naproxen 500 MG Oral Tablet", supply_days=10, route="oral")],
                 conditions=[LBP_10D], medications=[current])
    assert (topics(resp) == [("nsaid-duplicate", "warning")]) is fires


def test_gabapentin_renal_band_needs_an_egfr(client):
    gaba = draft("g", "310433", "gabapentin 600 MG Oral Tablet", supply_days=30, route="oral", dose_mg=600, per_day=3)
    assert topics(order(client, [gaba], conditions=[SCIATICA_OLD])) == []
    resp = order(client, [gaba], conditions=[SCIATICA_OLD], labs=[observation("e", "98979-8", "eGFR", 45, "mL/min/{1.73_m2}", "2026-10-01")])
    c = card(resp, "gabapentinoid-renal-dose")
    assert c["summary"] == "Gabapentin 1800 mg/day is above the 1400 mg/day maximum for eGFR 45. Reduce to 700 mg twice daily."
    dosage = c["suggestions"][0]["actions"][0]["resource"]["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 700 and dosage["timing"]["repeat"]["frequency"] == 2


def test_pregabalin_is_not_banded(client):
    pre = draft("p", "483450", "pregabalin 75 MG Oral Capsule", supply_days=30, route="oral", dose_mg=300, per_day=3)
    resp = order(client, [pre], conditions=[SCIATICA_OLD], labs=[observation("e", "98979-8", "eGFR", 20, "mL/min/{1.73_m2}", "2026-10-01")])
    assert topics(resp) == []


def test_muscle_relaxant_for_radicular_pain_is_info_under_65(client):
    resp = order(client, [draft("m", "828348", "Cyclobenzaprine hydrochloride 10 MG Oral Tablet", supply_days=7, route="oral")],
                 conditions=[SCIATICA_OLD])
    assert topics(resp) == [("muscle-relaxant", "info")]
    assert "radicular pain" in card(resp, "muscle-relaxant")["detail"]


def test_muscle_relaxant_for_plain_acute_back_pain_is_fine(client):
    resp = order(client, [draft("m", "828348", "Cyclobenzaprine hydrochloride 10 MG Oral Tablet", supply_days=7, route="oral")],
                 conditions=[LBP_10D])
    assert topics(resp) == []


def test_class_repeat_names_the_earlier_course_and_its_stop_reason(client):
    stopped = med_request("p1", "312615", "Prednisone 20 MG Oral Tablet", authored="2026-11-14", supply_days=5, status="stopped",
                          route="oral")
    stopped["statusReason"] = {"text": "not effective"}
    resp = order(client, [draft("p2", "259966", "Methylprednisolone 4 MG Oral Tablet", supply_days=6, route="oral")],
                 conditions=[LBP_10D, condition("a", "J45.901", "Asthma with acute exacerbation", system=ICD10)],
                 medications=[stopped])
    assert topics(resp) == [("drug-class-repeat", "info")]  # the asthma indication silences the steroid card, not the repeat
    assert "Prednisone 20 MG Oral Tablet (2026-11-14, stopped, not effective)" in card(resp, "drug-class-repeat")["detail"]


def test_renewal_of_a_current_course_is_not_a_repeat(client):
    current = med_request("m1", "828348", "Cyclobenzaprine hydrochloride 10 MG Oral Tablet", authored="2026-11-18", supply_days=10,
                          route="oral")
    resp = order(client, [draft("m2", "828348", "Cyclobenzaprine hydrochloride 10 MG Oral Tablet", supply_days=7, route="oral")],
                 conditions=[LBP_10D], medications=[current])
    assert ("drug-class-repeat", "info") not in topics(resp)


def test_stopped_ketorolac_order_counts_to_today_when_its_stop_date_was_not_recorded(client):
    # FHIR "stopped": doses were given. 11-20 → today (stop date unknown), IM today, oral 11-22..11-26: 7 days.
    stopped = med_request("k0", "834022", "Ketorolac Tromethamine 10 MG Oral Tablet", authored="2026-11-20", supply_days=5, status="stopped")
    given = med_admin("a", "1665461", "1 ML Ketorolac Tromethamine 30 MG/ML Injection", "2026-11-22T06:00:00Z", route="im")
    resp = order(client, [draft("k", "834022", "Ketorolac Tromethamine 10 MG Oral Tablet", supply_days=5, route="oral")],
                 medications=[stopped], medicationAdministrations=[given])
    assert topics(resp) == [("ketorolac-duration", "critical")]
    detail = card(resp, "ketorolac-duration")["detail"]
    assert "| First ketorolac dose | 2026-11-20 (already given: " in detail
    assert "with no stop date recorded: Ketorolac Tromethamine 10 MG Oral Tablet (from 2026-11-20)" in detail
