"""What a rule returns: a Finding (topic, indicator, template values, suggestions, the records behind it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cds_service.snapshot import PatientSnapshot

from .thresholds import Thresholds


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


def rule(topic: str):  # type: ignore[no-untyped-def]
    """Name the card topic a rule produces (the engine skips a rule whose topic is already superseded)."""
    def mark(fn):  # type: ignore[no-untyped-def]
        fn.topic = topic
        return fn
    return mark
