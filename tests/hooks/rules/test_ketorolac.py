"""Ketorolac rules (duration, oral start, dose, contraindications): inclusion, exclusions and boundaries. How the course
is counted on the records EHRs really send (dose-free days, stopped orders, mg doses):
tests/hooks/test_ketorolac_course.py."""

from __future__ import annotations

import pytest

from tests.conftest import patient, topics
from tests.factories import ICD10, KETOROLAC_INJ, KETOROLAC_ORAL, condition, draft, med_admin, med_request, observation
from tests.hooks.support import CKD4, WARFARIN, card, labels, offered_drugs, order, view


@pytest.mark.parametrize(
    "supply, unit, fires",
    [(5, "d", False), (6, "d", True), (120, "h", False), (121, "h", True), (1, "wk", True), (30, "d", True)],
)
def test_ketorolac_duration_boundaries(client, supply, unit, fires):
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=supply, supply_unit=unit)])
    assert (("ketorolac-duration", "critical") in topics(resp)) is fires


def test_ketorolac_counts_parenteral_doses_already_given(client):
    given = [med_admin("a1", *KETOROLAC_INJ, "2026-11-21T08:00:00Z", route="im", dose_mg=30)]
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=5)], medicationAdministrations=given)
    assert topics(resp) == [("ketorolac-duration", "critical")]
    c = card(resp, "ketorolac-duration")
    assert c["summary"].startswith("Ketorolac would run 6 days (limit 5")
    assert (
        "| First ketorolac dose | 2026-11-21 (already given: 1 ML Ketorolac Tromethamine 30 MG/ML Injection) |"
        in c["detail"]
    )
    assert "| Routes | IM, oral |" in c["detail"]
    assert "| Days allowed from today | 4 |" in c["detail"]
    assert c["suggestions"][1]["label"] == "Shorten this order to 4 days (supply and duration)"
    assert "no parenteral dose" not in c["detail"]  # IM yesterday: oral continuation is as labelled


def test_ketorolac_exposure_weeks_ago_is_a_separate_course(client):
    given = [med_admin("a1", *KETOROLAC_INJ, "2026-11-02", route="im")]
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=5)], medicationAdministrations=given)
    assert ("ketorolac-duration", "critical") not in topics(resp)


def test_ophthalmic_ketorolac_is_not_counted(client):
    eye = [
        med_request(
            "eye",
            None,
            "ketorolac tromethamine 0.5 % Ophthalmic Solution",
            authored="2026-11-19",
            supply_days=10,
            text_only=True,
        )
    ]
    resp = order(client, [draft("k", *KETOROLAC_INJ, supply_days=5, route="iv")], medications=eye)
    assert topics(resp) == []


def test_open_ended_ketorolac_draft_gets_a_warning_not_critical(client):
    resp = order(client, [draft("k", *KETOROLAC_INJ, route="im")])
    assert topics(resp) == [("ketorolac-duration", "warning")]
    assert "no end date" in card(resp, "ketorolac-duration")["summary"]


def test_two_ketorolac_orders_give_one_card_naming_both(client):
    drafts = [
        draft("k1", *KETOROLAC_INJ, route="im", supply_days=3),
        draft("k2", *KETOROLAC_ORAL, supply_days=5, authored="2026-11-24"),
    ]  # oral continuation: days 1–7
    resp = order(client, drafts, hook="order-sign")
    assert topics(resp) == [("ketorolac-duration", "critical")]
    detail = card(resp, "ketorolac-duration")["detail"]
    assert "30 MG/ML Injection (IM); Ketorolac Tromethamine 10 MG Oral Tablet (oral)" in detail
    assert "| Planned last day | 2026-11-28 (5-day supply) |" in detail


def test_brand_text_only_ketorolac_is_recognised(client):
    resp = order(client, [draft("k", None, "Toradol 10 mg tablets", text_only=True, supply_days=10, route="oral")])
    assert ("ketorolac-duration", "critical") in topics(resp)


def test_ketorolac_not_in_selections_gets_no_card(client):
    drafts = [
        draft("k", *KETOROLAC_ORAL, supply_days=10),
        draft("n", "198014", "Naproxen 500 MG Oral Tablet", supply_days=10),
    ]
    assert topics(order(client, drafts, selections=["MedicationRequest/n"])) == []


@pytest.mark.parametrize("authored, fires", [("2026-11-15", True), ("2026-11-18", False)])
def test_patient_view_active_ketorolac_past_day_5(client, authored, fires):
    meds = [med_request("k", *KETOROLAC_ORAL, authored=authored, supply_days=10)]
    resp = view(client, medications=meds)
    assert (topics(resp) == [("ketorolac-duration", "critical")]) is fires
    if fires:
        c = card(resp, "ketorolac-duration")
        action = c["suggestions"][0]["actions"][0]
        assert (
            action["type"] == "update" and action["resource"]["status"] == "stopped" and action["resource"]["id"] == "k"
        )


def test_oral_ketorolac_without_parenteral_gets_oral_start_warning(client):
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=3)])
    assert topics(resp) == [("ketorolac-oral-start", "warning")]
    labels = [s["label"] for s in card(resp, "ketorolac-oral-start")["suggestions"]]
    assert labels == ["Replace with naproxen 500 mg twice daily", "Replace with ibuprofen 600 mg every 8 hours"]


def test_oral_ketorolac_dose_above_40mg_per_day(client):
    resp = order(
        client,
        [draft("k", *KETOROLAC_ORAL, supply_days=3, dose_mg=20, per_day=4)],
        medicationAdministrations=[med_admin("a", *KETOROLAC_INJ, "2026-11-22T06:00:00Z", route="iv")],
    )
    assert topics(resp) == [("ketorolac-dose", "warning")]
    c = card(resp, "ketorolac-dose")
    assert "80 mg/day oral (cap 40 mg/day)" in c["summary"]
    new = c["suggestions"][0]["actions"][0]["resource"]
    assert new["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 10
    assert new["dosageInstruction"][0]["timing"]["repeat"]["frequency"] == 4


def test_reduced_dose_group_single_iv_cap(client):
    old = patient("p1", birth="1950-01-01")
    resp = order(client, [draft("k", *KETOROLAC_INJ, route="iv", supply_days=2, dose_mg=30, per_day=2)], patient=old)
    assert topics(resp) == [("ketorolac-dose", "warning")]
    assert "single IV dose 30 mg (cap 15 mg)" in card(resp, "ketorolac-dose")["summary"]
    assert "age 76" in card(resp, "ketorolac-dose")["detail"]


def test_both_parenteral_caps_exceeded_are_both_named(client):
    old = patient("p1", birth="1946-01-01")  # 80: 60 mg/day and 15 mg per IV dose
    resp = order(client, [draft("k", *KETOROLAC_INJ, route="iv", supply_days=2, dose_mg=30, per_day=4)], patient=old)
    assert card(resp, "ketorolac-dose")["summary"] == (
        "Ketorolac dose above the label cap: 120 mg/day IV (cap 60 mg/day); "
        "single IV dose 30 mg (cap 15 mg). Reduce the dose."
    )


def test_uncomputable_dose_gives_no_dose_card(client):
    resp = order(client, [draft("k", *KETOROLAC_INJ, route="im", supply_days=2)])
    assert topics(resp) == []


@pytest.mark.parametrize(
    "prefetch, indicator",
    [
        (
            {
                "conditions": [
                    condition("gi", "K25.4", "Chronic gastric ulcer with hemorrhage", system=ICD10, status="resolved")
                ]
            },
            "critical",
        ),
        ({"labs": [observation("e", "98979-8", "eGFR", 25, "mL/min/{1.73_m2}", "2026-10-01")]}, "critical"),
        (
            {"medications": [med_request("ibu", "197806", "Ibuprofen 600 MG Oral Tablet", authored="2026-11-20")]},
            "critical",
        ),
        (
            {
                "medications": [
                    med_request("w", "855290", "Warfarin Sodium 1 MG Oral Tablet [Coumadin]", authored="2026-01-01")
                ]
            },
            "warning",
        ),
    ],
)
def test_ketorolac_contraindications(client, prefetch, indicator):
    drafts = [draft("k", *KETOROLAC_INJ, route="im", supply_days=2)]
    resp = order(client, drafts, **prefetch)
    assert topics(resp) == [("ketorolac-contraindication", indicator)]
    c = card(resp, "ketorolac-contraindication")
    (replace,) = c["suggestions"][0]["actions"]  # the draft itself becomes acetaminophen (same id)
    assert (replace["type"], replace["resource"]["id"]) == ("update", "k")
    assert replace["resource"]["medicationCodeableConcept"]["coding"][0]["code"] == "198440"
    assert (
        "route" in replace["resource"]["dosageInstruction"][0]
        and replace["resource"]["dosageInstruction"][0]["route"]["coding"][0]["code"] == "26643006"
    )


def test_egfr_older_than_12_months_is_not_used(client):
    resp = order(
        client,
        [draft("k", *KETOROLAC_INJ, route="im", supply_days=2)],
        labs=[observation("e", "98979-8", "eGFR", 25, "mL/min/{1.73_m2}", "2025-06-01")],
    )
    assert topics(resp) == []


def test_no_end_date_warning_only_when_no_duration_can_be_derived(client):
    rx = draft("k", *KETOROLAC_ORAL, route="oral", dose_mg=10, per_day=4)  # no quantity, no supply
    assert topics(order(client, [rx])) == [("ketorolac-duration", "warning")]


def test_contraindicated_ketorolac_gets_one_card_with_the_duration_facts(client):
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=10, route="oral")], conditions=[CKD4])
    assert topics(resp) == [("ketorolac-contraindication", "critical")]
    c = card(resp, "ketorolac-contraindication")
    assert "- advanced renal impairment: Chronic kidney disease, stage 4 (severe)" in c["detail"]
    assert "**Planned ketorolac exposure: 10 days** (over the 5-day limit, all routes combined)." in c["detail"]
    assert "| Planned last day | 2026-12-01 (10-day supply) |" in c["detail"]
    assert labels(resp) == ["Replace with acetaminophen 1 g every 8 hours", "Remove the ketorolac order"]
    assert offered_drugs(resp) == {"198440"}  # acetaminophen only: never keep, shorten or swap for another NSAID


def test_anticoagulant_caution_with_a_long_course_is_critical(client):
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=8, route="oral")], medications=[WARFARIN])
    assert topics(resp) == [("ketorolac-contraindication", "critical")]
    c = card(resp, "ketorolac-contraindication")
    assert c["summary"] == (
        "Ketorolac with concurrent anticoagulant, and it would run 8 days (limit 5). Use acetaminophen instead."
    )
    assert "Keep ketorolac" not in " ".join(labels(resp))


def test_anticoagulant_caution_alone_is_a_warning(client):
    resp = order(client, [draft("k", *KETOROLAC_INJ, supply_days=2, route="im")], medications=[WARFARIN])
    assert topics(resp) == [("ketorolac-contraindication", "warning")]
    assert (
        "**Planned ketorolac exposure: 2 days** (within the 5-day limit"
        in card(resp, "ketorolac-contraindication")["detail"]
    )


def test_a_caution_card_names_only_the_cautions_the_record_has(client):
    warfarin = card(
        order(client, [draft("k", *KETOROLAC_INJ, supply_days=2, route="im")], medications=[WARFARIN]),
        "ketorolac-contraindication",
    )
    assert (
        warfarin["summary"]
        == "Caution: ketorolac with concurrent anticoagulant (bleeding risk). Consider acetaminophen."
    )
    assert warfarin["detail"].startswith("**Ketorolac with a bleeding caution**")
    assert "pregnan" not in warfarin["detail"].lower()
    assert warfarin["detail"].endswith("*Evidence: FDA ketorolac tromethamine label, Warnings (hemorrhage).*")
    early = condition("g", "Z3A.12", "12 weeks gestation of pregnancy", system=ICD10, recorded="2026-11-15")
    pregnant = card(
        order(client, [draft("k", *KETOROLAC_INJ, supply_days=2, route="im")], conditions=[early]),
        "ketorolac-contraindication",
    )
    assert pregnant["indicator"] == "warning" and "(pregnancy risk)" in pregnant["summary"]
    assert "anticoagulant" not in pregnant["detail"] and "20 weeks of pregnancy" in pregnant["detail"]
    both = card(
        order(
            client, [draft("k", *KETOROLAC_INJ, supply_days=2, route="im")], conditions=[early], medications=[WARFARIN]
        ),
        "ketorolac-contraindication",
    )
    assert both["detail"].startswith("**Ketorolac with a bleeding and pregnancy caution**")


def test_patient_view_ketorolac_card_does_not_advise_naproxen_when_contraindicated(client):
    meds = [med_request("k", *KETOROLAC_ORAL, authored="2026-11-15", supply_days=10)]
    detail = card(view(client, medications=meds, conditions=[CKD4]), "ketorolac-duration")["detail"]
    assert "consider acetaminophen." in detail and "naproxen" not in detail
    assert "naproxen with GI protection" in card(view(client, medications=meds), "ketorolac-duration")["detail"]


def test_the_contraindication_summary_says_how_many_more_reasons_the_detail_lists(client):
    gi = condition(
        "gi", "K25.4", "Chronic or unspecified gastric ulcer with hemorrhage", system=ICD10, status="resolved"
    )
    resp = order(client, [draft("k", *KETOROLAC_INJ, supply_days=2, route="im")], conditions=[CKD4, gi])
    c = card(resp, "ketorolac-contraindication")
    assert (
        c["summary"]
        == "Ketorolac is contraindicated (advanced renal impairment, and 1 more). Remove it; consider acetaminophen."
    )
    assert (
        "- history of peptic ulcer / GI bleeding: Chronic or unspecified gastric ulcer with hemorrhage" in c["detail"]
    )


def test_a_renewal_beside_a_current_course_replaces_all_of_it(client):
    """Seed 01: oral ketorolac since 11-13, still current today, renewed for 5 days. Replacing the ketorolac replaces
    all of it: the draft becomes naproxen and the running order is stopped (so it is no second NSAID beside it)."""
    current = med_request("k0", *KETOROLAC_ORAL, authored="2026-11-13", supply_days=10, route="oral")
    resp = order(
        client, [draft("k", *KETOROLAC_ORAL, supply_days=5, route="oral")], hook="order-sign", medications=[current]
    )
    c = card(resp, "ketorolac-duration")
    assert c["summary"] == (
        "Ketorolac would run 14 days (limit 5, all routes combined). Keep the total to 5 days or switch to "
        "another NSAID."
    )
    (replace,) = c["suggestions"]
    assert replace["label"] == "Replace with naproxen 500 mg twice daily"
    first, stop = replace["actions"]
    assert (first["type"], first["resource"]["id"]) == ("update", "k")
    assert first["resource"]["medicationCodeableConcept"]["coding"][0]["code"] == "198014"
    assert (stop["type"], stop["resource"]["id"], stop["resource"]["status"]) == ("update", "k0", "stopped")


def test_patient_view_shows_the_days_allowed_and_quotes_the_boxed_warning(client):
    resp = view(
        client, medications=[med_request("k", *KETOROLAC_ORAL, authored="2026-11-13", supply_days=10, route="oral")]
    )
    c = card(resp, "ketorolac-duration")
    assert c["summary"].startswith("Ketorolac is on day 10 (limit 5")
    assert "| Days allowed from today | 0 (day 5 was 2026-11-17) |" in c["detail"]
    assert c["detail"].endswith('should not exceed 5 days."*')


def test_the_contraindication_card_carries_the_dose_over_the_cap(client):
    """One problem, one card: a contraindicated order whose dose is also above the cap says so in the one card."""
    old = patient("p1", birth="1954-01-01")  # 72: 60 mg/day
    rx = draft("k", *KETOROLAC_INJ, route="im", supply_days=2, dose_mg=30, per_day=4)
    resp = order(client, [rx], conditions=[CKD4], patient=old)
    assert topics(resp) == [("ketorolac-contraindication", "critical")]
    assert (
        "The dose is also above the label maximum: 120 mg/day IM (cap 60 mg/day)"
        in card(resp, "ketorolac-contraindication")["detail"]
    )


def test_a_one_time_dose_over_the_single_dose_cap_keeps_its_timing(client):
    """60 mg IV once at 40 (label single dose: 30 mg IV) gets a card; the update sets 30 mg and adds no regimen."""
    rx = draft("k", *KETOROLAC_INJ, route="iv", supply_days=1, dose_mg=60)  # no frequency: one dose
    c = card(order(client, [rx], patient=patient("p1", birth="1986-01-01")), "ketorolac-dose")
    assert c["summary"] == "Ketorolac dose above the label cap: single IV dose 60 mg (cap 30 mg). Reduce the dose."
    (suggestion,) = c["suggestions"]
    assert suggestion["label"] == "Change to 30 mg once"
    dosage = suggestion["actions"][0]["resource"]["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 30 and "timing" not in dosage
    im = draft("k", *KETOROLAC_INJ, route="im", supply_days=1, dose_mg=60)  # 60 mg IM once is the label's dose
    assert ("ketorolac-dose", "warning") not in topics(order(client, [im], patient=patient("p1", birth="1986-01-01")))
