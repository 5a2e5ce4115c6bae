"""Observations: a finding counts only when the record says it was present."""

from __future__ import annotations

from datetime import date

import pytest

from cds_service.snapshot import build_snapshot
from cds_service.terminology import Terminology
from hooks.engine import VALUESETS_DIR
from tests.factories import finding

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


@pytest.mark.parametrize(
    "extra, asserted",
    [
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
        (
            {"code": {"text": "Neurological examination finding"}, "valueCodeableConcept": _NEURO_FINDING},
            {"rf-cauda-equina"},
        ),
        (
            {
                "code": {"text": "Neurological examination finding"},
                "valueCodeableConcept": _NEURO_FINDING,
                "interpretation": {"coding": [{"system": _V3, "code": "NEG"}]},
            },
            set(),
        ),  # single-object interpretation (liberal)
    ],
)
def test_observation_findings_are_read_as_present_only_when_the_record_says_so(terminology, extra, asserted):
    s = _snap(terminology, [finding("f", *RETENTION, "2026-11-20", **extra)])
    if asserted is None:
        assert s.observations == ()
        return
    (o,) = s.observations
    assert (o.ref, o.asserted, o.effective.earliest.isoformat()) == ("Observation/f", frozenset(asserted), "2026-11-20")


def test_finding_in_the_answer_takes_the_answers_display(terminology):
    s = _snap(
        terminology,
        [
            finding(
                "f",
                "0",
                "Neurological examination finding",
                "2026-11-20",
                code={"text": "Neuro exam"},
                valueCodeableConcept=_NEURO_FINDING,
            )
        ],
    )
    assert [(o.display, o.asserted) for o in s.observations] == [
        ("Numbness of saddle area", frozenset({"rf-cauda-equina"}))
    ]


def test_observation_in_no_value_set_is_not_read(terminology):
    s = _snap(
        terminology,
        [
            finding("f", "271737000", "Anemia", "2026-11-20"),
            finding("g", "0", "Exam", "2026-11-20", valueCodeableConcept={"text": "saddle numbness"}),
        ],
    )
    assert s.observations == ()
