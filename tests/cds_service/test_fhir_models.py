"""fhir.resources where it adds value (the resources the service sends): normalisation of unambiguous fixes, validity
cached by content."""

from __future__ import annotations

import copy

from cds_service import fhir_models
from cds_service.fhir_models import is_valid_r4, normalised
from tests.conftest import ROOT, sample


def test_single_objects_are_wrapped_where_r4_has_arrays():
    draft = sample("order-select-ketorolac")["context"]["draftOrders"]["entry"][0]["resource"]
    fixed = normalised(draft)
    assert isinstance(fixed["category"], list) and isinstance(fixed["reasonCode"], list)
    assert fixed["medicationCodeableConcept"] == draft["medicationCodeableConcept"]
    assert is_valid_r4(draft)  # normalised before validation


def test_validity_is_cached_by_content_and_exact(monkeypatch):
    calls = []
    real = fhir_models._validate
    monkeypatch.setattr(fhir_models, "_validate", lambda r: calls.append(r.get("id")) or real(r))
    monkeypatch.setattr(fhir_models, "_VALIDITY", {})
    good = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"text": "x"},
    }
    assert is_valid_r4(good) and is_valid_r4(copy.deepcopy(good))
    assert calls == ["m1"]  # the identical copy came from the cache
    broken = dict(good, subject="Patient/p1")  # a string where R4 has a Reference (structure, not terminology)
    assert not is_valid_r4(broken)
    assert calls == ["m1", "m1"]  # a changed resource is validated again


_FIRST_CALL = r"""
import sys, orjson
from hooks.wsgi import create_app
from bench.bench import hook_body, synthetic_prefetch
app = create_app({"database_url": "sqlite:///:memory:", "log_level": "WARNING"})
before = {m for m in sys.modules if m.startswith(("fhir.resources", "fhir_core"))}
client = app.test_client()
for hook in ("patient-view", "order-select", "order-sign"):
    resp = client.post(f"/cds-services/backpain-{hook}", data=hook_body(hook, synthetic_prefetch("typical")),
                       content_type="application/json", buffered=True)
    assert resp.status_code == 200 and resp.get_json()["cards"], resp.get_json()
after = {m for m in sys.modules if m.startswith(("fhir.resources", "fhir_core"))}
print(orjson.dumps({"before": len(before), "imported_by_calls": sorted(after - before)}).decode())
"""


def test_the_first_hook_calls_import_no_fhir_model():
    """Models are built at start-up (before gunicorn forks), not by the first clinician's call (~0.1 s)."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _FIRST_CALL], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["before"] > 0 and result["imported_by_calls"] == []


def test_every_warm_up_record_is_valid_r4():
    from cds_service.fhir_models import WARM_UP_RECORDS, is_valid_r4

    assert [(r["resourceType"], is_valid_r4(r)) for r in WARM_UP_RECORDS] == [
        (r["resourceType"], True) for r in WARM_UP_RECORDS
    ]
