"""The facts a snapshot holds: one immutable record per condition, observation, medication course, order and allergy,
each with the value sets it belongs to, and ``PatientSnapshot``, the frozen whole a service's rules read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any, NamedTuple

from ..durations import FuzzyDate


# Facts are NamedTuples: immutable like the snapshot itself, and several times cheaper to build than frozen
# dataclasses (a typical prefetch yields hundreds per call).
class ConditionFact(NamedTuple):
    ref: str
    display: str
    valuesets: frozenset[str]
    active: bool
    onset: FuzzyDate | None
    recorded: FuzzyDate | None
    codes: tuple[tuple[str, str], ...] = ()  # (system, code) of its codings, as recorded

    @property
    def start(self) -> FuzzyDate | None:
        return self.onset or self.recorded


class ObservationFact(NamedTuple):
    ref: str
    display: str
    valuesets: frozenset[str]  # of its code
    value: float | None
    unit: str
    effective: FuzzyDate | None
    asserted: frozenset[str] = frozenset()  # value sets of a finding the record says was present (``_asserted``)
    value_date: FuzzyDate | None = None  # valueDateTime / valueDate (an estimated delivery date, …)


class MedicationCourse(NamedTuple):
    ref: str  # "MedicationRequest/123"
    display: str
    ingredients: frozenset[str]
    classes: frozenset[str]  # value-set ids (drug classes)
    matched_by: str  # "code" | "text"
    route: str | None  # oral | iv | im | sc | parenteral | nasal | rectal | transdermal | local | None
    route_label: str
    start: date | None
    end: date | None  # planned last day, inclusive
    end_basis: str  # how the end was computed ("10-day supply", "boundsPeriod.end", …)
    status: str
    in_draft_orders: bool
    is_administration: bool
    single_dose_mg: float | None
    daily_dose_mg: float | None
    reason_valuesets: frozenset[str] = frozenset()
    reason_refs: tuple[str, ...] = ()
    stop_reason: str = ""  # statusReason text of a stopped course ("not effective", …)
    end_known: bool = True  # False: a stopped course whose stop date was not recorded (end = earlier of plan and today)
    request: str = ""  # the order an administration carried out (``MedicationAdministration.request``), "Type/id"
    units_per_day: float | None = None  # a draft's dispensed unit (tablets, mL…) a day of doses uses, when it converts
    unit_mg: float | None = None  # what one tablet/capsule of the product holds, when known (None for solutions)

    @property
    def route_text(self) -> str:
        return self.route_label or "route not recorded"

    @property
    def per_day(self) -> float | None:
        """Administrations per day, when the dose could be read."""
        return self.daily_dose_mg / self.single_dose_mg if self.daily_dose_mg and self.single_dose_mg else None


class OrderFact(NamedTuple):
    ref: str
    display: str
    valuesets: frozenset[str]
    status: str
    when: FuzzyDate | None
    in_draft_orders: bool
    codes: tuple[tuple[str, str], ...] = ()
    reason_valuesets: frozenset[str] = frozenset()


class AllergyFact(NamedTuple):
    ref: str
    display: str
    valuesets: frozenset[str]
    ingredients: frozenset[str]


@dataclass(frozen=True)
class PatientSnapshot:
    patient_id: str
    today: date
    birth_date: date | None
    sex: str | None
    conditions: tuple[ConditionFact, ...]
    courses: tuple[MedicationCourse, ...]
    orders: tuple[OrderFact, ...]
    allergies: tuple[AllergyFact, ...]
    selections: tuple[str, ...]
    resources: Mapping[str, dict[str, Any]]  # raw draft orders and every resource a fact came from
    skip_counts: tuple[Mapping[str, int], ...]  # see ``skipped``
    unavailable: frozenset[str]  # optional prefetch keys that could not be obtained
    unsupported: Mapping[str, int] = field(default_factory=dict)  # resource types seen but not read
    read_observations: Callable[[], tuple[ObservationFact, ...]] = tuple  # see ``observations``
    unread_drafts: tuple[str, ...] = ()  # draft orders that name no drug or service at all ("Type/id"), logged
    from_cache: bool = False  # the prefetch's facts came from the SnapshotCache
    after_response: Callable[[], None] | None = None  # stores this reading in the SnapshotCache (run after responding)

    @cached_property
    def draft_courses(self) -> tuple[MedicationCourse, ...]:
        """Courses from this call's draft orders (rules ask for them many times per call)."""
        return tuple(c for c in self.courses if c.in_draft_orders)

    @cached_property
    def draft_refs(self) -> tuple[str, ...]:
        """References of every draft order of this call (medications first, then other orders)."""
        return tuple(c.ref for c in self.draft_courses) + tuple(o.ref for o in self.orders if o.in_draft_orders)

    @property
    def skipped(self) -> dict[str, int]:
        """Invalid entries by resourceType (live: observations are read, and counted, on first use)."""
        total: Counter[str] = Counter()
        for counts in self.skip_counts:
            total.update(counts)
        return dict(total)

    @cached_property
    def observations(self) -> tuple[ObservationFact, ...]:
        """Read on first use: only some rules look at observations (labs; red-flag findings when the back-pain
        episode is dated), and a chart often holds more observations than anything else."""
        return self.read_observations()

    @property
    def age(self) -> int | None:
        if self.birth_date is None:
            return None
        b, t = self.birth_date, self.today
        return t.year - b.year - ((t.month, t.day) < (b.month, b.day))

    @property
    def resource_count(self) -> int:
        return len(self.resources)
