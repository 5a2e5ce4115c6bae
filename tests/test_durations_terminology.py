"""The duration normaliser's boundaries, and value-set membership (codes, ICD-10-CM descendants, names)."""

from __future__ import annotations

from datetime import date

import pytest

from cds_service.durations import (
    FuzzyDate,
    calendar_days,
    doses_per_day,
    duration_days,
    last_day,
    parse_date,
    span_days,
)
from cds_service.snapshot import build_snapshot
from cds_service.terminology import Terminology
from hooks.engine import VALUESETS_DIR
from tests.factories import ICD10, RXNORM, SNOMED, condition, finding, med_admin, med_request

TODAY = date(2026, 11, 22)


@pytest.fixture(scope="module")
def terminology():
    return Terminology.load_dir(VALUESETS_DIR)


@pytest.mark.parametrize("quantity, days", [
    ({"value": 5, "code": "d"}, 5), ({"value": 120, "code": "h"}, 5), ({"value": 121, "code": "h"}, 121 / 24),
    ({"value": 1, "code": "wk"}, 7), ({"value": 1, "code": "mo"}, 30), ({"value": 3, "unit": "days"}, 3),
    ({"value": 2, "unit": "Weeks"}, 14), ({"value": 10, "code": "furlong"}, None), ({"value": -1, "code": "d"}, None),
    ({"code": "d"}, None), ({"value": 2912119, "code": "d"}, None), ({"value": 1e300, "code": "a"}, None), ("5 days", None), ({"value": True, "code": "d"}, None),
])
def test_duration_days(quantity, days):
    assert duration_days(quantity) == (pytest.approx(days) if days is not None else None)


@pytest.mark.parametrize("days, covered", [(5, 5), (120 / 24, 5), (121 / 24, 6), (7, 7), (0.5, 1), (4.0000001, 4)])
def test_calendar_days(days, covered):
    assert calendar_days(days) == covered


def test_supply_of_n_days_covers_start_to_start_plus_n_minus_1():
    assert last_day(TODAY, 3) == date(2026, 11, 24)  # a 3-day supply started today ends the day after tomorrow
    assert span_days(TODAY, last_day(TODAY, 5)) == 5
    assert span_days(TODAY, last_day(TODAY, 6)) == 6


@pytest.mark.parametrize("value, expected", [
    ("2026-11-22", FuzzyDate(date(2026, 11, 22), date(2026, 11, 22))),
    ("2026-11-21T23:30:00-05:00", FuzzyDate(date(2026, 11, 21), date(2026, 11, 21))),  # the date as recorded
    ("2024-02", FuzzyDate(date(2024, 2, 1), date(2024, 2, 29))),
    ("2024", FuzzyDate(date(2024, 1, 1), date(2024, 12, 31))),
    ("2024-02-30", None), ("yesterday", None), (None, None), (20240101, None),
])
def test_parse_date(value, expected):
    assert parse_date(value) == expected


@pytest.mark.parametrize("timing, per_day", [
    ({"repeat": {"frequency": 4, "period": 1, "periodUnit": "d"}}, 4),
    ({"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}}, 4),
    ({"repeat": {"frequency": 1, "frequencyMax": 2, "period": 1, "periodUnit": "d"}}, 2),
    ({"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}}, 1 / 7),
    ({"repeat": {"when": ["MORN", "EVE"]}}, 2), ({"code": {"text": "BID"}}, None), (None, None),
])
def test_doses_per_day(timing, per_day):
    assert doses_per_day(timing) == per_day


@pytest.mark.parametrize("concept, sets, ingredient, by", [
    ({"coding": [{"system": RXNORM, "code": "834022"}]}, {"ketorolac"}, "ketorolac", "code"),  # SCD product
    ({"coding": [{"system": RXNORM, "code": "35827"}]}, {"ketorolac"}, "ketorolac", "code"),  # ingredient
    ({"coding": [{"system": "urn:oid:2.16.840.1.113883.6.88", "code": "198014"}]}, {"nsaids"}, "naproxen", "code"),
    ({"text": "TORADOL 10mg tab"}, {"ketorolac"}, "ketorolac", "text"),  # brand, text only
    ({"coding": [{"system": RXNORM, "code": "999999999", "display": "Prednisone 5 MG oral tablet"}]},
     {"systemic-corticosteroids"}, "prednisone", "text"),  # unknown code, display fallback
    ({"text": "ketorolacx"}, set(), None, ""),  # no partial-word match
    ({"coding": {"system": RXNORM, "code": "834022"}}, {"ketorolac"}, "ketorolac", "code"),  # single Coding object
])
def test_medication_matching(terminology, concept, sets, ingredient, by):
    m = terminology.match(concept)
    assert set(m.valuesets) == sets
    assert (next(iter(m.ingredients)) if m.ingredients else None) == ingredient
    assert m.by == by


@pytest.mark.parametrize("code, expected", [
    ("M54.41", "lbp-radicular"), ("M54.50", "lbp-nonspecific"), ("M54.5", "lbp-nonspecific"),
    ("C79.51", "rf-malignancy"), ("M46.26", "rf-spinal-infection"), ("G83.4", "rf-cauda-equina"),
    ("J45.901", "steroid-other-indication"), ("C50.911", "steroid-other-indication"),
])
def test_icd10_descendants_match_by_prefix(terminology, code, expected):
    assert expected in terminology.match({"coding": [{"system": ICD10, "code": code}]}).valuesets


def test_condition_text_alone_is_not_matched(terminology):
    assert not terminology.match({"text": "Sciatica"}, text_fallback=False)


def _snap(terminology, resources, drafts=(), pid="p1"):
    ctx = {"patientId": pid, "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": d} for d in drafts]}}
    return build_snapshot(context=ctx, prefetch={"x": {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}},
                          terminology=terminology, today=TODAY)


def test_snapshot_ignores_other_patients_and_skips_invalid_entries(terminology):
    s = _snap(terminology, [
        condition("c1", "23056005", "Sciatica", pid="p1"),
        condition("c2", "23056005", "Sciatica", pid="someone-else"),
        {"resourceType": "Condition", "id": "bad"},  # no code: skipped, counted
        "not an object",
        condition("c3", "23056005", "Sciatica", verification="refuted"),
    ])
    assert [c.ref for c in s.conditions] == ["Condition/c1"]
    assert s.skipped == {"Condition": 1, "(not an object)": 1}


def test_course_dates_from_every_shape(terminology):
    s = _snap(terminology, [
        med_request("a", "834022", "Ketorolac 10 MG Oral Tablet", authored="2026-11-20", supply_days=120, supply_unit="h"),
        med_request("b", "834022", "Ketorolac 10 MG Oral Tablet", authored="2026-11-20", bounds_days=1, supply_unit="wk", per_day=4),
        med_request("c", "834022", "Ketorolac 10 MG Oral Tablet", authored="2026-11-20", quantity=20, dose_unit="{tbl}", dose_value=1, per_day=4),
        med_admin("d", "1665461", "1 ML Ketorolac Tromethamine 30 MG/ML Injection", "2026-11-19T22:00:00Z", route="im", dose_mg=30),
        med_request("e", "834022", "Ketorolac 10 MG Oral Tablet", authored="2026-11-20"),
    ])
    by = {c.ref.split("/")[1]: c for c in s.courses}
    assert (by["a"].start, by["a"].end) == (date(2026, 11, 20), date(2026, 11, 24))
    assert by["b"].end == date(2026, 11, 20) and by["b"].end_basis == "1-day duration"
    assert by["c"].end == date(2026, 11, 24) and by["c"].daily_dose_mg == 40  # 20 tablets ÷ 4/day = 5 days; 10 mg tablets
    assert (by["d"].start, by["d"].end, by["d"].route, by["d"].single_dose_mg) == (date(2026, 11, 19), date(2026, 11, 19), "im", 30)
    assert by["e"].end is None  # unknown duration stays unknown


def test_medication_reference_resolved_through_contained_and_prefetched_medication(terminology):
    contained = {"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order", "authoredOn": "2026-11-20",
                 "contained": [{"resourceType": "Medication", "id": "med", "code": {"coding": [{"system": RXNORM, "code": "834022"}]}}],
                 "medicationReference": {"reference": "#med"}}
    referenced = {"resourceType": "MedicationRequest", "id": "m2", "status": "active", "intent": "order", "authoredOn": "2026-11-20",
                  "medicationReference": {"reference": "Medication/pred"}}
    medication = {"resourceType": "Medication", "id": "pred", "code": {"coding": [{"system": RXNORM, "code": "312615"}]}}
    s = _snap(terminology, [contained, referenced, medication])
    assert {c.ref: set(c.classes) for c in s.courses} == {"MedicationRequest/m1": {"ketorolac"},
                                                          "MedicationRequest/m2": {"systemic-corticosteroids"}}


def test_routes(terminology):
    s = _snap(terminology, [
        med_request("eye", None, "ketorolac tromethamine 0.5 % Ophthalmic Solution", text_only=True),
        med_request("epi", None, "methylprednisolone acetate 80 MG/ML Injectable Suspension", route="epidural", text_only=True),
        med_request("inj", "1665461", "1 ML Ketorolac Tromethamine 30 MG/ML Injection"),
        med_request("txt", None, "ketorolac", text_only=True),
    ])
    routes = {c.ref.split("/")[1]: c.route for c in s.courses}
    assert routes == {"eye": "local", "epi": "local", "inj": "parenteral", "txt": None}


def test_snapshot_reads_dstu2_medication_order(terminology):
    order = {"resourceType": "MedicationOrder", "id": "mo1", "status": "active", "dateWritten": "2026-11-15",
             "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "834022"}]},
             "dispenseRequest": {"expectedSupplyDuration": {"value": 10, "unit": "days", "code": "d"}}}
    s = _snap(terminology, [order])
    assert (s.courses[0].start, s.courses[0].end) == (date(2026, 11, 15), date(2026, 11, 24))


def test_condition_codes_are_classified(terminology):
    s = _snap(terminology, [condition("c", "M51.16", "Disc disorder with radiculopathy, lumbar", system=ICD10, onset="2026-10-01"),
                            condition("d", "192970008", "Cauda equina syndrome", system=SNOMED)])
    assert {"lbp-radicular", "lbp-disc"} <= s.conditions[0].valuesets
    assert "rf-cauda-equina" in s.conditions[1].valuesets


RETENTION = ("267064002", "Retention of urine")
_NEURO_FINDING = {"coding": [{"system": "http://snomed.info/sct", "code": "449813001", "display": "Numbness of saddle area"}]}
_V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


@pytest.mark.parametrize("extra, asserted", [
    ({}, {"rf-cauda-equina"}),  # the finding as the code, no value: observed
    ({"valueBoolean": True}, {"rf-cauda-equina"}),
    ({"valueBoolean": False}, set()),  # denied
    ({"valueString": "no"}, set()),  # a value that may deny it is not read as presence
    ({"valueCodeableConcept": {"text": "Absent"}}, set()),
    ({"valueQuantity": {"value": 0}}, set()),
    ({"dataAbsentReason": {"text": "not asked"}}, set()),
    ({"interpretation": [{"coding": [{"system": _V3, "code": "NEG"}]}]}, set()),
    ({"interpretation": [{"coding": [{"system": _V3, "code": "ND"}]}]}, set()),
    ({"interpretation": [{"coding": [{"system": _V3, "code": "A"}]}]}, {"rf-cauda-equina"}),
    ({"status": "preliminary"}, {"rf-cauda-equina"}),
    ({"status": "registered"}, set()),  # no result yet
    ({"status": "cancelled"}, None),  # not read at all
    ({"status": "entered-in-error"}, None),
    # the finding as the answer to a generic question ("Neurological finding: numbness of saddle area")
    ({"code": {"text": "Neurological examination finding"}, "valueCodeableConcept": _NEURO_FINDING}, {"rf-cauda-equina"}),
    ({"code": {"text": "Neurological examination finding"}, "valueCodeableConcept": _NEURO_FINDING,
      "interpretation": {"coding": [{"system": _V3, "code": "NEG"}]}}, set()),  # single-object interpretation (liberal)
])
def test_observation_findings_are_read_as_present_only_when_the_record_says_so(terminology, extra, asserted):
    s = _snap(terminology, [finding("f", *RETENTION, "2026-11-20", **extra)])
    if asserted is None:
        assert s.observations == ()
        return
    (o,) = s.observations
    assert (o.ref, o.asserted, o.effective.earliest.isoformat()) == ("Observation/f", frozenset(asserted), "2026-11-20")


def test_finding_in_the_answer_takes_the_answers_display(terminology):
    s = _snap(terminology, [finding("f", "0", "Neurological examination finding", "2026-11-20", code={"text": "Neuro exam"},
                                    valueCodeableConcept=_NEURO_FINDING)])
    assert [(o.display, o.asserted) for o in s.observations] == [("Numbness of saddle area", frozenset({"rf-cauda-equina"}))]


def test_observation_in_no_value_set_is_not_read(terminology):
    s = _snap(terminology, [finding("f", "271737000", "Anemia", "2026-11-20"),
                            finding("g", "0", "Exam", "2026-11-20", valueCodeableConcept={"text": "saddle numbness"})])
    assert s.observations == ()


@pytest.mark.parametrize("name, strength", [
    ("Ketorolac Tromethamine 10 MG Oral Tablet", (10.0, None, "")),
    ("1 ML Ketorolac Tromethamine 30 MG/ML Injection", (30.0, None, "ML")),
    ("Toradol 10 mg tablets", (10.0, None, "")),
    ("Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet", None),  # which ingredient would a mg dose mean?
    ("ketorolac", None),
])
def test_product_strength_from_its_name(name, strength):
    from cds_service.snapshot.medications import _name_strength

    assert _name_strength(name) == strength


@pytest.mark.parametrize("dose, quantity, days", [
    (dict(dose_mg=10, per_day=4), 40, date(2026, 12, 1)),  # 1 tablet a dose: 10 days
    (dict(dose_mg=20, per_day=4), 40, date(2026, 11, 26)),  # 2 tablets a dose: 5 days
    (dict(dose_unit="{tbl}", dose_value=1, per_day=4), 40, date(2026, 12, 1)),  # counted dose, as before
    (dict(dose_mg=10), 40, None),  # no frequency: no duration
])
def test_quantity_over_doses_per_day_with_a_weighed_dose(terminology, dose, quantity, days):
    s = _snap(terminology, [med_request("k", "834022", "Ketorolac 10 MG Oral Tablet", authored="2026-11-22", quantity=quantity, **dose)])
    assert s.courses[0].end == days


def test_a_stopped_course_without_a_stop_date_says_so(terminology):
    s = _snap(terminology, [med_request("a", "834022", "Ketorolac 10 MG Oral Tablet", authored="2026-11-20", status="stopped"),
                            med_request("b", "834022", "Ketorolac 10 MG Oral Tablet", authored="2026-11-10", supply_days=5,
                                        status="stopped")])
    by = {c.ref: c for c in s.courses}
    assert (by["MedicationRequest/a"].end, by["MedicationRequest/a"].end_known) == (TODAY, False)  # counted to today
    assert (by["MedicationRequest/b"].end, by["MedicationRequest/b"].end_known) == (date(2026, 11, 14), False)  # planned end
