"""Value-set matching: codes first (ICD-10-CM by ancestor), then names in text for drugs only."""

from __future__ import annotations

from datetime import date

import pytest

from cds_service.terminology import Terminology
from hooks.engine import VALUESETS_DIR
from tests.factories import ICD10, RXNORM

TODAY = date(2026, 11, 22)


@pytest.fixture(scope="module")
def terminology():
    return Terminology.load_dir(VALUESETS_DIR)


RETENTION = ("267064002", "Retention of urine")


_NEURO_FINDING = {
    "coding": [{"system": "http://snomed.info/sct", "code": "449813001", "display": "Numbness of saddle area"}]
}


_V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


@pytest.mark.parametrize(
    "concept, sets, ingredient, by",
    [
        ({"coding": [{"system": RXNORM, "code": "834022"}]}, {"ketorolac"}, "ketorolac", "code"),  # SCD product
        ({"coding": [{"system": RXNORM, "code": "35827"}]}, {"ketorolac"}, "ketorolac", "code"),  # ingredient
        ({"coding": [{"system": "urn:oid:2.16.840.1.113883.6.88", "code": "198014"}]}, {"nsaids"}, "naproxen", "code"),
        ({"text": "TORADOL 10mg tab"}, {"ketorolac"}, "ketorolac", "text"),  # brand, text only
        (
            {"coding": [{"system": RXNORM, "code": "999999999", "display": "Prednisone 5 MG oral tablet"}]},
            {"systemic-corticosteroids"},
            "prednisone",
            "text",
        ),  # unknown code, display fallback
        ({"text": "ketorolacx"}, set(), None, ""),  # no partial-word match
        ({"coding": {"system": RXNORM, "code": "834022"}}, {"ketorolac"}, "ketorolac", "code"),  # single Coding object
    ],
)
def test_medication_matching(terminology, concept, sets, ingredient, by):
    m = terminology.match(concept)
    assert set(m.valuesets) == sets
    assert (next(iter(m.ingredients)) if m.ingredients else None) == ingredient
    assert m.by == by


@pytest.mark.parametrize(
    "code, expected",
    [
        ("M54.41", "lbp-radicular"),
        ("M54.50", "lbp-nonspecific"),
        ("M54.5", "lbp-nonspecific"),
        ("C79.51", "rf-malignancy"),
        ("M46.26", "rf-spinal-infection"),
        ("G83.4", "rf-cauda-equina"),
        ("J45.901", "steroid-other-indication"),
        ("C50.911", "steroid-other-indication"),
    ],
)
def test_icd10_descendants_match_by_prefix(terminology, code, expected):
    assert expected in terminology.match({"coding": [{"system": ICD10, "code": code}]}).valuesets


def test_condition_text_alone_is_not_matched(terminology):
    assert not terminology.match({"text": "Sciatica"}, text_fallback=False)
