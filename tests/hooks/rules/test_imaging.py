"""Imaging and referral rules: early imaging, red flags (incl. fever and injection drug use), persistent radicular pain, repeat imaging, referral timing, prior imaging from radiology reports, chronic and recorded-only dates."""

from __future__ import annotations

import pytest

from cds_service.terminology import LOINC
from tests.conftest import bundle, call, hook_request, patient, topics
from tests.factories import (
    CPT,
    ICD10,
    LBP,
    MRI_LUMBAR,
    PREDNISONE,
    SCIATICA,
    SNOMED,
    XR_LUMBAR,
    condition,
    draft,
    finding,
    med_request,
    observation,
    service_request,
)
from tests.hooks.support import (
    CHRONIC_LBP,
    IVDU,
    LBP_10D,
    LBP_RECENT,
    NAPROXEN,
    NAPROXEN_CODE,
    SCIATICA_OLD,
    card,
    order,
    view,
)


def _report(rid, when, status="final", code=("24968-0", "MR Lumbar spine")):
    return {"resourceType": "DiagnosticReport", "id": rid, "status": status, "subject": {"reference": "Patient/p1"},
            "category": [{"coding": [{"system": LOINC, "code": "LP29684-5", "display": "Radiology"}]}],
            "code": {"coding": [{"system": LOINC, "code": code[0], "display": code[1]}]},
            "effectiveDateTime": when, "issued": when + "T16:00:00Z"}


def _temp(oid, value, unit, when):
    return observation(oid, "8310-5", "Body temperature", value, unit, when)


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


def test_fever_with_a_substance_use_code_names_both_records_and_says_drug_use(client):
    """Opioid dependence (ICD-10-CM F11.20) is in the drug-use group that makes a fever an emergency, but it does not
    say the drug is injected: the card says "drug use" and names the record it came from beside the fever's."""
    fever = [finding("t", "386661006", "Fever", "2026-11-21")]
    opioid = condition("od", "F11.20", "Opioid dependence, uncomplicated", system=ICD10)
    resp = view(client, conditions=[LBP_RECENT, opioid], findings=fever)
    c = card(resp, "imaging-red-flags")
    assert c["indicator"] == "critical"
    assert ("- **fever with drug use (possible spinal infection)** — Fever (Observation/t, observed 2026-11-21); "
            "with Opioid dependence, uncomplicated (Condition/od)") in c["detail"]
    assert "IV drug use" not in c["summary"] + c["detail"]
    injection = view(client, conditions=[LBP_RECENT, condition("iv", "228388006", "Intravenous drug user")], findings=fever)
    assert "; with Intravenous drug user (Condition/iv)" in card(injection, "imaging-red-flags")["detail"]


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


@pytest.mark.parametrize("status, fires", [("final", True), ("amended", True), ("cancelled", False), ("entered-in-error", False)])
def test_a_radiology_report_is_prior_imaging_for_repeat_mri(client, status, fires):
    resp = order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[condition("s", *SCIATICA, onset="2026-06-01")],
                 diagnosticReports=[_report("dr1", "2026-08-20", status)])
    assert (topics(resp) == [("imaging-repeat", "info")]) is fires
    if fires:
        assert "MR Lumbar spine (2026-08-20, DiagnosticReport/dr1)" in card(resp, "imaging-repeat")["detail"]


def test_a_recent_mri_report_means_no_persistent_radicular_card(client):
    conditions = [condition("s", *SCIATICA, onset="2026-09-01")]
    meds = [med_request("n", NAPROXEN_CODE, "Naproxen 500 MG Oral Tablet", authored="2026-09-05", supply_days=14, status="completed")]
    assert ("imaging-persistent-radicular", "info") in topics(view(client, conditions=conditions, medications=meds))
    resp = view(client, conditions=conditions, medications=meds, diagnosticReports=[_report("dr1", "2026-10-20")])
    assert ("imaging-persistent-radicular", "info") not in topics(resp)


def test_imaging_reported_since_the_red_flag_means_it_is_under_way(client):
    conditions = [LBP_10D, condition("ca", "Z85.3", "Personal history of malignant neoplasm of breast", system=ICD10,
                                     onset="2020-01-01")]
    assert topics(view(client, conditions=conditions)) == [("imaging-red-flags", "warning")]
    assert topics(view(client, conditions=conditions, diagnosticReports=[_report("dr1", "2026-11-18")])) == []


def test_a_chronic_back_pain_code_is_never_early(client):
    resp = order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[condition("c", *CHRONIC_LBP, recorded="2026-11-12")])
    assert topics(resp) == []  # 12 weeks or more by definition: no "began 10 days ago"


def test_chronic_radicular_pain_recorded_recently_is_due_a_specialist(client):
    conditions = [condition("c", *CHRONIC_LBP, recorded="2026-11-12"), condition("s", *SCIATICA, recorded="2026-11-12")]
    resp = view(client, conditions=conditions)
    assert ("referral-spine", "warning") in topics(resp)
    detail = card(resp, "referral-spine")["detail"]
    assert "on or before 2026-08-30 (chronic back pain: 12 weeks or more)" in detail
    assert "10 days" not in detail


def test_recorded_date_alone_is_an_upper_bound_and_the_card_says_so(client):
    resp = order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[condition("lbp", *LBP, recorded="2026-11-10")])
    c = card(resp, "imaging-early")
    assert c["summary"].startswith("Back pain was first recorded 12 days ago with no red flags")
    assert "| Episode start | on or before 2026-11-10 (date recorded; onset not recorded) |" in c["detail"]
    assert "The onset was not recorded" in c["detail"]
    with_onset = card(order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[LBP_10D]), "imaging-early")
    assert with_onset["summary"].startswith("Back pain began 10 days ago") and "onset was not recorded" not in with_onset["detail"]


@pytest.mark.parametrize("reading", [_temp("t", 38.4, "Cel", "2026-11-20"), _temp("t", 101.2, "[degF]", "2026-11-21")])
def test_a_fever_measured_in_the_episode_with_injection_drug_use_is_an_emergency(client, reading):
    resp = view(client, conditions=[LBP_10D, IVDU], labs=[reading])
    assert topics(resp) == [("imaging-red-flags", "critical")]
    c = card(resp, "imaging-red-flags")
    assert "fever with IV drug use (possible spinal infection)" in c["detail"] and "Observation/t" in c["detail"]
    assert c["suggestions"][0]["actions"][0]["resource"]["code"]["coding"][0]["code"] == "72158"


def test_fever_with_immunosuppression_is_an_emergency(client):
    immuno = condition("hiv", "B20", "Human immunodeficiency virus [HIV] disease", system=ICD10)
    resp = view(client, conditions=[LBP_10D, immuno], labs=[_temp("t", 38.0, "Cel", "2026-11-21")])
    assert ("imaging-red-flags", "critical") in topics(resp)


@pytest.mark.parametrize("labs, latest", [([], "no temperature recorded in this episode"),
                                          ([_temp("t", 37.2, "Cel", "2026-11-21")], "latest temperature 37.2 °C on 2026-11-21"),
                                          ([_temp("t", 38.9, "Cel", "2026-11-01")], "no temperature recorded in this episode")])
def test_injection_drug_use_without_fever_asks_for_the_work_up(client, labs, latest):
    resp = view(client, conditions=[LBP_10D, IVDU], labs=labs)  # a fever before this episode belongs to another story
    assert topics(resp) == [("imaging-red-flags", "info")]
    c = card(resp, "imaging-red-flags")
    assert c["summary"].startswith("Injection drug use with back pain, no fever recorded: spinal infection risk. Measure temperature")
    assert latest in c["detail"] and "suggestions" not in c and "overrideReasons" not in c


def test_injection_drug_use_silences_the_early_imaging_card(client):
    assert topics(order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[LBP_10D, IVDU])) == []
    # opioid use disorder is not injection drug use: early imaging is still not advised
    oud = condition("oud", "F11.20", "Opioid dependence, uncomplicated", system=ICD10)
    assert topics(order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[LBP_10D, oud])) == [("imaging-early", "warning")]
