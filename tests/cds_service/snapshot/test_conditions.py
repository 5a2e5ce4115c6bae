"""Conditions: other patients ignored, invalid entries skipped and counted, codes classified."""

from __future__ import annotations

from datetime import date

import pytest

from cds_service.snapshot import build_snapshot
from cds_service.terminology import Terminology
from hooks.engine import VALUESETS_DIR
from tests.factories import ICD10, SNOMED, condition

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


def test_snapshot_ignores_other_patients_and_skips_invalid_entries(terminology):
    s = _snap(
        terminology,
        [
            condition("c1", "23056005", "Sciatica", pid="p1"),
            condition("c2", "23056005", "Sciatica", pid="someone-else"),
            {"resourceType": "Condition", "id": "bad"},  # no code: skipped, counted
            "not an object",
            condition("c3", "23056005", "Sciatica", verification="refuted"),
        ],
    )
    assert [c.ref for c in s.conditions] == ["Condition/c1"]
    assert s.skipped == {"Condition": 1, "(not an object)": 1}


def test_condition_codes_are_classified(terminology):
    s = _snap(
        terminology,
        [
            condition("c", "M51.16", "Disc disorder with radiculopathy, lumbar", system=ICD10, onset="2026-10-01"),
            condition("d", "192970008", "Cauda equina syndrome", system=SNOMED),
        ],
    )
    assert {"lbp-radicular", "lbp-disc"} <= s.conditions[0].valuesets
    assert "rf-cauda-equina" in s.conditions[1].valuesets


IBUPROFEN_ALLERGY = {
    "resourceType": "AllergyIntolerance",
    "id": "al1",
    "patient": {"reference": "Patient/p1"},
    "code": {
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "5640", "display": "Ibuprofen"}]
    },
}


@pytest.mark.parametrize(
    ("statuses", "read"),
    [
        ({}, True),
        ({"clinicalStatus": {"coding": [{"code": "active"}]}}, True),
        ({"clinicalStatus": {"coding": [{"code": "resolved"}]}}, False),
        ({"verificationStatus": {"coding": [{"code": "refuted"}]}}, False),
        ({"clinicalStatus": "active", "verificationStatus": "confirmed"}, True),  # STU3 plain strings
        ({"clinicalStatus": "resolved"}, False),  # STU3: resolved, not an allergy now
        ({"verificationStatus": "entered-in-error"}, False),
    ],
)
def test_allergies_are_read_unless_resolved_or_refuted_coded_or_in_stu3_strings(terminology, statuses, read):
    s = _snap(terminology, [dict(IBUPROFEN_ALLERGY, **statuses)])
    assert [(a.ref, "nsaids" in a.valuesets) for a in s.allergies] == (
        [("AllergyIntolerance/al1", True)] if read else []
    )
