"""The clinical half of a hook call: snapshot → rules → findings → cards."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_service.cards import CardRenderer
from cds_service.fhir_models import is_valid
from cds_service.registry import CallResult, HookCall
from cds_service.snapshot import SnapshotCache, build_snapshot
from cds_service.terminology import Terminology

from .findings import Finding, RuleContext
from .thresholds import Thresholds

log = logging.getLogger("backpain_cds.engine")

Rule = Callable[[RuleContext], list[Finding]]
VALUESETS_DIR = Path(__file__).resolve().parent / "valuesets"
SEVERITY = {"critical": 0, "warning": 1, "info": 2}

# One problem, one card: a topic on the left silences the topics on the right in the same response.
SUPERSEDES = {
    # its detail carries the duration facts; no card may offer to keep, shorten or swap a contraindicated drug
    "ketorolac-contraindication": ("ketorolac-duration", "ketorolac-oral-start", "ketorolac-dose"),
    "ketorolac-duration": ("ketorolac-oral-start",),  # its detail states the oral-start fact
    "imaging-red-flags": ("referral-spine", "imaging-repeat"),  # the red-flag card carries the referral
    "referral-spine": ("imaging-persistent-radicular",),  # it carries the MRI advice: one card, one referral
}


@dataclass(frozen=True)
class Knowledge:
    terminology: Terminology
    renderer: CardRenderer
    thresholds: Thresholds
    max_entries: int = 10_000
    snapshots: SnapshotCache | None = None  # facts of recently seen prefetches (None: read every call)

    @classmethod
    def load(cls, threshold_overrides: dict[str, Any] | None = None, renderer: CardRenderer | None = None,
             max_entries: int = 10_000, snapshots: SnapshotCache | None = None) -> Knowledge:
        return cls(Terminology.load_dir(VALUESETS_DIR), renderer or CardRenderer(),
                   Thresholds.from_config(threshold_overrides), max_entries, snapshots)


def focus_of(call: HookCall, draft_refs: Sequence[str]) -> frozenset[str]:
    if call.hook == "order-select":
        selections = call.context.get("selections")
        return frozenset(s for s in selections if isinstance(s, str)) if isinstance(selections, list) else frozenset()
    if call.hook == "order-sign":
        return frozenset(draft_refs)
    return frozenset()


def evaluate(call: HookCall, rules: Sequence[Rule], knowledge: Knowledge) -> CallResult:
    snapshot = build_snapshot(context=call.context, prefetch=call.prefetch, terminology=knowledge.terminology,
                              today=call.today, unavailable=call.unavailable, max_entries=knowledge.max_entries,
                              history_days=knowledge.thresholds.history_days(), cache=knowledge.snapshots,
                              prefetch_key=call.prefetch_key)
    ctx = RuleContext(snapshot, call.hook, knowledge.thresholds, focus_of(call, snapshot.draft_refs))
    findings: list[Finding] = []
    silenced: set[str] = set()
    for rule in rules:  # superseding rules come first in each service's list, so silenced ones are not even run
        if getattr(rule, "topic", None) in silenced:
            continue
        for f in rule(ctx):
            findings.append(f)
            silenced.update(SUPERSEDES.get(f.topic, ()))
    kept: list[Finding] = []
    invalid: set[str] = set()
    drafts = frozenset(snapshot.draft_refs)
    for f in findings:
        if f.topic in silenced:
            continue
        # A record behind the card that is not valid FHIR drops it — never a draft order: what the clinician is ordering
        # now is evaluated whatever else it lacks (drafts are often incomplete).
        bad = [ref for ref in f.sources if ref in snapshot.resources and ref not in drafts
               and not is_valid(snapshot.resources[ref])]
        if bad:
            invalid.update(bad)
            log.info("finding dropped: driving resource invalid", extra={"topic": f.topic, "resources": sorted(bad)})
            continue
        kept.append(f)
    kept.sort(key=lambda f: SEVERITY[f.indicator])
    cards = [knowledge.renderer.render(f) for f in kept]
    stats = {"resources": snapshot.resource_count, "skipped": sum(snapshot.skipped.values()),
             "prefetch_cached": snapshot.from_cache,
             "unread_types": sorted(snapshot.unsupported),
             "invalid_driving": len(invalid), "unread_drafts": len(snapshot.unread_drafts), "cards": len(cards),
             "topics": [f.topic for f in kept]}
    covers = {card["uuid"]: f.covers for f, card in zip(kept, cards, strict=True) if f.covers}
    return CallResult(cards, stats, snapshot.after_response, covers)
