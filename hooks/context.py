"""What a rule reads: ``RuleContext`` — the patient's facts, the hook, the thresholds, the draft orders in focus, and
the clinical readings most rules need (episode, red flags, latest eGFR, pregnancy), computed once per call."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cached_property

from cds_service.snapshot import MedicationCourse, ObservationFact, PatientSnapshot

from .clinical import Episode, RedFlag, episode, is_current, latest_egfr, red_flags
from .pregnancy import Pregnancy, pregnancy
from .thresholds import Thresholds


@dataclass(frozen=True)
class RuleContext:
    snapshot: PatientSnapshot
    hook: str
    thresholds: Thresholds
    focus: frozenset[str]  # draft orders the advice is about (selections on order-select; all drafts on order-sign)

    @property
    def today(self) -> date:
        return self.snapshot.today

    @property
    def ordering(self) -> bool:
        return self.hook in ("order-select", "order-sign")

    # Read by most rules: computed once per call (cached_property writes the instance dict, frozen or not).
    @cached_property
    def episode(self) -> Episode | None:
        return episode(self.snapshot, self.thresholds)

    @cached_property
    def red_flags(self) -> list[RedFlag]:
        return red_flags(self.snapshot, self.thresholds, self.episode)

    @cached_property
    def egfr(self) -> ObservationFact | None:
        """The latest eGFR in the lab look-back (four rules ask)."""
        return latest_egfr(self.snapshot, self.thresholds)

    @cached_property
    def pregnancy(self) -> Pregnancy | None:
        """A current pregnancy, when the record states one (NSAID contraindications read it)."""
        return pregnancy(self.snapshot, self.thresholds)

    def focused_drafts(self, valueset: str) -> list[MedicationCourse]:
        """Draft orders in focus (selections on order-select, every draft on order-sign) of a drug class, by a systemic
        route."""
        return [
            c
            for c in self.snapshot.draft_courses
            if c.ref in self.focus and valueset in c.classes and c.route != "local"
        ]

    def current_courses(self, valueset: str, exclude: Iterable[str] = ()) -> list[MedicationCourse]:
        """Current courses of a drug class (drafts count on order-sign, and on order-select when selected), systemic
        only."""
        skip = set(exclude)
        return [
            c
            for c in self.snapshot.courses
            if valueset in c.classes
            and c.ref not in skip
            and c.route != "local"
            and is_current(c, self.today)
            and (not c.in_draft_orders or c.ref in self.focus)
        ]
