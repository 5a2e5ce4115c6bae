"""The shapes of the fields the snapshot reads, as compiled types (msgspec Structs): whether a record that drives a
finding is readable where the service reads it.

A finding is dropped when a record behind it (other than this call's draft orders) has a field the reader reads in a
shape FHIR does not allow: a string where FHIR has a Reference, a number as text, a date that is not a FHIR date, a
list of strings where FHIR has CodeableConcepts. Fields the reader never reads are not checked (their shape cannot
change a fact). Decided in the performance issue (#17): this replaces validating the whole record against its
fhir.resources (pydantic) model on the hot path, at a few microseconds a record instead of 90–260 µs; fhir.resources
still validates every suggestion resource the service sends.

The shapes are as liberal as the reader where real clients differ from R4 without ambiguity: a single object where R4
has a list (the public sandbox's ``reasonCode`` and ``category``), the DSTU2/STU3 shapes the reader knows
(``MedicationOrder``, ``dateWritten``, string ``clinicalStatus``, ``patient`` for ``subject``, ``dosage.doseQuantity``,
``assertedDate``, string allergy statuses). Unknown fields are skipped (in C); ``status`` is required where R4 requires
it (every reader decides by it), except on an STU3 MedicationRequest (one with ``dosageInstruction.doseQuantity``),
where it is optional.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

# FHIR date, dateTime and instant (year, year-month, date, date and time with optional seconds, fraction and zone).
_FHIR_DATE = r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$"
Date = Annotated[str, Meta(pattern=_FHIR_DATE)]


class Coding(Struct):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class CodeableConcept(Struct):
    coding: list[Coding] | Coding | None = None
    text: str | None = None


Concepts = list[CodeableConcept] | CodeableConcept | None


class Reference(Struct):
    reference: str | None = None
    display: str | None = None


class Quantity(Struct):
    value: float | None = None
    unit: str | None = None
    code: str | None = None
    system: str | None = None


class Period(Struct):
    start: Date | None = None
    end: Date | None = None


class Ratio(Struct):
    numerator: Quantity | None = None
    denominator: Quantity | None = None


class Repeat(Struct):
    boundsPeriod: Period | None = None
    boundsDuration: Quantity | None = None
    count: int | None = None
    frequency: float | None = None  # positiveInt in R4; a decimal is read as the reader reads it
    frequencyMax: float | None = None
    period: float | None = None
    periodUnit: str | None = None
    when: list[str] | str | None = None  # one code in DSTU2


class Timing(Struct):
    repeat: Repeat | None = None


class DoseAndRate(Struct):
    doseQuantity: Quantity | None = None


class Dosage(Struct):
    timing: Timing | None = None
    route: CodeableConcept | None = None
    doseAndRate: list[DoseAndRate] | DoseAndRate | None = None
    doseQuantity: Quantity | None = None  # DSTU2/STU3
    dose: Quantity | None = None  # MedicationAdministration


class DispenseRequest(Struct):
    validityPeriod: Period | None = None
    quantity: Quantity | None = None
    expectedSupplyDuration: Quantity | None = None


class Extension(Struct):
    url: str | None = None
    valueDateTime: Date | None = None
    valueDate: Date | None = None
    valueInstant: Date | None = None
    valuePeriod: Period | None = None


class StatusReason(CodeableConcept):
    extension: list[Extension] | None = None  # a stop date may be carried here


class Ingredient(Struct):
    strength: Ratio | None = None


class _Plain(Struct, kw_only=True, tag_field="resourceType"):
    id: str | None = None


class Medication(_Plain, tag=True):
    code: CodeableConcept | None = None
    ingredient: list[Ingredient] | Ingredient | None = None


class Patient(_Plain, tag=True):
    birthDate: Date | None = None
    gender: str | None = None


class _Record(Struct, kw_only=True, tag_field="resourceType"):
    id: str | None = None
    subject: Reference | None = None
    patient: Reference | None = None  # DSTU2/STU3, AllergyIntolerance
    status: str | None = None  # required by R4 for the types that have it (``readable``)


class _Ordered(_Record):
    reasonCode: Concepts = None
    reasonReference: list[Reference] | Reference | None = None


class Contained(Struct):
    """A contained resource: the reader looks for the Medication a ``#id`` reference names."""

    resourceType: str | None = None
    id: str | None = None
    code: Any = None
    ingredient: Any = None


class _MedicationRecord(_Ordered):
    """What the medication reader reads of MedicationRequest (and DSTU2 MedicationOrder), MedicationStatement and
    MedicationAdministration: one field set, since it reads each date field of any of them."""

    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None
    contained: list[Contained] | None = None
    statusReason: list[StatusReason] | StatusReason | None = None
    extension: list[Extension] | None = None
    authoredOn: Date | None = None
    dateWritten: Date | None = None  # DSTU2 MedicationOrder
    effectiveDateTime: Date | None = None
    effectivePeriod: Period | None = None
    dateAsserted: Date | None = None
    dosageInstruction: list[Dosage] | Dosage | None = None
    dosage: list[Dosage] | Dosage | None = None  # a list on MedicationStatement, one on MedicationAdministration
    dispenseRequest: DispenseRequest | None = None
    request: Reference | None = None


class MedicationRequest(_MedicationRecord, tag=True):
    pass


class MedicationOrder(_MedicationRecord, tag=True):  # DSTU2
    pass


class MedicationStatement(_MedicationRecord, tag=True):
    pass


class MedicationAdministration(_MedicationRecord, tag=True):
    pass


class Condition(_Record, tag=True):
    code: CodeableConcept | None = None
    clinicalStatus: CodeableConcept | str | None = None  # str: STU3/DSTU2
    verificationStatus: CodeableConcept | str | None = None
    onsetDateTime: Date | None = None
    onsetPeriod: Period | None = None
    abatementDateTime: Date | None | msgspec.UnsetType = msgspec.UNSET  # present (even null): abated
    recordedDate: Date | None = None
    dateRecorded: Date | None = None  # DSTU2
    assertedDate: Date | None = None  # STU3


class AllergyIntolerance(_Record, tag=True):
    code: CodeableConcept | None = None
    clinicalStatus: CodeableConcept | str | None = None  # str: STU3
    verificationStatus: CodeableConcept | str | None = None


class Observation(_Record, tag=True):
    code: CodeableConcept | None = None
    effectiveDateTime: Date | None = None
    effectivePeriod: Period | None = None
    issued: Date | None = None
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueDateTime: Date | None = None
    valueBoolean: bool | None = None
    interpretation: Concepts = None


class _Order(_Ordered):
    """What the order reader reads of ServiceRequest, Procedure, ImagingStudy and DiagnosticReport (each date field of
    any of them)."""

    code: CodeableConcept | None = None
    procedureCode: Concepts = None  # ImagingStudy
    authoredOn: Date | None = None
    occurrenceDateTime: Date | None = None
    occurrencePeriod: Period | None = None
    performedDateTime: Date | None = None
    performedPeriod: Period | None = None
    started: Date | None = None
    effectiveDateTime: Date | None = None
    effectivePeriod: Period | None = None
    issued: Date | None = None


class ServiceRequest(_Order, tag=True):
    pass


class Procedure(_Order, tag=True):
    pass


class ImagingStudy(_Order, tag=True):
    pass


class DiagnosticReport(_Order, tag=True):
    pass


SHAPES: dict[str, type[Struct]] = {
    "MedicationRequest": MedicationRequest,
    "MedicationOrder": MedicationOrder,
    "MedicationStatement": MedicationStatement,
    "MedicationAdministration": MedicationAdministration,
    "Condition": Condition,
    "AllergyIntolerance": AllergyIntolerance,
    "Observation": Observation,
    "ServiceRequest": ServiceRequest,
    "Procedure": Procedure,
    "ImagingStudy": ImagingStudy,
    "DiagnosticReport": DiagnosticReport,
    "Medication": Medication,
    "Patient": Patient,
}
# Types whose R4 definition requires ``status``: every reader decides by it.
STATUS_REQUIRED = frozenset(SHAPES) - {"Condition", "AllergyIntolerance", "Medication", "Patient", "MedicationOrder"}


def readable(resource: Any) -> bool:
    """Every field of ``resource`` that the snapshot reads has a shape FHIR allows (see the module's docstring); False
    for a type the snapshot does not read."""
    shape = SHAPES.get(str(resource.get("resourceType"))) if isinstance(resource, dict) else None
    if shape is None:
        return False
    try:
        decoded = msgspec.convert(resource, shape)
    except msgspec.ValidationError:
        return False
    return (
        resource["resourceType"] not in STATUS_REQUIRED
        or getattr(decoded, "status", None) is not None
        or (resource["resourceType"] == "MedicationRequest" and _stu3_dosage(decoded))
    )


def _stu3_dosage(order: Any) -> bool:
    """An STU3 MedicationRequest (``dosageInstruction.doseQuantity``), whose ``status`` is optional."""
    dosages = order.dosageInstruction
    return any(d.doseQuantity is not None for d in (dosages if isinstance(dosages, list) else [dosages]) if d)
