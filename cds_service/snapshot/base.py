"""What every resource reader shares: the reading's state, the value-set reasons of an order, and skipping an entry."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date
from typing import Any

from ..terminology import Terminology
from .facts import AllergyFact, ConditionFact, MedicationCourse, ObservationFact, OrderFact
from .fields import _as_list, _str, log


class ReaderBase:
    def __init__(self, terminology: Terminology, patient_id: str, today: date, horizon: date | None = None) -> None:
        self.t = terminology
        self.patient_id = patient_id
        self.own_reference = f"Patient/{patient_id}"
        self.today = today
        self.horizon = horizon  # finished medication courses and observations before this day are not read
        self.conditions: list[ConditionFact] = []
        self.observations: list[ObservationFact] = []
        self.raw_observations: list[dict[str, Any]] = []
        self.courses: list[MedicationCourse] = []
        self.orders: list[OrderFact] = []
        self.allergies: list[AllergyFact] = []
        self.resources: dict[str, dict[str, Any]] = {}
        self.medications: dict[str, dict[str, Any]] = {}
        self.skipped: Counter[str] = Counter()
        self.unsupported: Counter[str] = Counter()
        self.patient: dict[str, Any] | None = None
        self.unread_drafts: list[str] = []  # draft orders naming no drug or service at all ("Type/id")
        self.seen: set[tuple[str, str]] = set()  # (resourceType, id) already read
        self._observation_lock = threading.Lock()

    def _reasons(self, resource: dict[str, Any]) -> frozenset[str]:
        """The value sets of an order's ``reasonCode`` (codes only: a reason's text is not classified)."""
        codes = resource.get("reasonCode")
        if not codes:
            return frozenset()
        reasons: set[str] = set()
        for rc in _as_list(codes):
            reasons |= self.t.match(rc, text_fallback=False).valuesets
        return frozenset(reasons)

    def _skip(self, resource: dict[str, Any], rtype: str, exc: Exception) -> None:
        """An entry that breaks its reader is skipped and counted by type (never the whole call)."""
        self.skipped[rtype] += 1
        log.info(
            "skipped invalid entry",
            extra={"resource": f"{rtype}/{_str(resource.get('id'))}", "error": type(exc).__name__},
        )
