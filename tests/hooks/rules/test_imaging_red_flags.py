"""Red-flag rules: cauda equina, cancer, fracture risk, observed findings, fever with drug use or immunosuppression."""

from __future__ import annotations

import pytest

from tests.conftest import patient, topics
from tests.factories import (
    ICD10,
    LBP,
    MRI_LUMBAR,
    PREDNISONE,
    condition,
    draft,
    finding,
    med_request,
    observation,
    service_request,
)
from tests.hooks.support import IVDU, LBP_10D, LBP_RECENT, card, order, view


def _temp(oid, value, unit, when):
    return observation(oid, "8310-5", "Body temperature", value, unit, when)


def test_red_flag_silences_imaging_early(client):
    conditions = [
        LBP_RECENT,
        condition("ca", "Z85.3", "Personal history of malignant neoplasm of breast", system=ICD10),
    ]
    assert topics(order(client, [service_request("mri", *MRI_LUMBAR)], conditions=conditions)) == []


def test_cauda_equina_is_critical_with_emergency_mri_and_neurosurgery(client):
    conditions = [LBP_RECENT, condition("ce", "192970008", "Cauda equina syndrome", onset="2026-11-21")]
    resp = view(client, conditions=conditions)
    assert topics(resp) == [("imaging-red-flags", "critical")]
    c = card(resp, "imaging-red-flags")
    assert c["summary"] == "Red flag: cauda equina signs. Order emergency MRI and same-day neurosurgery referral now."
    actions = c["suggestions"][0]["actions"]
    assert [a["resource"]["code"]["coding"][0]["code"] for a in actions] == ["72148", "308482002"]
    assert actions[0]["resource"]["code"]["coding"][1] == {
        "system": "http://loinc.org",
        "code": "30679-5",
        "display": "MR Lumbar spine WO contrast",
    }
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
    assert (
        card(resp, "imaging-red-flags")["suggestions"][0]["actions"][0]["resource"]["code"]["coding"][0]["code"]
        == "72158"
    )


def test_red_flag_without_back_pain_is_silent(client):
    assert topics(view(client, conditions=[condition("ce", "192970008", "Cauda equina syndrome")])) == []


def test_red_flag_already_addressed_is_silent(client):
    conditions = [LBP_RECENT, condition("ca", "363346000", "Malignant neoplastic disease", onset="2026-06-01")]
    history = [service_request("old", *MRI_LUMBAR, status="completed", authored="2026-07-01")]
    assert topics(view(client, conditions=conditions, serviceRequests=history)) == []
    assert topics(view(client, conditions=conditions)) == [("imaging-red-flags", "warning")]


def test_a_new_flag_is_not_answered_by_a_study_done_for_an_older_one(client):
    """Cancer since June, its MRI in July, then cauda equina syndrome yesterday: the July MRI answers the cancer flag,
    not the new emergency — the card fires for cauda equina alone."""
    cancer = condition("ca", "363346000", "Malignant neoplastic disease", onset="2026-06-01")
    cauda = condition("ce", "192970008", "Cauda equina syndrome", onset="2026-11-21")
    history = [service_request("old", *MRI_LUMBAR, status="completed", authored="2026-07-01")]
    resp = view(client, conditions=[LBP_RECENT, cancer, cauda], serviceRequests=history)
    assert topics(resp) == [("imaging-red-flags", "critical")]
    c = card(resp, "imaging-red-flags")
    assert "Cauda equina syndrome (Condition/ce" in c["detail"] and "Condition/ca" not in c["detail"]
    later = [service_request("new", *MRI_LUMBAR, status="completed", authored="2026-11-21")]
    assert topics(view(client, conditions=[LBP_RECENT, cancer, cauda], serviceRequests=history + later)) == []


def test_an_undated_flag_is_answered_only_by_a_study_in_this_episode(client):
    cauda = condition("ce", "192970008", "Cauda equina syndrome")  # no onset, no recorded date
    old = [service_request("old", *MRI_LUMBAR, status="completed", authored="2026-07-01")]  # before the episode
    assert topics(view(client, conditions=[LBP_RECENT, cauda], serviceRequests=old)) == [
        ("imaging-red-flags", "critical")
    ]
    recent = [service_request("new", *MRI_LUMBAR, status="completed", authored="2026-11-10")]  # episode began 11-02
    assert topics(view(client, conditions=[LBP_RECENT, cauda], serviceRequests=recent)) == []


def test_red_flag_fires_when_something_else_is_ordered(client):
    conditions = [LBP_RECENT, condition("ce", "M21.372", "Foot drop, left foot", system=ICD10)]
    resp = order(
        client, [draft("apap", "198440", "Acetaminophen 500 MG Oral Tablet", supply_days=10)], conditions=conditions
    )
    assert topics(resp) == [("imaging-red-flags", "critical")]
    resp = order(client, [service_request("mri", *MRI_LUMBAR)], conditions=conditions)
    assert topics(resp) == []  # the clinician is acting on the red flag


@pytest.mark.parametrize(
    "when, fires",
    [
        ("2026-11-20", True),
        ("2026-11-02", True),
        ("2026-11-01", False),  # episode began 11-02
        ("2026-11-23", False),
        (None, False),
        ("2026-11", False),  # may be 11-01
        ("2026-11-21T23:30:00-05:00", True),
    ],
)
def test_red_flag_observed_during_the_episode_is_a_red_flag(client, when, fires):
    findings = [finding("o1", "267064002", "Retention of urine", when)]
    resp = view(client, conditions=[LBP_RECENT], findings=findings)
    assert topics(resp) == ([("imaging-red-flags", "critical")] if fires else [])
    if fires:
        c = card(resp, "imaging-red-flags")
        assert (
            c["summary"] == "Red flag: cauda equina signs. Order emergency MRI and same-day neurosurgery referral now."
        )
        assert f"- **cauda equina signs** — Retention of urine (Observation/o1, observed {when[:10]})" in c["detail"]


def test_observed_red_flag_needs_a_dated_episode(client):
    undated = condition("lbp", *LBP)
    findings = [finding("o1", "267064002", "Retention of urine", "2026-11-20")]
    assert topics(view(client, conditions=[undated], findings=findings)) == []
    assert topics(view(client, conditions=[undated, condition("ce", "192970008", "Cauda equina syndrome")])) == [
        ("imaging-red-flags", "critical")
    ]  # a Condition needs no date: it is active


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
    assert (
        "fever with IV drug use (possible spinal infection)** — Fever (Observation/t, observed 2026-11-21)"
        in card(resp, "imaging-red-flags")["detail"]
    )


def test_fever_with_a_substance_use_code_names_both_records_and_says_drug_use(client):
    """Opioid dependence (ICD-10-CM F11.20) is in the drug-use group that makes a fever an emergency, but it does not
    say the drug is injected: the card says "drug use" and names the record it came from beside the fever's."""
    fever = [finding("t", "386661006", "Fever", "2026-11-21")]
    opioid = condition("od", "F11.20", "Opioid dependence, uncomplicated", system=ICD10)
    resp = view(client, conditions=[LBP_RECENT, opioid], findings=fever)
    c = card(resp, "imaging-red-flags")
    assert c["indicator"] == "critical"
    assert (
        "- **fever with drug use (possible spinal infection)** — Fever (Observation/t, observed 2026-11-21); "
        "with Opioid dependence, uncomplicated (Condition/od)"
    ) in c["detail"]
    assert "IV drug use" not in c["summary"] + c["detail"]
    injection = view(
        client, conditions=[LBP_RECENT, condition("iv", "228388006", "Intravenous drug user")], findings=fever
    )
    assert "; with Intravenous drug user (Condition/iv)" in card(injection, "imaging-red-flags")["detail"]


def test_long_term_active_steroid_is_a_fracture_risk_flag_even_if_ordered_long_ago(client):
    old_active = med_request("pred", *PREDNISONE, authored="2024-10-01", route="oral", dose_mg=10, per_day=1)
    resp = view(client, conditions=[LBP_RECENT], medications=[old_active])
    assert ("imaging-red-flags", "warning") in topics(resp)
    assert "fracture risk (long-term systemic steroids)" in card(resp, "imaging-red-flags")["detail"]


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


@pytest.mark.parametrize(
    "labs, latest",
    [
        ([], "no temperature recorded in this episode"),
        ([_temp("t", 37.2, "Cel", "2026-11-21")], "latest temperature 37.2 °C on 2026-11-21"),
        ([_temp("t", 38.9, "Cel", "2026-11-01")], "no temperature recorded in this episode"),
    ],
)
def test_injection_drug_use_without_fever_asks_for_the_work_up(client, labs, latest):
    resp = view(client, conditions=[LBP_10D, IVDU], labs=labs)  # a fever before this episode belongs to another story
    assert topics(resp) == [("imaging-red-flags", "info")]
    c = card(resp, "imaging-red-flags")
    assert c["summary"].startswith(
        "Injection drug use with back pain, no fever recorded: spinal infection risk. Measure temperature"
    )
    assert latest in c["detail"] and "suggestions" not in c and "overrideReasons" not in c


def test_injection_drug_use_silences_the_early_imaging_card(client):
    assert topics(order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[LBP_10D, IVDU])) == []
    # opioid use disorder is not injection drug use: early imaging is still not advised
    oud = condition("oud", "F11.20", "Opioid dependence, uncomplicated", system=ICD10)
    assert topics(order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[LBP_10D, oud])) == [
        ("imaging-early", "warning")
    ]
