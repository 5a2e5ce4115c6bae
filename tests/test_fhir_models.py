"""fhir.resources where it adds value: normalisation of unambiguous fixes, validity cached by content."""

from __future__ import annotations

import copy

from cds_service import fhir_models
from cds_service.fhir_models import is_valid, normalised
from tests.conftest import sample


def test_single_objects_are_wrapped_where_r4_has_arrays():
    draft = sample("order-select-ketorolac")["context"]["draftOrders"]["entry"][0]["resource"]
    fixed = normalised(draft)
    assert isinstance(fixed["category"], list) and isinstance(fixed["reasonCode"], list)
    assert fixed["medicationCodeableConcept"] == draft["medicationCodeableConcept"]
    assert is_valid(draft)


def test_validity_is_cached_by_content_and_exact(monkeypatch):
    calls = []
    real = fhir_models._validate
    monkeypatch.setattr(fhir_models, "_validate", lambda r: calls.append(r.get("id")) or real(r))
    monkeypatch.setattr(fhir_models, "_VALIDITY", {})
    good = {"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": {"text": "x"}}
    assert is_valid(good) and is_valid(copy.deepcopy(good))
    assert calls == ["m1"]  # the identical copy came from the cache
    broken = dict(good, subject="Patient/p1")  # a string where R4 has a Reference (structure, not terminology)
    assert not is_valid(broken)
    assert calls == ["m1", "m1"]  # a changed resource is validated again


def test_legacy_shapes_are_readable_without_an_r4_model():
    assert is_valid({"resourceType": "MedicationOrder", "id": "mo1", "status": "active"})
    assert is_valid({"resourceType": "Condition", "id": "c1", "clinicalStatus": "active", "code": {"text": "x"},
                     "patient": {"reference": "Patient/p1"}})
    assert not is_valid({"resourceType": "MedicationRequest", "id": "m", "status": "active"})  # R4 but no intent/subject
