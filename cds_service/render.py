"""Rendering a service's findings as cards: findings resting on a record whose read fields are not in a shape FHIR
allows are dropped (``snapshot.shapes.readable``; never for a draft order: what is being ordered now is evaluated
whatever else it lacks), the rest sorted by severity and rendered from their templates."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .cards import CardRenderer, DrivenFindingLike
from .snapshot import PatientSnapshot
from .snapshot.shapes import readable

log = logging.getLogger("backpain_cds.engine")
SEVERITY = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Rendered:
    cards: list[dict[str, Any]]
    topics: list[str]
    covers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # card uuid → other topics whose facts it carries
    invalid_driving: int = 0  # records behind dropped findings


def render(findings: Sequence[DrivenFindingLike], snapshot: PatientSnapshot, renderer: CardRenderer) -> Rendered:
    kept: list[DrivenFindingLike] = []
    invalid: set[str] = set()
    drafts = frozenset(snapshot.draft_refs)
    checked: dict[str, bool] = {}  # ref → readable: findings share their records, each is checked once

    def unreadable(ref: str) -> bool:
        if ref not in snapshot.resources or ref in drafts:
            return False
        if ref not in checked:
            checked[ref] = readable(snapshot.resources[ref])
        return not checked[ref]

    for f in findings:
        bad = [ref for ref in f.sources if unreadable(ref)]
        if bad:
            invalid.update(bad)
            log.info("finding dropped: driving resource invalid", extra={"topic": f.topic, "resources": sorted(bad)})
            continue
        kept.append(f)
    kept.sort(key=lambda f: SEVERITY[f.indicator])
    cards = [renderer.render(f) for f in kept]
    covers = {card["uuid"]: f.covers for f, card in zip(kept, cards, strict=True) if f.covers}
    return Rendered(cards, [f.topic for f in kept], covers, len(invalid))
