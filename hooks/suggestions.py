"""Suggestion actions whose resources are valid FHIR R4 (built and validated with fhir.resources R4B models).

R4B is wire-compatible with R4 for MedicationRequest and ServiceRequest as used here.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.durations import duration_days, fhir_quantity_days
from cds_service.fhir_models import is_valid_r4, json_copy, normalised
from cds_service.terminology import CPT, LOINC, RXNORM, SNOMED

UCUM = "http://unitsofmeasure.org"
ORAL = {"system": SNOMED, "code": "26643006", "display": "Oral route"}

# name → (RxNorm SCD, display, mg per dose, doses per day, instruction)
# name → (RxNorm product, its name, mg per dose, doses a day, instructions, tablets a day)
ALTERNATIVES = {
    "naproxen": ("198014", "Naproxen 500 MG Oral Tablet", 500, 2, "500 mg by mouth twice daily with food", 2),
    "ibuprofen": ("197806", "Ibuprofen 600 MG Oral Tablet", 600, 3, "600 mg by mouth every 8 hours with food", 3),
    "acetaminophen": (
        "198440",
        "Acetaminophen 500 MG Oral Tablet",
        1000,
        3,
        "1 g (2 × 500 mg) by mouth every 8 hours; max 3 g/day",
        6,
    ),
}

# key → (system, code, display) for ServiceRequest codes
STUDIES = {
    "mri": [(CPT, "72148", "MRI lumbar spine without contrast"), (LOINC, "30679-5", "MR Lumbar spine WO contrast")],
    "mri-contrast": [
        (CPT, "72158", "MRI lumbar spine without and with contrast"),
        (LOINC, "24967-2", "MR Lumbar spine WO and W contrast IV"),
    ],
    "xray": [(CPT, "72100", "Radiographs lumbosacral spine, 2 or 3 views")],
}
REFERRALS = {
    "neurosurgeon": (SNOMED, "308482002", "Referral to neurosurgeon (procedure)"),
    "orthopaedic": (SNOMED, "308481009", "Referral to orthopedic surgeon (procedure)"),
    "pain": (SNOMED, "306265007", "Referral to pain management specialist (procedure)"),
    "physio": (SNOMED, "308447003", "Referral to physiotherapist (procedure)"),
}
IMAGING_CATEGORY = {"system": SNOMED, "code": "363679005", "display": "Imaging (procedure)"}
REFERRAL_CATEGORY = {"system": SNOMED, "code": "3457005", "display": "Patient referral (procedure)"}


def _valid(model: Any, resource: dict[str, Any]) -> dict[str, Any]:
    """Validate with the R4B model and return the JSON form (raises if the resource is not valid FHIR)."""
    return model.model_validate(resource).model_dump(mode="json", exclude_none=True)


def delete(ref: str, description: str) -> dict[str, Any]:
    return {"type": "delete", "description": description, "resourceId": ref}


def medication_order(patient_id: str, name: str, reason: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create action for an alternative drug; the resource shape is validated once, then filled per patient."""
    action = json_copy(_medication_template(name, reason is not None))
    action["resource"]["subject"]["reference"] = f"Patient/{patient_id}"
    if reason is not None:
        action["resource"]["reasonCode"] = [reason]
    return action


@lru_cache(maxsize=16)
def _medication_template(name: str, with_reason: bool) -> dict[str, Any]:
    return _medication_order("placeholder", name, back_pain_reason() if with_reason else None)


def _medication_order(patient_id: str, name: str, reason: dict[str, Any] | None) -> dict[str, Any]:
    code, display, mg, per_day, text, _ = ALTERNATIVES[name]
    per_dose_unit = mg
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": display}],
            "text": display,
        },
        "dosageInstruction": [
            {
                "text": text,
                "route": {"coding": [ORAL]},
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": per_dose_unit, "unit": "mg", "system": UCUM, "code": "mg"}}],
            }
        ],
    }
    if reason:
        resource["reasonCode"] = [reason]
    return {
        "type": "create",
        "description": f"Order {display.lower()}: {text}",
        "resource": _valid(MedicationRequest, resource),
    }


def service_request(
    patient_id: str,
    codes: list[tuple[str, str, str]],
    *,
    category: dict[str, str],
    priority: str,
    note: str,
    reason: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create action for a ServiceRequest; the shape is validated once per code/category/priority, then filled."""
    key = (tuple(codes), tuple(sorted(category.items())), priority, reason is not None)
    action = json_copy(_service_request_template(key))
    resource = action["resource"]
    resource["subject"]["reference"] = f"Patient/{patient_id}"
    resource["note"][0]["text"] = note
    if reason is not None:
        resource["reasonCode"] = [reason]
    return action


@lru_cache(maxsize=128)
def _service_request_template(key: tuple[Any, ...]) -> dict[str, Any]:
    codes, category, priority, with_reason = key
    return _service_request(
        "placeholder",
        list(codes),
        category=dict(category),
        priority=priority,
        note="placeholder",
        reason=back_pain_reason() if with_reason else None,
    )


def _service_request(
    patient_id: str,
    codes: list[tuple[str, str, str]],
    *,
    category: dict[str, str],
    priority: str,
    note: str,
    reason: dict[str, Any] | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "priority": priority,
        "category": [{"coding": [category]}],
        "code": {"coding": [{"system": s, "code": c, "display": d} for s, c, d in codes], "text": codes[0][2]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "note": [{"text": note}],
    }
    if reason:
        resource["reasonCode"] = [reason]
    return {
        "type": "create",
        "description": f"Order {codes[0][2]} ({priority})",
        "resource": _valid(ServiceRequest, resource),
    }


def imaging(
    patient_id: str, study: str, priority: str, note: str, reason: dict[str, Any] | None = None
) -> dict[str, Any]:
    return service_request(
        patient_id, STUDIES[study], category=IMAGING_CATEGORY, priority=priority, note=note, reason=reason
    )


def referral(
    patient_id: str, kind: str, priority: str, note: str, reason: dict[str, Any] | None = None
) -> dict[str, Any]:
    return service_request(
        patient_id, [REFERRALS[kind]], category=REFERRAL_CATEGORY, priority=priority, note=note, reason=reason
    )


def _supply(name: str, days: int) -> dict[str, Any]:
    """A bounded supply of an alternative: ``days`` and the tablets they need."""
    return {
        "quantity": {"value": days * ALTERNATIVES[name][5], "unit": "tablet", "system": UCUM, "code": "{tbl}"},
        "expectedSupplyDuration": fhir_quantity_days(days),
    }


def replacement(
    patient_id: str, name: str, replaced: list[tuple[dict[str, Any], str, bool]], description: str, supply_days: int
) -> tuple[dict[str, Any], ...]:
    """The actions that replace orders with ``name`` (an ALTERNATIVES drug), in a shape real clients apply whole.

    ``replaced``: (resource, "Type/id", is a draft). A draft is replaced in place — one ``update`` of the same
    MedicationRequest with the new drug, dosage and instructions (its id, status, intent, subject, dates and supply
    duration kept; a tablet count for the old drug dropped) — and any further drafts are deleted. A recorded order, or a
    draft that is not valid FHIR even with the change, gets a ``create`` of the new order first, then its ``stop``/
    ``delete``: the public CDS Hooks sandbox applies the first create/update that carries a coded medication and stops
    there, and clears the order at the first delete (sandbox/README.md), so the new drug must come first.

    The new order's supply is bounded: ``supply_days`` (``alternative_supply_days``), or the replaced draft's own
    supply duration when that is shorter, with the tablets it needs — never an open-ended NSAID.
    """
    reason = back_pain_reason()
    first, rest = (replaced[0], replaced[1:]) if replaced else (None, [])
    in_place = (
        _replace_in_place(first[0], name, reason, description, supply_days) if first is not None and first[2] else None
    )
    if in_place is not None:
        return (
            in_place,
            *(delete(ref, f"Remove {_label(r)}") if draft else _stop_or_delete(r, ref) for r, ref, draft in rest),
        )
    removals = tuple(
        delete(ref, f"Remove {_label(r)}") if draft else _stop_or_delete(r, ref) for r, ref, draft in replaced
    )
    created = medication_order(patient_id, name, reason)
    created["resource"]["dispenseRequest"] = _supply(name, supply_days)
    return (created, *removals)


def _label(resource: dict[str, Any]) -> str:
    concept = resource.get("medicationCodeableConcept")
    text = concept.get("text") if isinstance(concept, dict) else None
    return f"the order ({text})" if isinstance(text, str) and text else "the order"


def _stop_or_delete(resource: dict[str, Any], ref: str) -> dict[str, Any]:
    return stop(resource, f"Stop {_label(resource)}") or delete(ref, f"Remove {_label(resource)}")


def _replace_in_place(
    resource: dict[str, Any], name: str, reason: dict[str, Any], description: str, supply_days: int
) -> dict[str, Any] | None:
    template = _medication_template(name, True)["resource"]

    def apply(r: dict[str, Any]) -> None:
        r.pop("medicationReference", None)
        r.pop("contained", None)
        r["medicationCodeableConcept"] = json_copy(template["medicationCodeableConcept"])
        r["dosageInstruction"] = json_copy(template["dosageInstruction"])
        old = r.get("dispenseRequest")
        dispense: dict[str, Any] = old if isinstance(old, dict) else {}
        own = duration_days(dispense.get("expectedSupplyDuration"))
        days = min(supply_days, math.ceil(own)) if own else supply_days
        r["dispenseRequest"] = {
            **({"validityPeriod": dispense["validityPeriod"]} if "validityPeriod" in dispense else {}),
            **_supply(name, days),
        }
        if not r.get("reasonCode") and not r.get("reasonReference"):
            r["reasonCode"] = [reason]

    return update(resource, description, apply)


def update(resource: dict[str, Any], description: str, change: Any) -> dict[str, Any] | None:
    """An update action carrying the whole MedicationRequest with ``change(copy)`` applied, validated (R4).

    None when the record itself is not valid FHIR even after normalisation: no update is offered then.
    """
    if resource.get("resourceType") != "MedicationRequest":
        return None
    changed = json_copy(normalised(resource))
    change(changed)
    if not is_valid_r4(changed):
        return None
    return {"type": "update", "description": description, "resource": changed}


def bounded_duration(
    resource: dict[str, Any], days: int, units_per_day: float | None, what: str = "ketorolac"
) -> dict[str, Any] | None:
    """Limit an order to ``days``: its supply duration and any timing bounds, and its dispensed quantity to
    ``days`` × ``units_per_day`` (units of the quantity: tablets, mL — the snapshot converts a mg dose with the
    product's strength). A quantity that cannot be recomputed is removed rather than left at the longer supply (the
    pharmacist sets it for the shorter duration; the action says so)."""
    recomputed = True

    def apply(r: dict[str, Any]) -> None:
        nonlocal recomputed
        dispense = r.setdefault("dispenseRequest", {})
        dispense["expectedSupplyDuration"] = fhir_quantity_days(days)
        quantity = dispense.get("quantity")
        if isinstance(quantity, dict):
            total = days * units_per_day if units_per_day else None
            before = quantity.get("value")
            if total is not None and not (isinstance(before, (int, float)) and total > before):
                quantity["value"] = int(total) if float(total).is_integer() else math.ceil(total * 10) / 10
            else:  # no conversion, or one that would dispense more than the longer order did: the pharmacist sets it
                recomputed = False
                dispense.pop("quantity")
        for dosage in r.get("dosageInstruction") or []:
            repeat = (dosage.get("timing") or {}).get("repeat")
            if isinstance(repeat, dict) and ("boundsPeriod" in repeat or "boundsDuration" in repeat):
                repeat.pop("boundsPeriod", None)
                repeat["boundsDuration"] = fhir_quantity_days(days)

    action = update(resource, f"Limit the {what} order to {days} day{'s' if days != 1 else ''}", apply)
    if action is not None and not recomputed:
        action["description"] += " (quantity removed: set it for the shorter supply)"
    return action


def stop(resource: dict[str, Any], description: str) -> dict[str, Any] | None:
    def apply(r: dict[str, Any]) -> None:
        r["status"] = "stopped"

    return update(resource, description, apply)


def set_dose(resource: dict[str, Any], mg: float, per_day: int | None, description: str) -> dict[str, Any] | None:
    """The order with its dose set to ``mg``, ``per_day`` times a day — or, with ``per_day`` None, once: the dose
    changed and the timing left as ordered."""

    def apply(r: dict[str, Any]) -> None:
        dosages = r.setdefault("dosageInstruction", [{}])
        dosage = dosages[0]
        dosage["doseAndRate"] = [{"doseQuantity": {"value": mg, "unit": "mg", "system": UCUM, "code": "mg"}}]
        if per_day is None:
            dosage["text"] = f"{mg:g} mg once"
            return
        timing = dosage.setdefault("timing", {})
        repeat = timing.setdefault("repeat", {})
        repeat.update({"frequency": per_day, "period": 1, "periodUnit": "d"})
        repeat.pop("frequencyMax", None)
        dosage["text"] = f"{mg:g} mg every {24 // per_day} hours (max {mg * per_day:g} mg/day)"

    return update(resource, description, apply)


def back_pain_reason() -> dict[str, Any]:
    return {
        "coding": [{"system": SNOMED, "code": "279039007", "display": "Low back pain (finding)"}],
        "text": "Low back pain",
    }
