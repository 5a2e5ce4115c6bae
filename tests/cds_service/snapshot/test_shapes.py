"""Whether a record behind a card is readable: the compiled shapes of the fields the snapshot reads (msgspec), as
liberal as the reader where real clients differ from R4 without ambiguity, strict where a field it reads is the wrong
shape; and the card dropped end to end when a driving record is not readable."""

from __future__ import annotations

import copy

import pytest

from cds_service.snapshot.shapes import readable
from tests.conftest import sample, topics
from tests.factories import (
    KETOROLAC_INJ,
    KETOROLAC_ORAL,
    LBP,
    condition,
    draft,
    med_admin,
    med_request,
    observation,
    service_request,
)
from tests.hooks.support import LBP_RECENT, card, order, view

GOOD = {
    "condition": condition("c1", *LBP, onset="2026-11-01"),
    "med_request": med_request("m1", *KETOROLAC_ORAL, authored="2026-11-20", supply_days=5, dose_mg=10, per_day=4),
    "med_admin": med_admin("a1", *KETOROLAC_ORAL, "2026-11-20T08:00:00Z", dose_mg=10),
    "observation": observation("o1", "98979-8", "eGFR", 72, "mL/min/{1.73_m2}", "2026-11-20"),
    "service_request": service_request("s1", "http://www.ama-assn.org/go/cpt", "72148", "MRI lumbar spine"),
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_records_as_the_factories_write_them_are_readable(name):
    assert readable(GOOD[name])


def test_the_sandbox_draft_with_single_objects_for_arrays_is_readable():
    draft = sample("order-select-ketorolac")["context"]["draftOrders"]["entry"][0]["resource"]
    assert not isinstance(draft["reasonCode"], list)  # the sandbox's own shape, not wrapped
    assert readable(draft)


def test_dstu2_and_stu3_shapes_the_reader_knows_are_readable():
    assert readable({"resourceType": "MedicationOrder", "id": "mo1", "status": "active", "dateWritten": "2026-11-20"})
    assert readable(
        {
            "resourceType": "Condition",
            "id": "c1",
            "clinicalStatus": "active",
            "verificationStatus": "confirmed",
            "code": {"text": "x"},
            "patient": {"reference": "Patient/p1"},
            "dateRecorded": "2026-11-01",
        }
    )
    dosage = {"doseQuantity": {"value": 10, "unit": "mg"}, "timing": {"repeat": {"frequency": 4, "period": 1}}}
    assert readable({"resourceType": "MedicationRequest", "id": "m", "status": "active", "dosageInstruction": [dosage]})


_SUBJECT = {"reference": "Patient/p1"}


@pytest.mark.parametrize(
    "record",
    [
        dict(GOOD["condition"], onsetDateTime="2026"),  # year, year-month, dateTime with fraction and offset, instant
        dict(GOOD["condition"], onsetDateTime="2026-11"),
        dict(GOOD["condition"], onsetDateTime="2026-11-22T08:00:00.123456+05:30"),
        dict(GOOD["med_admin"], effectiveDateTime="2026-11-22T08:00:00Z"),
        {
            "resourceType": "MedicationStatement",
            "id": "ms",
            "status": "active",
            "subject": _SUBJECT,
            "medicationCodeableConcept": {"text": "ibuprofen"},
            "effectivePeriod": {"start": "2026-11-01"},
            "dosage": [{"timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}}}],
            "statusReason": [{"text": "pain"}],  # a list on MedicationStatement, one on MedicationRequest
        },
        {"resourceType": "Procedure", "id": "pr", "status": "completed", "performedPeriod": {"start": "2026-10-01"}},
        {"resourceType": "ImagingStudy", "id": "is", "status": "available", "started": "2026-10-01T09:30:00-05:00"},
        {
            "resourceType": "DiagnosticReport",
            "id": "dr",
            "status": "final",
            "code": {"text": "MRI"},
            "issued": "2026-10-02",
        },
        {"resourceType": "AllergyIntolerance", "id": "al", "clinicalStatus": "active", "code": {"text": "ibuprofen"}},
        {  # STU3: status is optional on a MedicationRequest
            "resourceType": "MedicationRequest",
            "id": "stu3",
            "medicationCodeableConcept": {"text": "ketorolac"},
            "dosageInstruction": [{"doseQuantity": {"value": 10, "unit": "mg"}}],
        },
        {  # DSTU2: Timing.repeat.when is one code
            "resourceType": "MedicationOrder",
            "id": "mo",
            "status": "active",
            "dosageInstruction": [{"timing": {"repeat": {"when": "HS"}}}],
        },
    ],
    ids=lambda r: f"{r['resourceType']}-{r.get('id')}-{r.get('onsetDateTime', '')}",
)
def test_valid_shapes_of_every_type_read_are_readable(record):
    assert readable(record)


@pytest.mark.parametrize(
    ("name", "path", "value"),
    [
        ("condition", ("subject",), "Patient/p1"),  # a string where FHIR has a Reference
        ("condition", ("onsetDateTime",), "last Tuesday"),  # not a FHIR dateTime
        ("condition", ("code",), ["Low back pain"]),  # strings where FHIR has a CodeableConcept
        ("med_request", ("dosageInstruction", 0, "doseAndRate", 0, "doseQuantity", "value"), "10"),  # number as text
        ("med_request", ("dispenseRequest", "expectedSupplyDuration"), 5),
        ("med_request", ("status",), None),  # R4 requires it and every reader decides by it
        ("observation", ("valueQuantity", "value"), "72"),
        ("med_admin", ("effectiveDateTime",), "20/11/2026"),
    ],
)
def test_a_field_the_reader_reads_in_a_shape_fhir_does_not_allow_is_not_readable(name, path, value):
    record = copy.deepcopy(GOOD[name])
    holder = record
    for step in path[:-1]:
        holder = holder[step]
    if value is None:
        del holder[path[-1]]
    else:
        holder[path[-1]] = value
    assert not readable(record)


def test_fields_the_reader_never_reads_are_not_checked():
    record = dict(GOOD["med_request"], note="free text where R4 has Annotations", intent=7)
    assert readable(record)


def test_types_the_snapshot_does_not_read_are_not_readable():
    assert not readable({"resourceType": "Encounter", "id": "e1", "status": "finished"})
    assert not readable(["not", "an", "object"])


CAUDA = condition("ce", "192970008", "Cauda equina syndrome", onset="2026-11-21")


def test_a_card_resting_on_an_unreadable_record_is_dropped(client):
    """The same cauda equina record gives the critical card, and none when its subject is a bare string (a field the
    reader reads, in a shape FHIR does not allow): a card never rests on a record the service could not read."""
    assert ("imaging-red-flags", "critical") in topics(view(client, conditions=[LBP_RECENT, CAUDA]))
    broken = dict(CAUDA, subject="Patient/p1")
    assert topics(view(client, conditions=[LBP_RECENT, broken])) == []


def test_an_unread_field_in_an_odd_shape_does_not_drop_the_card(client):
    odd = dict(CAUDA, note="written as a string")
    assert "Condition/ce" in card(view(client, conditions=[LBP_RECENT, odd]), "imaging-red-flags")["detail"]


def test_a_card_can_rest_on_an_stu3_allergy(client):
    """An STU3 AllergyIntolerance (plain-string statuses) to ibuprofen contraindicates ketorolac: the critical card,
    with the allergy in its facts (the fhir.resources R4 check used to drop it)."""
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "al1",
        "patient": {"reference": "Patient/p1"},
        "clinicalStatus": "active",
        "verificationStatus": "confirmed",
        "code": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "5640"}],
            "text": "Ibuprofen",
        },
    }
    resp = order(client, [draft("k", *KETOROLAC_INJ, route="im", supply_days=2)], allergies=[allergy])
    assert topics(resp) == [("ketorolac-contraindication", "critical")]
    assert "allergy or intolerance: Ibuprofen" in card(resp, "ketorolac-contraindication")["detail"]
