"""Families of records EHRs really send, each with positive cases, near misses and exclusions (today = 2026-11-22).

Ketorolac courses with dose-free days and stopped orders, mg doses against tablet counts, contraindications that silence
NSAID advice, pregnancy, radiology reports as prior imaging, chronic and recorded-only back-pain dates, steroid
indications, infection risk, drafts that are incomplete, and the same record sent twice.
"""

from __future__ import annotations

import logging

import pytest

from cds_service.terminology import LOINC, RXNORM
from tests.conftest import bundle, call, hook_request, topics
from tests.factories import (
    ICD10,
    KETOROLAC_INJ,
    KETOROLAC_ORAL,
    LBP,
    MRI_LUMBAR,
    PREDNISONE,
    SCIATICA,
    SNOMED,
    condition,
    draft,
    finding,
    med_admin,
    med_request,
    observation,
    service_request,
)

NAPROXEN, IBUPROFEN = "198014", "197806"
LBP_10D = condition("lbp", *LBP, onset="2026-11-12")
KETOROLAC_IV = ("1665461", "1 ML Ketorolac Tromethamine 30 MG/ML Injection")


def order(client, drafts, *, hook="order-select", **prefetch):
    pre = {k: bundle(*v) if isinstance(v, list) else v for k, v in prefetch.items()}
    return call(client, hook_request(hook, drafts=drafts, prefetch=pre))


def view(client, **prefetch):
    pre = {k: bundle(*v) if isinstance(v, list) else v for k, v in prefetch.items()}
    return call(client, hook_request("patient-view", prefetch=pre))


def card(resp, topic):
    return next(c for c in resp.get_json()["cards"] if c["source"]["topic"]["code"] == topic)


def offered_drugs(resp) -> set[str]:
    """RxNorm codes of every medication any suggestion of the response would order or keep."""
    codes = set()
    for c in resp.get_json()["cards"]:
        for s in c.get("suggestions", []):
            for a in s["actions"]:
                concept = (a.get("resource") or {}).get("medicationCodeableConcept") or {}
                codes |= {cd["code"] for cd in concept.get("coding", []) if cd.get("system") == RXNORM}
    return codes


def labels(resp) -> list[str]:
    return [s["label"] for c in resp.get_json()["cards"] for s in c.get("suggestions", [])]


# --- a dose-free day does not end a course ---------------------------------------------------------------------------

def test_doses_on_non_consecutive_days_are_one_course(client):
    given = [med_admin("a1", *KETOROLAC_IV, "2026-11-19T09:00:00Z", route="im", dose_mg=30),
             med_admin("a2", *KETOROLAC_IV, "2026-11-21T09:00:00Z", route="iv", dose_mg=15)]
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=4, route="oral", dose_mg=10, per_day=4)],
                 medicationAdministrations=given)
    assert topics(resp) == [("ketorolac-duration", "critical")]
    c = card(resp, "ketorolac-duration")
    assert c["summary"].startswith("Ketorolac would run 7 days (limit 5")
    assert "| First ketorolac dose | 2026-11-19 (already given: 1 ML Ketorolac Tromethamine 30 MG/ML Injection) |" in c["detail"]
    assert "| Dose-free days within the course | 2026-11-20 (1 day) (a dose-free day does not end a course) |" in c["detail"]
    assert "| Planned last day | 2026-11-25 (4-day supply) |" in c["detail"]
    assert "| Routes | IM, IV, oral |" in c["detail"]
    assert "| Days allowed from today | 2 |" in c["detail"]


@pytest.mark.parametrize("last_dose, fires", [("2026-11-14", True),   # 7 dose-free days (11-15..11-21): one course
                                              ("2026-11-13", False)])  # 8: a finished course of its own
def test_gap_threshold_boundary(client, last_dose, fires):
    given = [med_admin("a1", *KETOROLAC_IV, f"{last_dose}T09:00:00Z", route="im")]
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=3, route="oral")], medicationAdministrations=given)
    assert (("ketorolac-duration", "critical") in topics(resp)) is fires


def test_gap_threshold_is_site_configurable(settings):
    from hooks.wsgi import create_app
    from tests.conftest import NOW, fake_resolver, sequential_uuids

    app = create_app(settings | {"thresholds": {"ketorolac_course_gap_days": 0}}, clock=lambda: NOW, resolver=fake_resolver,
                     uuid_factory=sequential_uuids())
    given = [med_admin("a1", *KETOROLAC_IV, "2026-11-19T09:00:00Z", route="im")]
    resp = order(app.test_client(), [draft("k", *KETOROLAC_ORAL, supply_days=4, route="oral")], medicationAdministrations=given)
    assert ("ketorolac-duration", "critical") not in topics(resp)  # a site that resets the count after one free day


def test_exactly_five_days_with_a_gap_does_not_fire(client):
    given = [med_admin("a1", *KETOROLAC_IV, "2026-11-20T09:00:00Z", route="im")]  # 11-20, free 11-21, 11-22..11-24
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=3, route="oral")], medicationAdministrations=given)
    assert topics(resp) == []


def test_patient_view_counts_the_course_across_a_dose_free_stretch(client):
    iv = med_request("iv", *KETOROLAC_IV, authored="2026-11-15", supply_days=2, status="completed", route="iv")
    oral = med_request("po", *KETOROLAC_ORAL, authored="2026-11-20", supply_days=5, route="oral")
    resp = view(client, medications=[iv, oral])
    assert topics(resp) == [("ketorolac-duration", "critical")]
    c = card(resp, "ketorolac-duration")
    assert c["summary"].startswith("Ketorolac is on day 8 (limit 5")
    assert "| Dose-free days within the course | 2026-11-17 to 2026-11-19 (3 days) |" in c["detail"]


# --- stopped orders count ----------------------------------------------------------------------------------------------

def test_stopped_inpatient_iv_order_then_discharge_oral_prescription(client):
    inpatient = med_request("iv", *KETOROLAC_IV, authored="2026-11-19", status="stopped", route="iv", dose_mg=15, per_day=4)
    resp = order(client, [draft("po", *KETOROLAC_ORAL, supply_days=5, route="oral", dose_mg=10, per_day=4)],
                 medications=[inpatient])
    assert topics(resp) == [("ketorolac-duration", "critical")]
    c = card(resp, "ketorolac-duration")
    assert c["summary"].startswith("Ketorolac would run 8 days")  # 11-19 → 11-26
    assert "Stopped order with no stop date recorded: 1 ML Ketorolac Tromethamine 30 MG/ML Injection (from 2026-11-19)" in c["detail"]


@pytest.mark.parametrize("stop", [
    {"dispenseRequest": {"validityPeriod": {"start": "2026-11-18", "end": "2026-11-19"}}},
    {"extension": [{"url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-MedicationRequest.statusChanged",
                    "valueDateTime": "2026-11-19T14:00:00Z"}]},
    {"statusReason": {"text": "pain controlled", "extension": [{"url": "https://ehr.example.org/fhir/discontinue-date",
                                                                "valueDateTime": "2026-11-19"}]}},
])
def test_a_recorded_stop_date_ends_the_stopped_order(client, stop):
    inpatient = med_request("iv", *KETOROLAC_IV, authored="2026-11-18", status="stopped", route="iv") | stop
    resp = order(client, [draft("po", *KETOROLAC_ORAL, supply_days=5, route="oral")], medications=[inpatient])
    c = card(resp, "ketorolac-duration")
    assert c["indicator"] == "critical" and c["summary"].startswith("Ketorolac would run 9 days")  # 11-18 → 11-26
    assert "no stop date recorded" not in c["detail"]


def test_a_stopped_order_ends_on_its_last_administration_when_they_were_sent(client):
    inpatient = med_request("iv", *KETOROLAC_IV, authored="2026-11-10", status="stopped", route="iv")
    given = [med_admin(f"a{d}", *KETOROLAC_IV, f"2026-11-{d}T09:00:00Z", route="iv") for d in (10, 11, 12)]
    for a in given:
        a["request"] = {"reference": "MedicationRequest/iv"}
    drafts = [draft("po", *KETOROLAC_ORAL, supply_days=3, route="oral")]
    # last dose 11-12, then 9 dose-free days: the discharge prescription starts a course of its own
    assert topics(order(client, drafts, medications=[inpatient], medicationAdministrations=given)) == \
        [("ketorolac-oral-start", "warning")]
    # without the administrations, the stop date is unknown: counted to today
    assert ("ketorolac-duration", "critical") in topics(order(client, drafts, medications=[inpatient]))


@pytest.mark.parametrize("status, authored", [("entered-in-error", "2026-11-19"), ("cancelled", "2026-11-19"),
                                              ("stopped", "2026-11-25")])  # stopped before it started
def test_orders_that_were_never_given_never_count(client, status, authored):
    other = med_request("iv", *KETOROLAC_IV, authored=authored, status=status, route="iv", supply_days=3)
    resp = order(client, [draft("po", *KETOROLAC_ORAL, supply_days=5, route="oral")], medications=[other])
    assert ("ketorolac-duration", "critical") not in topics(resp)


# --- quantity ÷ doses per day with a mg dose ---------------------------------------------------------------------------

def test_mg_dose_with_a_tablet_quantity_gives_the_supply(client):
    rx = draft("k", *KETOROLAC_ORAL, route="oral", dose_mg=10, per_day=4, quantity=40)  # 40 tablets, 10 mg q6h
    resp = order(client, [rx], medicationAdministrations=[med_admin("a", *KETOROLAC_IV, "2026-11-22T06:00:00Z", route="im")])
    assert topics(resp) == [("ketorolac-duration", "critical")]
    c = card(resp, "ketorolac-duration")
    assert c["summary"].startswith("Ketorolac would run 10 days")
    assert "| Planned last day | 2026-12-01 (10-day supply (40 ÷ 1 per dose × 4 doses a day)) |" in c["detail"]
    assert "no end date" not in c["summary"]


def test_strength_from_the_medication_resource_converts_a_mg_dose(client):
    med = {"resourceType": "Medication", "id": "toradol",
           "code": {"text": "Toradol tablets"},
           "ingredient": [{"itemCodeableConcept": {"text": "ketorolac tromethamine"},
                           "strength": {"numerator": {"value": 10, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"},
                                        "denominator": {"value": 1, "unit": "tablet", "code": "{tbl}"}}}]}
    rx = draft("k", None, "x", route="oral", dose_mg=20, per_day=2, quantity=20)  # 20 mg = 2 tablets, twice a day: 5 days
    del rx["medicationCodeableConcept"]
    rx["medicationReference"] = {"reference": "Medication/toradol"}
    resp = order(client, [rx], medications=[med], medicationAdministrations=[med_admin("a", *KETOROLAC_IV, "2026-11-21T06:00:00Z", route="im")])
    c = card(resp, "ketorolac-duration")  # 11-21 IM + 11-22..11-26
    assert c["indicator"] == "critical" and c["summary"].startswith("Ketorolac would run 6 days")
    assert "(5-day supply (20 ÷ 2 per dose × 2 doses a day))" in c["detail"]


def test_no_end_date_warning_only_when_no_duration_can_be_derived(client):
    rx = draft("k", *KETOROLAC_ORAL, route="oral", dose_mg=10, per_day=4)  # no quantity, no supply
    assert topics(order(client, [rx])) == [("ketorolac-duration", "warning")]


# --- a contraindication silences NSAID advice -------------------------------------------------------------------------

CKD4 = condition("ckd", "N18.4", "Chronic kidney disease, stage 4 (severe)", system=ICD10)
WARFARIN = med_request("w", "855290", "Warfarin Sodium 1 MG Oral Tablet [Coumadin]", authored="2026-01-01")


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
    assert c["summary"] == ("Ketorolac with concurrent anticoagulant, and it would run 8 days (limit 5). Use acetaminophen "
                            "instead.")
    assert "Keep ketorolac" not in " ".join(labels(resp))


def test_anticoagulant_caution_alone_is_a_warning(client):
    resp = order(client, [draft("k", *KETOROLAC_INJ, supply_days=2, route="im")], medications=[WARFARIN])
    assert topics(resp) == [("ketorolac-contraindication", "warning")]
    assert "**Planned ketorolac exposure: 2 days** (within the 5-day limit" in card(resp, "ketorolac-contraindication")["detail"]


@pytest.mark.parametrize("contra", [{"conditions": [LBP_10D, CKD4]}, {"conditions": [LBP_10D], "medications": [WARFARIN]},
                                    {"conditions": [LBP_10D, condition("preg", "Z3A.24", "24 weeks gestation of pregnancy",
                                                                       system=ICD10, recorded="2026-11-15")]}])
def test_no_rule_suggests_an_nsaid_to_a_patient_who_must_not_have_one(client, contra):
    steroid = order(client, [draft("s", *PREDNISONE, supply_days=5, route="oral")], **contra)
    assert topics(steroid) == [("systemic-steroid-back-pain", "warning")]
    assert labels(steroid)[0] == "Replace with physiotherapy referral" and not offered_drugs(steroid) & {NAPROXEN, IBUPROFEN}
    opioid = order(client, [draft("o", "1049621", "oxycodone hydrochloride 5 MG Oral Tablet", supply_days=10, route="oral")], **contra)
    assert "198440" in offered_drugs(opioid) and not offered_drugs(opioid) & {NAPROXEN, IBUPROFEN}  # acetaminophen


def test_patient_view_ketorolac_card_does_not_advise_naproxen_when_contraindicated(client):
    meds = [med_request("k", *KETOROLAC_ORAL, authored="2026-11-15", supply_days=10)]
    detail = card(view(client, medications=meds, conditions=[CKD4]), "ketorolac-duration")["detail"]
    assert "consider acetaminophen." in detail and "naproxen" not in detail
    assert "naproxen with GI protection" in card(view(client, medications=meds), "ketorolac-duration")["detail"]


# --- pregnancy -------------------------------------------------------------------------------------------------------

def _preg_obs(oid, code, display, when, **value):
    return {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]}, "effectiveDateTime": when, **value}


PREGNANT = {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "77386006", "display": "Pregnant"}]}}
NOT_PREGNANT = {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "60001007", "display": "Not pregnant"}]}}


@pytest.mark.parametrize("prefetch, indicator, text", [
    ({"conditions": [condition("g", "Z3A.24", "24 weeks gestation of pregnancy", system=ICD10, recorded="2026-11-01")]},
     "critical", "pregnancy (27 weeks or more today)"),
    ({"conditions": [condition("g", "O09.13", "Supervision of pregnancy with history of ectopic pregnancy, third trimester",
                               system=ICD10, recorded="2026-11-15")]}, "critical", "pregnancy (29 weeks or more today)"),
    ({"conditions": [condition("g", "O60.03", "Preterm labor without delivery, third trimester", system=ICD10,
                               recorded="2026-11-21")]}, "critical", "pregnancy (20 weeks or more today)"),
    ({"labs": [_preg_obs("edd", "11778-8", "Delivery date Estimated", "2026-10-01", valueDateTime="2027-02-01")]},
     "critical", "pregnancy (29 weeks or more today)"),
    ({"labs": [_preg_obs("ga", "11884-4", "Gestational age Estimated", "2026-11-01",
                         valueQuantity={"value": 16, "unit": "wk", "system": "http://unitsofmeasure.org", "code": "wk"})]},
     "warning", "pregnancy (19 weeks or more today)"),
    ({"labs": [_preg_obs("ps", "82810-3", "Pregnancy status", "2026-11-20", **PREGNANT)]},
     "warning", "pregnancy (gestational age not recorded)"),
    ({"conditions": [condition("p", "77386006", "Pregnant (finding)", recorded="2026-10-01")]},
     "warning", "pregnancy (gestational age not recorded)"),
])
def test_pregnancy_is_a_ketorolac_contraindication(client, prefetch, indicator, text):
    resp = order(client, [draft("k", *KETOROLAC_INJ, supply_days=2, route="im")], **prefetch)
    assert topics(resp) == [("ketorolac-contraindication", indicator)]
    assert f"- {text}: " in card(resp, "ketorolac-contraindication")["detail"]


@pytest.mark.parametrize("prefetch", [
    {"conditions": [condition("g", "Z3A.30", "30 weeks gestation of pregnancy", system=ICD10, recorded="2026-01-10")]},  # delivered
    {"conditions": [condition("p", "77386006", "Pregnant (finding)", recorded="2025-09-01")]},  # a record long out of date
    {"conditions": [condition("l", "Z39.1", "Encounter for care and examination of lactating mother", system=ICD10,
                              recorded="2026-11-01")]},  # breastfeeding is not pregnancy
    {"conditions": [condition("p", "77386006", "Pregnant (finding)", recorded="2026-06-01")],
     "labs": [_preg_obs("ps", "82810-3", "Pregnancy status", "2026-11-01", **NOT_PREGNANT)]},  # a later 'not pregnant'
    {"labs": [_preg_obs("edd", "11778-8", "Delivery date Estimated", "2026-03-01", valueDateTime="2026-09-01")]},  # past due
])
def test_pregnancy_records_that_do_not_describe_a_current_pregnancy(client, prefetch):
    assert topics(order(client, [draft("k", *KETOROLAC_INJ, supply_days=2, route="im")], **prefetch)) == []


# --- prior imaging from radiology reports -----------------------------------------------------------------------------

def _report(rid, when, status="final", code=("24968-0", "MR Lumbar spine")):
    return {"resourceType": "DiagnosticReport", "id": rid, "status": status, "subject": {"reference": "Patient/p1"},
            "category": [{"coding": [{"system": LOINC, "code": "LP29684-5", "display": "Radiology"}]}],
            "code": {"coding": [{"system": LOINC, "code": code[0], "display": code[1]}]},
            "effectiveDateTime": when, "issued": when + "T16:00:00Z"}


@pytest.mark.parametrize("status, fires", [("final", True), ("amended", True), ("cancelled", False), ("entered-in-error", False)])
def test_a_radiology_report_is_prior_imaging_for_repeat_mri(client, status, fires):
    resp = order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[condition("s", *SCIATICA, onset="2026-06-01")],
                 diagnosticReports=[_report("dr1", "2026-08-20", status)])
    assert (topics(resp) == [("imaging-repeat", "info")]) is fires
    if fires:
        assert "MR Lumbar spine (2026-08-20, DiagnosticReport/dr1)" in card(resp, "imaging-repeat")["detail"]


def test_a_recent_mri_report_means_no_persistent_radicular_card(client):
    conditions = [condition("s", *SCIATICA, onset="2026-09-01")]
    meds = [med_request("n", NAPROXEN, "Naproxen 500 MG Oral Tablet", authored="2026-09-05", supply_days=14, status="completed")]
    assert ("imaging-persistent-radicular", "info") in topics(view(client, conditions=conditions, medications=meds))
    resp = view(client, conditions=conditions, medications=meds, diagnosticReports=[_report("dr1", "2026-10-20")])
    assert ("imaging-persistent-radicular", "info") not in topics(resp)


def test_imaging_reported_since_the_red_flag_means_it_is_under_way(client):
    conditions = [LBP_10D, condition("ca", "Z85.3", "Personal history of malignant neoplasm of breast", system=ICD10,
                                     onset="2020-01-01")]
    assert topics(view(client, conditions=conditions)) == [("imaging-red-flags", "warning")]
    assert topics(view(client, conditions=conditions, diagnosticReports=[_report("dr1", "2026-11-18")])) == []


def test_discovery_declares_the_optional_diagnostic_reports_key(client):
    services = client.get("/cds-services").get_json()["services"]
    query = services[0]["prefetch"]["diagnosticReports"]
    assert query.startswith("DiagnosticReport?patient=Patient/{{context.patientId}}&code=")
    assert "http://loinc.org|24968-0" in query and "http://www.ama-assn.org/go/cpt|72148" in query
    assert "http://loinc.org|36670-8" not in query  # radiographs are not fetched (see services._cross_sectional_reports)
    body = hook_request("order-select", drafts=[service_request("mri", *MRI_LUMBAR)])
    del body["prefetch"]["diagnosticReports"]
    assert call(client, body).status_code == 200  # optional: no FHIR server, still answered


# --- chronic codes and recordedDate ------------------------------------------------------------------------------------

CHRONIC_LBP = ("278860009", "Chronic low back pain (finding)")


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


# --- steroid indications: an exacerbation, not the diagnosis -----------------------------------------------------------

BACK_PAIN_REASON = (SNOMED, "279039007", "Low back pain (finding)")


@pytest.mark.parametrize("other, fires", [
    (condition("copd", "J44.9", "Chronic obstructive pulmonary disease, unspecified", system=ICD10), True),
    (condition("copd", "13645005", "Chronic obstructive lung disease"), True),
    (condition("asthma", "J45.909", "Unspecified asthma, uncomplicated", system=ICD10), True),
    (condition("copd", "J44.1", "Chronic obstructive pulmonary disease with (acute) exacerbation", system=ICD10), False),
    (condition("copd", "195951007", "Acute exacerbation of chronic obstructive airways disease"), False),
    (condition("asthma", "J45.41", "Moderate persistent asthma with (acute) exacerbation", system=ICD10), False),
])
def test_stable_asthma_or_copd_is_no_steroid_indication(client, other, fires):
    rx = draft("s", *PREDNISONE, supply_days=5, route="oral", reason=BACK_PAIN_REASON)
    resp = order(client, [rx], conditions=[LBP_10D, other])
    assert (topics(resp) == [("systemic-steroid-back-pain", "warning")]) is fires


# --- infection risk: fever as a vital sign, injection drug use --------------------------------------------------------

IVDU = condition("ivdu", "228388006", "Intravenous drug user (finding)")


def _temp(oid, value, unit, when):
    return observation(oid, "8310-5", "Body temperature", value, unit, when)


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
    assert c["summary"].startswith("Injection drug use with back pain, no fever recorded: spinal infection risk. Check temperature")
    assert latest in c["detail"] and "suggestions" not in c and "overrideReasons" not in c


def test_injection_drug_use_silences_the_early_imaging_card(client):
    assert topics(order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[LBP_10D, IVDU])) == []
    # opioid use disorder is not injection drug use: early imaging is still not advised
    oud = condition("oud", "F11.20", "Opioid dependence, uncomplicated", system=ICD10)
    assert topics(order(client, [service_request("mri", *MRI_LUMBAR)], conditions=[LBP_10D, oud])) == [("imaging-early", "warning")]


# --- never silent on a draft it could not read -------------------------------------------------------------------------

def _toradol(**changes):
    rx = draft("k", None, "Toradol 10 mg tablets", text_only=True, supply_days=7, route="oral")
    rx.update(changes)
    return rx


@pytest.mark.parametrize("damage", [
    lambda r: r.pop("intent"), lambda r: r.pop("status"), lambda r: r.pop("subject"),
    lambda r: r.update(dosageInstruction=r["dosageInstruction"][0]),  # a single object, not an array
    lambda r: r.update(intent="not-a-code", status=7),
    lambda r: r["dosageInstruction"][0]["route"].update(coding=r["dosageInstruction"][0]["route"]["coding"][0]),
])
def test_an_incomplete_draft_whose_drug_is_recognised_is_evaluated(client, damage):
    rx = _toradol()
    damage(rx)
    assert ("ketorolac-duration", "critical") in topics(order(client, [rx]))


def test_a_draft_naming_no_drug_is_logged_and_counted(client, caplog):
    empty = {"resourceType": "MedicationRequest", "id": "blank", "status": "draft", "intent": "order",
             "subject": {"reference": "Patient/p1"}}
    with caplog.at_level(logging.INFO, logger="backpain_cds"):
        resp = order(client, [empty])
    assert topics(resp) == []
    assert any(r.getMessage().startswith("draft order unreadable") and r.resource == "MedicationRequest/blank"
               for r in caplog.records)
    assert next(r for r in caplog.records if r.getMessage() == "hook call").unread_drafts == 1


# --- the same record from two prefetch keys ---------------------------------------------------------------------------

def test_a_record_sent_under_two_keys_is_listed_once(client):
    saddle = finding("f1", "449813001", "Numbness of saddle area", "2026-11-21")
    resp = view(client, conditions=[LBP_10D], labs=[saddle], findings=[saddle])  # a server that ignored code=
    c = card(resp, "imaging-red-flags")
    assert c["detail"].count("Observation/f1") == 1


def test_a_revised_order_at_order_sign_replaces_the_prefetched_version(client):
    active = med_request("k", *KETOROLAC_ORAL, authored="2026-11-15", supply_days=10, route="oral")
    revised = med_request("k", *KETOROLAC_ORAL, authored="2026-11-15", supply_days=3, route="oral")  # shortened, not a draft
    resp = call(client, hook_request("order-sign", drafts=[revised], prefetch={"medications": bundle(active)}))
    assert topics(resp) == [("ketorolac-oral-start", "warning")]  # 11-15..11-17: the 10-day version no longer exists


def test_the_contraindication_summary_says_how_many_more_reasons_the_detail_lists(client):
    gi = condition("gi", "K25.4", "Chronic or unspecified gastric ulcer with hemorrhage", system=ICD10, status="resolved")
    resp = order(client, [draft("k", *KETOROLAC_INJ, supply_days=2, route="im")], conditions=[CKD4, gi])
    c = card(resp, "ketorolac-contraindication")
    assert c["summary"] == "Ketorolac is contraindicated (advanced renal impairment, and 1 more). Remove it; consider acetaminophen."
    assert "- history of peptic ulcer / GI bleeding: Chronic or unspecified gastric ulcer with hemorrhage" in c["detail"]
