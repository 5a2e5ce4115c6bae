"""fhir.resources (R4B) where it adds value: validating the resources the service sends (suggestions).

Real clients send imperfect FHIR (the public sandbox sends ``category`` and ``reasonCode`` of a draft
MedicationRequest as single objects instead of arrays). :func:`normalised` fixes what is unambiguous —
a single value where the model has a list — guided by the model's own field definitions, then
:func:`is_valid_r4` asks the model (an update suggestion carries the whole record it changes). Results are cached by a
digest of the resource's content. Whether a record behind a card is readable is ``snapshot.shapes.readable`` (compiled
shapes of the fields the snapshot reads), not these models.
"""

from __future__ import annotations

import hashlib
import importlib
import typing
from functools import lru_cache
from typing import Any

import orjson
from pydantic import ValidationError


@lru_cache(maxsize=64)
def model_class(resource_type: str) -> Any:
    try:
        module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
        return getattr(module, resource_type)
    except (ImportError, AttributeError):
        return None


@lru_cache(maxsize=2048)
def _field_info(cls: Any) -> dict[str, tuple[bool, Any]]:
    """field alias → (is_list, element model class or None)."""
    out: dict[str, tuple[bool, Any]] = {}
    for name, f in cls.model_fields.items():
        ann = f.annotation
        is_list = False
        inner = ann
        for _ in range(3):  # unwrap Optional[...] / List[...]
            origin = typing.get_origin(inner)
            args = [a for a in typing.get_args(inner) if a is not type(None)]
            if origin in (list, typing.List) and args:  # noqa: UP006
                is_list = True
                inner = args[0]
            elif origin is typing.Union and args:
                inner = args[0]
            else:
                break
        element = inner if isinstance(inner, type) and hasattr(inner, "model_fields") else None
        out[f.alias or name] = (is_list, element)
    return out


def _normalise(value: dict[str, Any], cls: Any) -> dict[str, Any]:
    fields = _field_info(cls)
    out: dict[str, Any] = {}
    for key, item in value.items():
        info = fields.get(key)
        if info is None:
            out[key] = item
            continue
        is_list, element = info
        if is_list and not isinstance(item, list) and item is not None:
            item = [item]
        if element is not None and key not in ("contained",):
            if isinstance(item, list):
                item = [_normalise(i, element) if isinstance(i, dict) else i for i in item]
            elif isinstance(item, dict):
                item = _normalise(item, element)
        out[key] = item
    return out


def normalised(resource: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``resource`` with single values wrapped where the R4 model expects a list."""
    cls = model_class(str(resource.get("resourceType", "")))
    return _normalise(resource, cls) if cls is not None else resource


def is_valid_r4(resource: dict[str, Any]) -> bool:
    """Valid against its R4 (R4B) model after normalisation.

    Validity depends only on the resource's content, so it is cached by a digest of its canonical JSON (EHRs re-fire
    hooks for the same patient on every keystroke and chart reopen). The cache holds digests and booleans, no data.
    """
    try:
        digest = hashlib.blake2b(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
    except (TypeError, orjson.JSONEncodeError):
        return _validate(resource)
    cached = _VALIDITY.get(digest)
    if cached is None:
        cached = _validate(resource)
        if len(_VALIDITY) >= _VALIDITY_MAX:
            _VALIDITY.pop(next(iter(_VALIDITY)), None)  # oldest first (dicts keep insertion order)
        _VALIDITY[digest] = cached
    return cached


_VALIDITY: dict[bytes, bool] = {}
_VALIDITY_MAX = 4096


def json_copy(value: Any) -> Any:
    """A deep copy of plain JSON data (several times faster than copy.deepcopy)."""
    return orjson.loads(orjson.dumps(value))


def _validate(resource: dict[str, Any]) -> bool:
    cls = model_class(str(resource.get("resourceType", "")))
    if cls is None:
        return False
    try:
        cls.model_validate(normalised(resource))
    except (ValidationError, ValueError, TypeError):
        return False
    return True


_CC = {"coding": [{"system": "http://snomed.info/sct", "code": "279039007", "display": "Low back pain"}], "text": "x"}
_REF = {"reference": "Patient/warm-up", "display": "x"}
_PERIOD = {"start": "2026-01-01", "end": "2026-01-02"}
_QTY = {"value": 1, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"}
_DOSAGE = {
    "text": "x",
    "timing": {"repeat": {"boundsPeriod": _PERIOD, "frequency": 1, "period": 1, "periodUnit": "d"}},
    "route": _CC,
    "doseAndRate": [{"doseQuantity": _QTY}],
}
_COMMON = {
    "id": "warm-up",
    "meta": {"versionId": "1", "lastUpdated": "2026-01-01T00:00:00Z"},
    "identifier": [{"system": "urn:x", "value": "1"}],
    "note": [{"text": "x"}],
}
# One record per type the service sends (suggestions create and update MedicationRequests and create ServiceRequests),
# using the elements real records carry, so that building the models' validators happens at start-up instead of in the
# first hook call that meets each type.
WARM_UP_RECORDS: tuple[dict[str, Any], ...] = (
    {
        "resourceType": "MedicationRequest",
        **_COMMON,
        "status": "active",
        "intent": "order",
        "category": [_CC],
        "medicationCodeableConcept": _CC,
        "subject": _REF,
        "authoredOn": "2026-01-01",
        "requester": _REF,
        "reasonCode": [_CC],
        "reasonReference": [_REF],
        "dosageInstruction": [_DOSAGE],
        "statusReason": _CC,
        "dispenseRequest": {
            "validityPeriod": _PERIOD,
            "quantity": _QTY,
            "expectedSupplyDuration": _QTY,
            "numberOfRepeatsAllowed": 0,
        },
    },
    {
        "resourceType": "ServiceRequest",
        **_COMMON,
        "status": "active",
        "intent": "order",
        "priority": "urgent",
        "category": [_CC],
        "code": _CC,
        "subject": _REF,
        "authoredOn": "2026-01-01",
        "occurrenceDateTime": "2026-01-01",
        "reasonCode": [_CC],
        "reasonReference": [_REF],
        "performerType": _CC,
        "requester": _REF,
    },
)


def warm_up() -> None:
    """Build the models of every type the service sends now (start-up), not in the first call that needs one."""
    for record in WARM_UP_RECORDS:
        _validate(record)
