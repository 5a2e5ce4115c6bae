"""Imaging and referral rules: early imaging, radicular pain, repeat MRI, referrals, radiology reports, onset dates."""

from __future__ import annotations

import pytest

from cds_service.terminology import LOINC
from tests.conftest import bundle, call, hook_request, topics
from tests.factories import (
    CPT,
    ICD10,
    LBP,
    MRI_LUMBAR,
    SCIATICA,
    SNOMED,
    XR_LUMBAR,
    condition,
    med_request,
    service_request,
)
from tests.hooks.support import (
    CHRONIC_LBP,
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
    return {
        "resourceType": "DiagnosticReport",
        "id": rid,
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "category": [{"coding": [{"system": LOINC, "code": "LP29684-5", "display": "Radiology"}]}],
        "code": {"coding": [{"system": LOINC, "code": code[0], "display": code[1]}]},
        "effectiveDateTime": when,
        "issued": when + "T16:00:00Z",
    }


@pytest.mark.parametrize(
    "onset, fires",
    [
        ("2026-11-02", True),
        ("2026-10-11", True),
        ("2026-10-10", False),
        (None, False),
        ("2026-11", True),
        ("2026-10", False),
        ("2026", False),
    ],
)
def test_imaging_early_window(client, onset, fires):
    conditions = [condition("lbp", *LBP, onset=onset)]
    resp = order(client, [service_request("mri", *MRI_LUMBAR)], conditions=conditions)
    assert (topics(resp) == [("imaging-early", "warning")]) is fires


def test_imaging_early_card_content(client):
    resp = order(client, [service_request("xr", *XR_LUMBAR)], conditions=[LBP_RECENT])
    c = card(resp, "imaging-early")
    assert (
        c["summary"] == "Back pain began 20 days ago with no red flags: imaging is not advised before 6 weeks. "
        "Reassess on 2026-12-14."
    )
    physio, cancel = c["suggestions"][0]["actions"]  # the new order first: clients stop at the first delete
    assert physio["type"] == "create" and physio["resource"]["code"]["coding"][0]["code"] == "308447003"
    assert cancel == {
        "type": "delete",
        "description": "Cancel XR lumbar spine 2-3 views",
        "resourceId": "ServiceRequest/xr",
    }


def test_imaging_early_says_when_observed_findings_could_not_be_read(client):
    """An optional key that could not be obtained (omitted, no FHIR server) leaves the red-flag check partial: the card
    says what was checked instead of claiming no red flags."""
    body = hook_request(
        "order-select", drafts=[service_request("xr", *XR_LUMBAR)], prefetch={"conditions": bundle(LBP_RECENT)}
    )
    del body["prefetch"]["findings"]
    resp = call(client, body)
    assert topics(resp) == [("imaging-early", "warning")]
    c = card(resp, "imaging-early")
    assert c["summary"] == (
        "Back pain began 20 days ago, no red flag on the problem list (exam findings unread): "
        "imaging not advised before 6 weeks."
    )
    assert (
        "| Red flags | none on the problem list; findings recorded as observations could not be read — check the "
        "examination for red flags |" in c["detail"]
    )
    assert len(c["summary"]) < 140


def test_recorded_date_used_when_no_onset(client):
    resp = order(
        client, [service_request("mri", *MRI_LUMBAR)], conditions=[condition("lbp", *LBP, recorded="2026-11-10")]
    )
    assert topics(resp) == [("imaging-early", "warning")]


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
    resp = order(
        client, [service_request("mri", *MRI_LUMBAR)], conditions=[SCIATICA_OLD, new_flag], serviceRequests=mri
    )
    assert topics(resp) == []


@pytest.mark.parametrize("onset, fires", [("2026-08-30", True), ("2026-08-31", False)])  # 84 days vs 83 days
def test_referral_after_12_weeks(client, onset, fires):
    sc = condition("sc", "M54.16", "Radiculopathy, lumbar region", system=ICD10, onset=onset)
    resp = view(client, conditions=[sc])
    assert (("referral-spine", "warning") in topics(resp)) is fires


def test_referral_not_repeated_when_on_record(client):
    sc = condition("sc", "M54.16", "Radiculopathy, lumbar region", system=ICD10, onset="2026-05-01")
    ref = service_request(
        "r", SNOMED, "306265007", "Referral to pain management specialist", status="completed", authored="2026-07-01"
    )
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


@pytest.mark.parametrize(
    "status, fires", [("final", True), ("amended", True), ("cancelled", False), ("entered-in-error", False)]
)
def test_a_radiology_report_is_prior_imaging_for_repeat_mri(client, status, fires):
    resp = order(
        client,
        [service_request("mri", *MRI_LUMBAR)],
        conditions=[condition("s", *SCIATICA, onset="2026-06-01")],
        diagnosticReports=[_report("dr1", "2026-08-20", status)],
    )
    assert (topics(resp) == [("imaging-repeat", "info")]) is fires
    if fires:
        assert "MR Lumbar spine (2026-08-20, DiagnosticReport/dr1)" in card(resp, "imaging-repeat")["detail"]


def test_a_recent_mri_report_means_no_persistent_radicular_card(client):
    conditions = [condition("s", *SCIATICA, onset="2026-09-01")]
    meds = [
        med_request(
            "n", NAPROXEN_CODE, "Naproxen 500 MG Oral Tablet", authored="2026-09-05", supply_days=14, status="completed"
        )
    ]
    assert ("imaging-persistent-radicular", "info") in topics(view(client, conditions=conditions, medications=meds))
    resp = view(client, conditions=conditions, medications=meds, diagnosticReports=[_report("dr1", "2026-10-20")])
    assert ("imaging-persistent-radicular", "info") not in topics(resp)


def test_imaging_reported_since_the_red_flag_means_it_is_under_way(client):
    conditions = [
        LBP_10D,
        condition("ca", "Z85.3", "Personal history of malignant neoplasm of breast", system=ICD10, onset="2020-01-01"),
    ]
    assert topics(view(client, conditions=conditions)) == [("imaging-red-flags", "warning")]
    assert topics(view(client, conditions=conditions, diagnosticReports=[_report("dr1", "2026-11-18")])) == []


def test_a_chronic_back_pain_code_is_never_early(client):
    resp = order(
        client, [service_request("mri", *MRI_LUMBAR)], conditions=[condition("c", *CHRONIC_LBP, recorded="2026-11-12")]
    )
    assert topics(resp) == []  # 12 weeks or more by definition: no "began 10 days ago"


def test_chronic_radicular_pain_recorded_recently_is_due_a_specialist(client):
    conditions = [condition("c", *CHRONIC_LBP, recorded="2026-11-12"), condition("s", *SCIATICA, recorded="2026-11-12")]
    resp = view(client, conditions=conditions)
    assert ("referral-spine", "warning") in topics(resp)
    detail = card(resp, "referral-spine")["detail"]
    assert "on or before 2026-08-30 (chronic back pain: 12 weeks or more)" in detail
    assert "10 days" not in detail


def test_recorded_date_alone_is_an_upper_bound_and_the_card_says_so(client):
    resp = order(
        client, [service_request("mri", *MRI_LUMBAR)], conditions=[condition("lbp", *LBP, recorded="2026-11-10")]
    )
    c = card(resp, "imaging-early")
    assert c["summary"].startswith("Back pain was first recorded 12 days ago with no red flags")
    assert "| Episode start | on or before 2026-11-10 (date recorded; onset not recorded) |" in c["detail"]
    assert "The onset was not recorded" in c["detail"]
    with_onset = card(order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[LBP_10D]), "imaging-early")
    assert (
        with_onset["summary"].startswith("Back pain began 10 days ago")
        and "onset was not recorded" not in with_onset["detail"]
    )
