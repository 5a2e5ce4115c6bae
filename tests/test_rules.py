"""Each required rule through the HTTP API with a pinned clock (today = 2026-11-22): inclusion, exclusions, boundaries."""

from __future__ import annotations

import pytest

from tests.conftest import bundle, call, hook_request, patient, topics
from tests.factories import (
    CPT,
    DEXAMETHASONE_INJ,
    ICD10,
    KETOROLAC_INJ,
    KETOROLAC_ORAL,
    LBP,
    MRI_LUMBAR,
    PREDNISONE,
    SCIATICA,
    SNOMED,
    XR_LUMBAR,
    condition,
    draft,
    finding,
    med_admin,
    med_request,
    observation,
    service_request,
)

LBP_RECENT = condition("lbp", *LBP, onset="2026-11-02")  # 20 days ago


def order(client, drafts, *, hook="order-select", selections=None, **prefetch):
    pre = {k: bundle(*v) if isinstance(v, list) else v for k, v in prefetch.items()}
    return call(client, hook_request(hook, drafts=drafts, selections=selections, prefetch=pre))


def view(client, **prefetch):
    pre = {k: bundle(*v) if isinstance(v, list) else v for k, v in prefetch.items()}
    return call(client, hook_request("patient-view", prefetch=pre))


def card(resp, topic):
    return next(c for c in resp.get_json()["cards"] if c["source"]["topic"]["code"] == topic)


# --- ketorolac-duration -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("supply, unit, fires", [(5, "d", False), (6, "d", True), (120, "h", False), (121, "h", True),
                                                 (1, "wk", True), (30, "d", True)])
def test_ketorolac_duration_boundaries(client, supply, unit, fires):
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=supply, supply_unit=unit)])
    assert (("ketorolac-duration", "critical") in topics(resp)) is fires


def test_ketorolac_counts_parenteral_doses_already_given(client):
    given = [med_admin("a1", *KETOROLAC_INJ, "2026-11-21T08:00:00Z", route="im", dose_mg=30)]
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=5)], medicationAdministrations=given)
    assert topics(resp) == [("ketorolac-duration", "critical")]
    c = card(resp, "ketorolac-duration")
    assert c["summary"].startswith("Ketorolac would run 6 days (limit 5")
    assert "| First ketorolac dose | 2026-11-21 (already given: 1 ML Ketorolac Tromethamine 30 MG/ML Injection) |" in c["detail"]
    assert "| Routes | IM, oral |" in c["detail"]
    assert "| Days allowed from today | 4 |" in c["detail"]
    assert c["suggestions"][1]["label"] == "Shorten this order to 4 days (supply and duration)"
    assert "no parenteral dose" not in c["detail"]  # IM yesterday: oral continuation is as labelled


def test_ketorolac_exposure_weeks_ago_is_a_separate_course(client):
    given = [med_admin("a1", *KETOROLAC_INJ, "2026-11-02", route="im")]
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=5)], medicationAdministrations=given)
    assert ("ketorolac-duration", "critical") not in topics(resp)


def test_ophthalmic_ketorolac_is_not_counted(client):
    eye = [med_request("eye", None, "ketorolac tromethamine 0.5 % Ophthalmic Solution", authored="2026-11-19", supply_days=10,
                       text_only=True)]
    resp = order(client, [draft("k", *KETOROLAC_INJ, supply_days=5, route="iv")], medications=eye)
    assert topics(resp) == []


def test_open_ended_ketorolac_draft_gets_a_warning_not_critical(client):
    resp = order(client, [draft("k", *KETOROLAC_INJ, route="im")])
    assert topics(resp) == [("ketorolac-duration", "warning")]
    assert "no end date" in card(resp, "ketorolac-duration")["summary"]


def test_two_ketorolac_orders_give_one_card_naming_both(client):
    drafts = [draft("k1", *KETOROLAC_INJ, route="im", supply_days=3),
              draft("k2", *KETOROLAC_ORAL, supply_days=5, authored="2026-11-24")]  # oral continuation: days 1–7
    resp = order(client, drafts, hook="order-sign")
    assert topics(resp) == [("ketorolac-duration", "critical")]
    detail = card(resp, "ketorolac-duration")["detail"]
    assert "30 MG/ML Injection (IM); Ketorolac Tromethamine 10 MG Oral Tablet (oral)" in detail
    assert "| Planned last day | 2026-11-28 (5-day supply) |" in detail


def test_brand_text_only_ketorolac_is_recognised(client):
    resp = order(client, [draft("k", None, "Toradol 10 mg tablets", text_only=True, supply_days=10, route="oral")])
    assert ("ketorolac-duration", "critical") in topics(resp)


def test_ketorolac_not_in_selections_gets_no_card(client):
    drafts = [draft("k", *KETOROLAC_ORAL, supply_days=10), draft("n", "198014", "Naproxen 500 MG Oral Tablet", supply_days=10)]
    assert topics(order(client, drafts, selections=["MedicationRequest/n"])) == []


@pytest.mark.parametrize("authored, fires", [("2026-11-15", True), ("2026-11-18", False)])
def test_patient_view_active_ketorolac_past_day_5(client, authored, fires):
    meds = [med_request("k", *KETOROLAC_ORAL, authored=authored, supply_days=10)]
    resp = view(client, medications=meds)
    assert (topics(resp) == [("ketorolac-duration", "critical")]) is fires
    if fires:
        c = card(resp, "ketorolac-duration")
        action = c["suggestions"][0]["actions"][0]
        assert action["type"] == "update" and action["resource"]["status"] == "stopped" and action["resource"]["id"] == "k"


# --- ketorolac-oral-start, dose, contraindication -------------------------------------------------------------------

def test_oral_ketorolac_without_parenteral_gets_oral_start_warning(client):
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=3)])
    assert topics(resp) == [("ketorolac-oral-start", "warning")]
    labels = [s["label"] for s in card(resp, "ketorolac-oral-start")["suggestions"]]
    assert labels == ["Replace with naproxen 500 mg twice daily", "Replace with ibuprofen 600 mg every 8 hours"]


def test_oral_ketorolac_dose_above_40mg_per_day(client):
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=3, dose_mg=20, per_day=4)],
                 medicationAdministrations=[med_admin("a", *KETOROLAC_INJ, "2026-11-22T06:00:00Z", route="iv")])
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


def test_uncomputable_dose_gives_no_dose_card(client):
    resp = order(client, [draft("k", *KETOROLAC_INJ, route="im", supply_days=2)])
    assert topics(resp) == []


@pytest.mark.parametrize("prefetch, indicator", [
    ({"conditions": [condition("gi", "K25.4", "Chronic gastric ulcer with hemorrhage", system=ICD10, status="resolved")]}, "critical"),
    ({"labs": [observation("e", "98979-8", "eGFR", 25, "mL/min/{1.73_m2}", "2026-10-01")]}, "critical"),
    ({"medications": [med_request("ibu", "197806", "Ibuprofen 600 MG Oral Tablet", authored="2026-11-20")]}, "critical"),
    ({"medications": [med_request("w", "855290", "Warfarin Sodium 1 MG Oral Tablet [Coumadin]", authored="2026-01-01")]}, "warning"),
])
def test_ketorolac_contraindications(client, prefetch, indicator):
    drafts = [draft("k", *KETOROLAC_INJ, route="im", supply_days=2)]
    resp = order(client, drafts, **prefetch)
    assert topics(resp) == [("ketorolac-contraindication", indicator)]
    c = card(resp, "ketorolac-contraindication")
    (replace,) = c["suggestions"][0]["actions"]  # the draft itself becomes acetaminophen (same id)
    assert (replace["type"], replace["resource"]["id"]) == ("update", "k")
    assert replace["resource"]["medicationCodeableConcept"]["coding"][0]["code"] == "198440"
    assert "route" in replace["resource"]["dosageInstruction"][0] and replace["resource"]["dosageInstruction"][0]["route"]["coding"][0]["code"] == "26643006"


def test_egfr_older_than_12_months_is_not_used(client):
    resp = order(client, [draft("k", *KETOROLAC_INJ, route="im", supply_days=2)],
                 labs=[observation("e", "98979-8", "eGFR", 25, "mL/min/{1.73_m2}", "2025-06-01")])
    assert topics(resp) == []


# --- systemic-steroid-back-pain -------------------------------------------------------------------------------------

def test_steroid_for_back_pain_warns_with_alternatives(client):
    resp = order(client, [draft("s", *PREDNISONE, supply_days=5)], conditions=[LBP_RECENT])
    assert topics(resp) == [("systemic-steroid-back-pain", "warning")]
    c = card(resp, "systemic-steroid-back-pain")
    assert [s["label"] for s in c["suggestions"]] == ["Replace with naproxen 500 mg twice daily", "Replace with physiotherapy referral",
                                                     "Remove the steroid order"]
    physio = c["suggestions"][1]["actions"][0]["resource"]  # created first, then the steroid order removed
    assert physio["resourceType"] == "ServiceRequest" and physio["code"]["coding"][0]["code"] == "308447003"
    assert c["source"]["url"] == "https://www.acpjournals.org/doi/10.7326/M16-2367"


@pytest.mark.parametrize("extra_condition", [condition("a", "J45.901", "Asthma with acute exacerbation", system=ICD10),
                                             condition("r", "69896004", "Rheumatoid arthritis")])
def test_steroid_with_another_indication_is_silent(client, extra_condition):
    resp = order(client, [draft("s", *PREDNISONE, supply_days=5)], conditions=[LBP_RECENT, extra_condition])
    assert topics(resp) == []


@pytest.mark.parametrize("route", ["epidural", "intra-articular"])
def test_local_steroid_injection_is_silent(client, route):
    resp = order(client, [draft("s", None, "methylprednisolone acetate 80 MG/ML Injectable Suspension", text_only=True, route=route)],
                 conditions=[LBP_RECENT])
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
    resp = view(client, conditions=[LBP_RECENT], medications=[med_request("s", *PREDNISONE, authored="2026-11-20", supply_days=10)])
    assert topics(resp) == [("systemic-steroid-back-pain", "warning")]


# --- imaging-early ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("onset, fires", [("2026-11-02", True), ("2026-10-11", True), ("2026-10-10", False), (None, False),
                                          ("2026-11", True), ("2026-10", False), ("2026", False)])
def test_imaging_early_window(client, onset, fires):
    conditions = [condition("lbp", *LBP, onset=onset)]
    resp = order(client, [service_request("mri", *MRI_LUMBAR)], conditions=conditions)
    assert (topics(resp) == [("imaging-early", "warning")]) is fires


def test_imaging_early_card_content(client):
    resp = order(client, [service_request("xr", *XR_LUMBAR)], conditions=[LBP_RECENT])
    c = card(resp, "imaging-early")
    assert c["summary"] == "Back pain began 20 days ago with no red flags: imaging is not advised before 6 weeks. Reassess on 2026-12-14."
    physio, cancel = c["suggestions"][0]["actions"]  # the new order first: clients stop at the first delete
    assert physio["type"] == "create" and physio["resource"]["code"]["coding"][0]["code"] == "308447003"
    assert cancel == {"type": "delete", "description": "Cancel XR lumbar spine 2-3 views", "resourceId": "ServiceRequest/xr"}


def test_imaging_early_says_when_observed_findings_could_not_be_read(client):
    """An optional key that could not be obtained (omitted, no FHIR server) leaves the red-flag check partial: the card
    says what was checked instead of claiming no red flags."""
    body = hook_request("order-select", drafts=[service_request("xr", *XR_LUMBAR)],
                        prefetch={"conditions": bundle(LBP_RECENT)})
    del body["prefetch"]["findings"]
    resp = call(client, body)
    assert topics(resp) == [("imaging-early", "warning")]
    c = card(resp, "imaging-early")
    assert c["summary"] == ("Back pain began 20 days ago, no red flag on the problem list (exam findings unread): "
                            "imaging not advised before 6 weeks.")
    assert "| Red flags | none on the problem list; findings recorded as observations could not be read — check the " \
           "examination for red flags |" in c["detail"]
    assert len(c["summary"]) < 140


def test_recorded_date_used_when_no_onset(client):
    resp = order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[condition("lbp", *LBP, recorded="2026-11-10")])
    assert topics(resp) == [("imaging-early", "warning")]


def test_red_flag_silences_imaging_early(client):
    conditions = [LBP_RECENT, condition("ca", "Z85.3", "Personal history of malignant neoplasm of breast", system=ICD10)]
    assert topics(order(client, [service_request("mri", *MRI_LUMBAR)], conditions=conditions)) == []


# --- imaging-red-flags -----------------------------------------------------------------------------------------------

def test_cauda_equina_is_critical_with_emergency_mri_and_neurosurgery(client):
    conditions = [LBP_RECENT, condition("ce", "192970008", "Cauda equina syndrome", onset="2026-11-21")]
    resp = view(client, conditions=conditions)
    assert topics(resp) == [("imaging-red-flags", "critical")]
    c = card(resp, "imaging-red-flags")
    assert c["summary"] == "Red flag: cauda equina signs. Order emergency MRI and same-day neurosurgery referral now."
    actions = c["suggestions"][0]["actions"]
    assert [a["resource"]["code"]["coding"][0]["code"] for a in actions] == ["72148", "308482002"]
    assert actions[0]["resource"]["code"]["coding"][1] == {"system": "http://loinc.org", "code": "30679-5",
                                                           "display": "MR Lumbar spine WO contrast"}
    assert actions[0]["resource"]["priority"] == "stat"
    assert "Condition/ce" in c["detail"]


def test_fracture_risk_is_warning_with_radiographs(client):
    conditions = [LBP_RECENT, condition("op", "64859006", "Osteoporosis")]
    resp = view(client, conditions=conditions, patient=patient("p1", birth="1945-01-01", gender="female"))
    c = card(resp, "imaging-red-flags")
    assert c["indicator"] == "warning"
    assert c["suggestions"][0]["actions"][0]["resource"]["code"]["coding"][0]["code"] == "72100"
    assert "Age 81 (female) adds weight" in c["detail"]


def test_fever_alone_is_not_a_red_flag_but_with_ivdu_it_is_an_emergency(client):
    fever = condition("f", "386661006", "Fever")
    assert topics(view(client, conditions=[LBP_RECENT, fever])) == []
    resp = view(client, conditions=[LBP_RECENT, fever, condition("iv", "228388006", "Intravenous drug user")])
    assert topics(resp) == [("imaging-red-flags", "critical")]
    assert card(resp, "imaging-red-flags")["suggestions"][0]["actions"][0]["resource"]["code"]["coding"][0]["code"] == "72158"


def test_red_flag_without_back_pain_is_silent(client):
    assert topics(view(client, conditions=[condition("ce", "192970008", "Cauda equina syndrome")])) == []


def test_red_flag_already_addressed_is_silent(client):
    conditions = [LBP_RECENT, condition("ca", "363346000", "Malignant neoplastic disease", onset="2026-06-01")]
    history = [service_request("old", *MRI_LUMBAR, status="completed", authored="2026-07-01")]
    assert topics(view(client, conditions=conditions, serviceRequests=history)) == []
    assert topics(view(client, conditions=conditions)) == [("imaging-red-flags", "warning")]


def test_red_flag_fires_when_something_else_is_ordered(client):
    conditions = [LBP_RECENT, condition("ce", "M21.372", "Foot drop, left foot", system=ICD10)]
    resp = order(client, [draft("apap", "198440", "Acetaminophen 500 MG Oral Tablet", supply_days=10)], conditions=conditions)
    assert topics(resp) == [("imaging-red-flags", "critical")]
    resp = order(client, [service_request("mri", *MRI_LUMBAR)], conditions=conditions)
    assert topics(resp) == []  # the clinician is acting on the red flag


@pytest.mark.parametrize("when, fires", [("2026-11-20", True), ("2026-11-02", True), ("2026-11-01", False),  # episode began 11-02
                                         ("2026-11-23", False), (None, False), ("2026-11", False),  # may be 11-01
                                         ("2026-11-21T23:30:00-05:00", True)])
def test_red_flag_observed_during_the_episode_is_a_red_flag(client, when, fires):
    findings = [finding("o1", "267064002", "Retention of urine", when)]
    resp = view(client, conditions=[LBP_RECENT], findings=findings)
    assert topics(resp) == ([("imaging-red-flags", "critical")] if fires else [])
    if fires:
        c = card(resp, "imaging-red-flags")
        assert c["summary"] == "Red flag: cauda equina signs. Order emergency MRI and same-day neurosurgery referral now."
        assert f"- **cauda equina signs** — Retention of urine (Observation/o1, observed {when[:10]})" in c["detail"]


def test_observed_red_flag_needs_a_dated_episode(client):
    undated = condition("lbp", *LBP)
    findings = [finding("o1", "267064002", "Retention of urine", "2026-11-20")]
    assert topics(view(client, conditions=[undated], findings=findings)) == []
    assert topics(view(client, conditions=[undated, condition("ce", "192970008", "Cauda equina syndrome")])) == [
        ("imaging-red-flags", "critical")]  # a Condition needs no date: it is active


def test_denied_finding_is_no_red_flag_and_a_recorded_one_silences_early_imaging(client):
    mri = [service_request("mri", *MRI_LUMBAR)]
    denied = [finding("o1", "449813001", "Numbness of saddle area", "2026-11-20", valueBoolean=False)]
    assert topics(order(client, mri, conditions=[LBP_RECENT], findings=denied)) == [("imaging-early", "warning")]
    present = [finding("o1", "449813001", "Numbness of saddle area", "2026-11-20", valueBoolean=True)]
    assert topics(order(client, mri, conditions=[LBP_RECENT], findings=present)) == []
    apap = [draft("apap", "198440", "Acetaminophen 500 MG Oral Tablet", supply_days=10)]
    assert topics(order(client, apap, conditions=[LBP_RECENT], findings=present)) == [("imaging-red-flags", "critical")]


def test_observed_fever_with_ivdu_is_an_emergency(client):
    fever = [finding("t", "386661006", "Fever", "2026-11-21")]
    assert topics(view(client, conditions=[LBP_RECENT], findings=fever)) == []
    resp = view(client, conditions=[LBP_RECENT, condition("iv", "228388006", "Intravenous drug user")], findings=fever)
    assert topics(resp) == [("imaging-red-flags", "critical")]
    assert "fever with IV drug use (possible spinal infection)** — Fever (Observation/t, observed 2026-11-21)" in card(
        resp, "imaging-red-flags")["detail"]


# --- persistent radicular, repeat imaging, referral ------------------------------------------------------------------

SCIATICA_OLD = condition("sc", "M54.41", "Lumbago with sciatica, right side", system=ICD10, onset="2026-09-01")  # 82 days
NAPROXEN = med_request("nap", "198014", "Naproxen 500 MG Oral Tablet", authored="2026-09-05", supply_days=30, status="completed")


def test_persistent_radicular_pain(client):
    resp = view(client, conditions=[SCIATICA_OLD], medications=[NAPROXEN])
    assert topics(resp) == [("imaging-persistent-radicular", "info")]
    c = card(resp, "imaging-persistent-radicular")
    assert "Naproxen 500 MG Oral Tablet (from 2026-09-05)" in c["detail"]
    assert "overrideReasons" not in c


def test_persistent_radicular_needs_conservative_care_and_no_recent_mri(client):
    assert topics(view(client, conditions=[SCIATICA_OLD])) == []
    mri = [service_request("m", *MRI_LUMBAR, status="completed", authored="2026-06-01")]
    assert topics(view(client, conditions=[SCIATICA_OLD], medications=[NAPROXEN], serviceRequests=mri)) == []


def test_mri_ordered_for_persistent_radicular_pain_is_appropriate(client):
    resp = order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[SCIATICA_OLD], medications=[NAPROXEN])
    assert topics(resp) == []


def test_repeat_mri_within_12_months(client):
    mri = [service_request("m", *MRI_LUMBAR, status="completed", authored="2026-06-01")]
    resp = order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[SCIATICA_OLD], serviceRequests=mri)
    assert topics(resp) == [("imaging-repeat", "info")]
    assert "ServiceRequest/m" in card(resp, "imaging-repeat")["detail"]


def test_repeat_mri_after_a_new_red_flag_is_silent(client):
    mri = [service_request("m", *MRI_LUMBAR, status="completed", authored="2026-06-01")]
    new_flag = condition("fd", "M21.371", "Foot drop, right foot", system=ICD10, onset="2026-11-01")
    resp = order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[SCIATICA_OLD, new_flag], serviceRequests=mri)
    assert topics(resp) == []


@pytest.mark.parametrize("onset, fires", [("2026-08-30", True), ("2026-08-31", False)])  # 84 days vs 83 days
def test_referral_after_12_weeks(client, onset, fires):
    sc = condition("sc", "M54.16", "Radiculopathy, lumbar region", system=ICD10, onset=onset)
    resp = view(client, conditions=[sc])
    assert (("referral-spine", "warning") in topics(resp)) is fires


def test_referral_not_repeated_when_on_record(client):
    sc = condition("sc", "M54.16", "Radiculopathy, lumbar region", system=ICD10, onset="2026-05-01")
    ref = service_request("r", SNOMED, "306265007", "Referral to pain management specialist", status="completed", authored="2026-07-01")
    assert ("referral-spine", "warning") not in topics(view(client, conditions=[sc], serviceRequests=[ref]))


def test_motor_deficit_red_flag_card_carries_the_referral(client):
    conditions = [SCIATICA_OLD, condition("fd", "102568007", "Paresis of lower extremity")]
    assert topics(view(client, conditions=conditions)) == [("imaging-red-flags", "critical")]


def test_referral_for_deficit_when_imaging_done(client):
    conditions = [SCIATICA_OLD, condition("fd", "102568007", "Paresis of lower extremity", onset="2026-10-01")]
    mri = [service_request("m", CPT, "72148", "MRI lumbar", status="completed", authored="2026-10-05")]
    resp = view(client, conditions=conditions, serviceRequests=mri)
    assert topics(resp) == [("referral-spine", "warning")]
    assert "within 2 weeks" in card(resp, "referral-spine")["summary"]


def test_long_term_active_steroid_is_a_fracture_risk_flag_even_if_ordered_long_ago(client):
    old_active = med_request("pred", *PREDNISONE, authored="2024-10-01", route="oral", dose_mg=10, per_day=1)
    resp = view(client, conditions=[LBP_RECENT], medications=[old_active])
    assert ("imaging-red-flags", "warning") in topics(resp)
    assert "fracture risk (long-term systemic steroids)" in card(resp, "imaging-red-flags")["detail"]


def test_finished_courses_beyond_every_lookback_are_not_read(client):
    old = med_request("nap", "198014", "Naproxen 500 MG Oral Tablet", authored="2024-01-05", supply_days=30, status="completed")
    assert topics(view(client, conditions=[SCIATICA_OLD], medications=[old])) == []  # not conservative care within 12 months


# --- DSTU2/STU3 shapes (older servers, the public sandbox's default server) ------------------------------------------

def _dstu2_condition(cid, code, display, onset, **extra):
    return {"resourceType": "Condition", "id": cid, "patient": {"reference": "Patient/p1"}, "clinicalStatus": "active",
            "verificationStatus": extra.get("verification", "confirmed"), "onsetDateTime": onset,
            "code": {"coding": [{"system": SNOMED, "code": code, "display": display}]}}


def test_dstu2_medication_order_and_conditions_are_read(client):
    order_ = {"resourceType": "MedicationOrder", "id": "mo1", "status": "active", "dateWritten": "2026-11-14",
              "patient": {"reference": "Patient/p1"},
              "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "834022"}]},
              "dosageInstruction": [{"timing": {"repeat": {"frequency": 4, "period": 1, "periodUnit": "d"}},
                                     "doseQuantity": {"value": 10, "unit": "mg", "code": "mg"}}],
              "dispenseRequest": {"expectedSupplyDuration": {"value": 10, "unit": "days", "code": "d"}}}
    conditions = [_dstu2_condition("c1", *LBP, "2026-11-10"), _dstu2_condition("c2", "192970008", "Cauda equina syndrome", "2026-11-21")]
    resp = view(client, conditions=conditions, medications=[order_])
    assert topics(resp) == [("ketorolac-duration", "critical"), ("imaging-red-flags", "critical")]


def test_stu3_refuted_condition_is_ignored(client):
    conditions = [_dstu2_condition("c1", *LBP, "2026-11-10"),
                  _dstu2_condition("c2", "192970008", "Cauda equina syndrome", "2026-11-21", verification="refuted")]
    assert topics(view(client, conditions=conditions)) == []


def test_active_open_ended_ketorolac_counts_until_today(client):
    open_ended = med_request("k0", *KETOROLAC_ORAL, authored="2026-11-19", route="oral")  # active, no duration
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=5, route="oral")], medications=[open_ended])
    assert topics(resp) == [("ketorolac-duration", "critical")]
    assert "Ketorolac would run 8 days" in card(resp, "ketorolac-duration")["summary"]  # 19th → 26th
