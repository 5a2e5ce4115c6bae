"""Conditions (the problem list and encounter diagnoses: clinical and verification status, onset, recorded date) and
allergies/intolerances (active, not refuted), with R4 coded statuses or the STU3/DSTU2 plain strings."""

from __future__ import annotations

from typing import Any

from mypy_extensions import trait

from ..durations import parse_date
from .base import ReaderBase
from .facts import AllergyFact, ConditionFact
from .fields import _codes_of, _codings


@trait  # mypyc: one of the readers _Builder combines (a compiled class has one base class otherwise)
class ConditionReader(ReaderBase):
    def add_condition(self, resource: dict[str, Any]) -> None:
        if not isinstance(resource.get("code"), dict):
            raise ValueError("Condition without code")
        clinical = _status_codes(resource.get("clinicalStatus"))
        verified = _status_codes(resource.get("verificationStatus"))
        if verified & {"refuted", "entered-in-error"}:
            return
        active = bool(clinical & {"active", "recurrence", "relapse"}) or (
            not clinical and "abatementDateTime" not in resource
        )
        match = self.t.match(resource["code"], text_fallback=False)
        if not match:
            return  # in no value set: no rule can read it
        ref = f"Condition/{resource.get('id')}"
        self.resources[ref] = resource
        self.conditions.append(
            ConditionFact(
                ref=ref,
                display=match.display or "condition",
                valuesets=match.valuesets,
                active=active,
                onset=parse_date(resource.get("onsetDateTime") or (resource.get("onsetPeriod") or {}).get("start")),
                recorded=parse_date(
                    resource.get("recordedDate") or resource.get("dateRecorded") or resource.get("assertedDate")
                ),
                codes=_codings(resource["code"]),
            )
        )

    def add_allergy(self, resource: dict[str, Any]) -> None:
        if _status_codes(resource.get("verificationStatus")) & {"refuted", "entered-in-error"}:
            return
        if _status_codes(resource.get("clinicalStatus")) & {"inactive", "resolved"}:
            return
        match = self.t.match(resource.get("code"))
        if match:
            ref = f"AllergyIntolerance/{resource.get('id')}"
            self.resources[ref] = resource
            self.allergies.append(AllergyFact(ref, match.display, match.valuesets, match.ingredients))


def _status_codes(status: Any) -> set[str]:
    """The codes of an R4 coded status (clinicalStatus, verificationStatus), or the STU3/DSTU2 plain string."""
    return {status} if isinstance(status, str) else _codes_of(status)
