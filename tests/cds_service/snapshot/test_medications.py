"""Medication courses: dates from every shape, routes, strengths and doses, stopped courses."""

from __future__ import annotations

from datetime import date

import pytest

from cds_service.snapshot import build_snapshot
from cds_service.terminology import Terminology
from hooks.engine import VALUESETS_DIR
from tests.factories import RXNORM, med_admin, med_request

TODAY = date(2026, 11, 22)


@pytest.fixture(scope="module")
def terminology():
    return Terminology.load_dir(VALUESETS_DIR)


def _snap(terminology, resources, drafts=(), pid="p1"):
    ctx = {"patientId": pid, "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": d} for d in drafts]}}
    return build_snapshot(
        context=ctx,
        prefetch={"x": {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}},
        terminology=terminology,
        today=TODAY,
    )


RETENTION = ("267064002", "Retention of urine")


_NEURO_FINDING = {
    "coding": [{"system": "http://snomed.info/sct", "code": "449813001", "display": "Numbness of saddle area"}]
}


_V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def test_course_dates_from_every_shape(terminology):
    s = _snap(
        terminology,
        [
            med_request(
                "a", "834022", "Ketorolac 10 MG Oral Tablet", authored="2026-11-20", supply_days=120, supply_unit="h"
            ),
            med_request(
                "b",
                "834022",
                "Ketorolac 10 MG Oral Tablet",
                authored="2026-11-20",
                bounds_days=1,
                supply_unit="wk",
                per_day=4,
            ),
            med_request(
                "c",
                "834022",
                "Ketorolac 10 MG Oral Tablet",
                authored="2026-11-20",
                quantity=20,
                dose_unit="{tbl}",
                dose_value=1,
                per_day=4,
            ),
            med_admin(
                "d",
                "1665461",
                "1 ML Ketorolac Tromethamine 30 MG/ML Injection",
                "2026-11-19T22:00:00Z",
                route="im",
                dose_mg=30,
            ),
            med_request("e", "834022", "Ketorolac 10 MG Oral Tablet", authored="2026-11-20"),
        ],
    )
    by = {c.ref.split("/")[1]: c for c in s.courses}
    assert (by["a"].start, by["a"].end) == (date(2026, 11, 20), date(2026, 11, 24))
    assert by["b"].end == date(2026, 11, 20) and by["b"].end_basis == "1-day duration"
    assert (
        by["c"].end == date(2026, 11, 24) and by["c"].daily_dose_mg == 40
    )  # 20 tablets ÷ 4/day = 5 days; 10 mg tablets
    assert (by["d"].start, by["d"].end, by["d"].route, by["d"].single_dose_mg) == (
        date(2026, 11, 19),
        date(2026, 11, 19),
        "im",
        30,
    )
    assert by["e"].end is None  # unknown duration stays unknown


def test_medication_reference_resolved_through_contained_and_prefetched_medication(terminology):
    contained = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "authoredOn": "2026-11-20",
        "contained": [
            {"resourceType": "Medication", "id": "med", "code": {"coding": [{"system": RXNORM, "code": "834022"}]}}
        ],
        "medicationReference": {"reference": "#med"},
    }
    referenced = {
        "resourceType": "MedicationRequest",
        "id": "m2",
        "status": "active",
        "intent": "order",
        "authoredOn": "2026-11-20",
        "medicationReference": {"reference": "Medication/pred"},
    }
    medication = {
        "resourceType": "Medication",
        "id": "pred",
        "code": {"coding": [{"system": RXNORM, "code": "312615"}]},
    }
    s = _snap(terminology, [contained, referenced, medication])
    assert {c.ref: set(c.classes) for c in s.courses} == {
        "MedicationRequest/m1": {"ketorolac"},
        "MedicationRequest/m2": {"systemic-corticosteroids"},
    }


def test_routes(terminology):
    s = _snap(
        terminology,
        [
            med_request("eye", None, "ketorolac tromethamine 0.5 % Ophthalmic Solution", text_only=True),
            med_request(
                "epi",
                None,
                "methylprednisolone acetate 80 MG/ML Injectable Suspension",
                route="epidural",
                text_only=True,
            ),
            med_request("inj", "1665461", "1 ML Ketorolac Tromethamine 30 MG/ML Injection"),
            med_request("txt", None, "ketorolac", text_only=True),
        ],
    )
    routes = {c.ref.split("/")[1]: c.route for c in s.courses}
    assert routes == {"eye": "local", "epi": "local", "inj": "parenteral", "txt": None}


def test_snapshot_reads_dstu2_medication_order(terminology):
    order = {
        "resourceType": "MedicationOrder",
        "id": "mo1",
        "status": "active",
        "dateWritten": "2026-11-15",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "834022"}]},
        "dispenseRequest": {"expectedSupplyDuration": {"value": 10, "unit": "days", "code": "d"}},
    }
    s = _snap(terminology, [order])
    assert (s.courses[0].start, s.courses[0].end) == (date(2026, 11, 15), date(2026, 11, 24))


@pytest.mark.parametrize(
    "name, strength",
    [
        ("Ketorolac Tromethamine 10 MG Oral Tablet", (10.0, None, "")),
        ("1 ML Ketorolac Tromethamine 30 MG/ML Injection", (30.0, None, "ML")),
        ("Toradol 10 mg tablets", (10.0, None, "")),
        (
            "Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet",
            None,
        ),  # which ingredient would a mg dose mean?
        ("ketorolac", None),
    ],
)
def test_product_strength_from_its_name(name, strength):
    from cds_service.snapshot.doses import name_strength

    assert name_strength(name) == strength


@pytest.mark.parametrize(
    "dose, quantity, days",
    [
        (dict(dose_mg=10, per_day=4), 40, date(2026, 12, 1)),  # 1 tablet a dose: 10 days
        (dict(dose_mg=20, per_day=4), 40, date(2026, 11, 26)),  # 2 tablets a dose: 5 days
        (dict(dose_unit="{tbl}", dose_value=1, per_day=4), 40, date(2026, 12, 1)),  # counted dose, as before
        (dict(dose_mg=10), 40, None),  # no frequency: no duration
    ],
)
def test_quantity_over_doses_per_day_with_a_weighed_dose(terminology, dose, quantity, days):
    s = _snap(
        terminology,
        [med_request("k", "834022", "Ketorolac 10 MG Oral Tablet", authored="2026-11-22", quantity=quantity, **dose)],
    )
    assert s.courses[0].end == days


def test_a_stopped_course_without_a_stop_date_says_so(terminology):
    s = _snap(
        terminology,
        [
            med_request("a", "834022", "Ketorolac 10 MG Oral Tablet", authored="2026-11-20", status="stopped"),
            med_request(
                "b", "834022", "Ketorolac 10 MG Oral Tablet", authored="2026-11-10", supply_days=5, status="stopped"
            ),
        ],
    )
    by = {c.ref: c for c in s.courses}
    assert (by["MedicationRequest/a"].end, by["MedicationRequest/a"].end_known) == (TODAY, False)  # counted to today
    assert (by["MedicationRequest/b"].end, by["MedicationRequest/b"].end_known) == (
        date(2026, 11, 14),
        False,
    )  # planned end
