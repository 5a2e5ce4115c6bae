"""What a rule returns: a Finding (topic, indicator, template values, suggestions, the records behind it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    covers: tuple[
        str, ...
    ] = ()  # other topics whose facts this card carries (one problem, one card): feedback counts there
