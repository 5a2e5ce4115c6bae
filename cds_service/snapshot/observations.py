"""Observations, read on first use: labs and vital signs (a quantity), dates (a due date), and what a finding says was
present (``_asserted``)."""

from __future__ import annotations

from typing import Any

from mypy_extensions import trait

from ..durations import exact_date, parse_date
from ..terminology import Match
from .base import ReaderBase
from .facts import ObservationFact
from .fields import _ENTRY_ERRORS, _as_list, _codes_of, _str


@trait  # mypyc: one of the readers _Builder combines (a compiled class has one base class otherwise)
class ObservationReader(ReaderBase):
    def add_observation(self, resource: dict[str, Any]) -> None:
        if _str(resource.get("status")) in {"entered-in-error", "cancelled"}:
            return
        if self.horizon is not None:
            when = exact_date(resource.get("effectiveDateTime"))
            if when is not None and when < self.horizon:
                return
        match = self.t.match(resource.get("code"), text_fallback=False)
        answer = self.t.match(resource.get("valueCodeableConcept"), text_fallback=False)
        if not (match or answer):
            return
        vq = resource.get("valueQuantity")
        value = vq.get("value") if isinstance(vq, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            value = None
        effective = parse_date(
            resource.get("effectiveDateTime")
            or (resource.get("effectivePeriod") or {}).get("start")
            or resource.get("issued")
        )
        ref = f"Observation/{resource.get('id')}"
        self.resources[ref] = resource
        self.observations.append(
            ObservationFact(
                ref,
                answer.display if answer else match.display,
                match.valuesets,
                value,
                _str(vq.get("code") or vq.get("unit")) if isinstance(vq, dict) else "",
                effective,
                _asserted(resource, match, answer),
                parse_date(resource.get("valueDateTime")),
            )
        )

    def read_observations(self) -> tuple[ObservationFact, ...]:
        """Observation facts, read once on first use."""
        with self._observation_lock:
            for resource in self.raw_observations:
                try:
                    self.add_observation(resource)
                except _ENTRY_ERRORS as exc:
                    self._skip(resource, "Observation", exc)
            self.raw_observations = []
            return tuple(self.observations)


# Observation statuses whose finding counts (registered: no result yet); HL7 v3 ObservationInterpretation codes that
# deny a finding (normal, negative, not detected).
_FINDING_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
_DENYING_INTERPRETATIONS = frozenset({"N", "NEG", "ND"})


def _asserted(resource: dict[str, Any], code: Match, answer: Match) -> frozenset[str]:
    """Value sets of the finding an Observation says was present: its answer when that is a coded finding
    ("Neurological finding: numbness of saddle area"), else its code when it has no value at all or ``valueBoolean``
    true. Any other value ("no", "absent", a coded yes/no, 0, false), ``dataAbsentReason``, a denying interpretation or
    a status without a result leaves presence unread: empty, so no rule counts the finding."""
    if _str(resource.get("status")) not in _FINDING_STATUSES or "dataAbsentReason" in resource:
        return frozenset()
    for concept in _as_list(resource.get("interpretation")):
        if _codes_of(concept) & _DENYING_INTERPRETATIONS:
            return frozenset()
    if answer:
        return answer.valuesets
    values = [k for k in resource if k.startswith("value")]
    if not values or (values == ["valueBoolean"] and resource["valueBoolean"] is True):
        return code.valuesets
    return frozenset()
