"""What a rule returns: a Finding (topic, indicator, template values, suggestions, the records behind it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from cds_service.snapshot import ObservationFact, PatientSnapshot

from .thresholds import Thresholds

if TYPE_CHECKING:
    from .clinical import Episode, Pregnancy, RedFlag


@dataclass(frozen=True)
class Suggestion:
    key: str  # label key in the card template
    actions: tuple[dict[str, Any] | None, ...]
    recommended: bool = False
    label_values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    topic: str
    indicator: str  # info | warning | critical
    values: dict[str, Any]  # fields for the card template
    sources: tuple[str, ...]  # "Type/id" of the records that drive it
    suggestions: tuple[Suggestion, ...] = ()
    variant: str = ""  # template variant (e.g. "open-ended")
    covers: tuple[str, ...] = ()  # other topics whose facts this card carries (one problem, one card): feedback counts there


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
        from .clinical import episode
        return episode(self.snapshot, self.thresholds)

    @cached_property
    def red_flags(self) -> list[RedFlag]:
        from .clinical import red_flags
        return red_flags(self.snapshot, self.thresholds, self.episode)

    @cached_property
    def egfr(self) -> ObservationFact | None:
        """The latest eGFR in the lab look-back (four rules ask)."""
        from .clinical import latest_egfr
        return latest_egfr(self.snapshot, self.thresholds)

    @cached_property
    def pregnancy(self) -> Pregnancy | None:
        """A current pregnancy, when the record states one (NSAID contraindications read it)."""
        from .clinical import pregnancy
        return pregnancy(self.snapshot, self.thresholds)


RuleFn = TypeVar("RuleFn", bound=Callable[[RuleContext], list[Finding]])


def rule(topic: str) -> Callable[[RuleFn], RuleFn]:
    """Name the card topic a rule produces (the engine skips a rule whose topic is already superseded)."""
    def mark(fn: RuleFn) -> RuleFn:
        setattr(fn, "topic", topic)  # noqa: B010 - a function attribute the engine reads with getattr
        return fn
    return mark
