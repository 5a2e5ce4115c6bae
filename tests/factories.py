"""Small builders of FHIR R4 resources for tests (shapes as EHRs send them)."""

from __future__ import annotations

from typing import Any

from cds_service.terminology import CPT, ICD10CM, LOINC, RXNORM, SNOMED

ICD10 = ICD10CM

ROUTES = {
    "oral": ("26643006", "Oral route"),
    "iv": ("47625008", "Intravenous route"),
    "im": ("78421000", "Intramuscular route"),
    "epidural": ("404820008", "Epidural route"),
    "ophthalmic": ("54485002", "Ophthalmic use"),
    "intra-articular": ("12130007", "Intra-articular route"),
    "nasal": ("46713006", "Nasal route"),
}


def condition(
    cid: str,
    code: str,
    display: str,
    *,
    system: str = SNOMED,
    onset: str | None = None,
    recorded: str | None = None,
    status: str = "active",
    verification: str | None = None,
    pid: str = "p1",
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": f"Patient/{pid}"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]
        },
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
    }
    if verification:
        r["verificationStatus"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]
        }
    if onset:
        r["onsetDateTime"] = onset
    if recorded:
        r["recordedDate"] = recorded
    return r


def _dosage(
    route: str | None,
    dose_mg: float | None,
    per_day: float | None,
    bounds_days: float | None,
    dose_unit: str = "mg",
    dose_value: float | None = None,
) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if per_day is not None or bounds_days is not None:
        repeat: dict[str, Any] = {}
        if per_day is not None:
            repeat.update({"frequency": per_day, "period": 1, "periodUnit": "d"})
        if bounds_days is not None:
            repeat["boundsDuration"] = {
                "value": bounds_days,
                "unit": "days",
                "system": "http://unitsofmeasure.org",
                "code": "d",
            }
        d["timing"] = {"repeat": repeat}
    if route:
        code, display = ROUTES[route]
        d["route"] = {"coding": [{"system": SNOMED, "code": code, "display": display}]}
    if dose_mg is not None or dose_value is not None:
        d["doseAndRate"] = [
            {
                "doseQuantity": {
                    "value": dose_value if dose_value is not None else dose_mg,
                    "unit": dose_unit,
                    "system": "http://unitsofmeasure.org",
                    "code": dose_unit,
                }
            }
        ]
    return d


def med_request(
    mid: str,
    code: str | None,
    display: str,
    *,
    status: str = "active",
    authored: str | None = None,
    route: str | None = None,
    supply_days: float | None = None,
    supply_unit: str = "d",
    dose_mg: float | None = None,
    per_day: float | None = None,
    bounds_days: float | None = None,
    text_only: bool = False,
    pid: str = "p1",
    reason: tuple[str, str, str] | None = None,
    quantity: float | None = None,
    dose_unit: str = "mg",
    dose_value: float | None = None,
) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": display}
    if not text_only and code:
        concept["coding"] = [{"system": RXNORM, "code": code, "display": display}]
    r: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": mid,
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "medicationCodeableConcept": concept,
    }
    if authored:
        r["authoredOn"] = authored
    dosage = _dosage(route, dose_mg, per_day, bounds_days, dose_unit, dose_value)
    if dosage:
        r["dosageInstruction"] = [dosage]
    if supply_days is not None or quantity is not None:
        r["dispenseRequest"] = {}
        if supply_days is not None:
            r["dispenseRequest"]["expectedSupplyDuration"] = {
                "value": supply_days,
                "unit": supply_unit,
                "system": "http://unitsofmeasure.org",
                "code": supply_unit,
            }
        if quantity is not None:
            r["dispenseRequest"]["quantity"] = {
                "value": quantity,
                "unit": "tablet",
                "code": "{tbl}",
                "system": "http://unitsofmeasure.org",
            }
    if reason:
        system, rcode, rdisplay = reason
        r["reasonCode"] = [{"coding": [{"system": system, "code": rcode, "display": rdisplay}]}]
    return r


def draft(mid: str, code: str | None, display: str, **kw: Any) -> dict[str, Any]:
    kw.setdefault("status", "draft")
    return med_request(mid, code, display, **kw)


def med_admin(
    aid: str,
    code: str,
    display: str,
    when: str,
    *,
    route: str | None = None,
    dose_mg: float | None = None,
    pid: str = "p1",
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": aid,
        "status": "completed",
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}]},
    }
    dosage: dict[str, Any] = {}
    if route:
        c, d = ROUTES[route]
        dosage["route"] = {"coding": [{"system": SNOMED, "code": c, "display": d}]}
    if dose_mg is not None:
        dosage["dose"] = {"value": dose_mg, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}
    if dosage:
        r["dosage"] = dosage
    return r


def observation(
    oid: str, code: str, display: str, value: float, unit: str, when: str, pid: str = "p1"
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }


def finding(
    oid: str, snomed: str, display: str, when: str | None, *, pid: str = "p1", status: str = "final", **extra: Any
) -> dict[str, Any]:
    """An Observation recording a clinical finding (SNOMED CT code, no value: the finding was observed)."""
    r: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "subject": {"reference": f"Patient/{pid}"},
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "exam"}]}
        ],
        "code": {"coding": [{"system": SNOMED, "code": snomed, "display": display}], "text": display},
    }
    if when:
        r["effectiveDateTime"] = when
    r.update(extra)
    return r


def service_request(
    sid: str,
    system: str,
    code: str,
    display: str,
    *,
    status: str = "draft",
    authored: str | None = None,
    pid: str = "p1",
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": sid,
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
    }
    if authored:
        r["authoredOn"] = authored
    return r


# Frequently used records
KETOROLAC_ORAL = ("834022", "Ketorolac Tromethamine 10 MG Oral Tablet")
KETOROLAC_INJ = ("1665461", "1 ML Ketorolac Tromethamine 30 MG/ML Injection")
KETOROLAC_EYE = (None, "ketorolac tromethamine 0.5 % Ophthalmic Solution")
PREDNISONE = ("312615", "Prednisone 20 MG Oral Tablet")
DEXAMETHASONE_INJ = (None, "Dexamethasone 4 MG/ML Injectable Solution")
MRI_LUMBAR = (CPT, "72148", "MRI lumbar spine without contrast")
XR_LUMBAR = (CPT, "72100", "XR lumbar spine 2-3 views")
LBP = ("279039007", "Low back pain (finding)")
SCIATICA = ("23056005", "Sciatica (disorder)")
