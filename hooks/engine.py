"""The clinical half of a hook call: the service's rules over the patient's facts → findings (one problem, one card)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_service.caches import SnapshotCache
from cds_service.registry import RuleInput
from cds_service.snapshot import SnapshotReader
from cds_service.terminology import Terminology

from .findings import Finding, RuleContext
from .thresholds import Thresholds

Rule = Callable[[RuleContext], list[Finding]]
VALUESETS_DIR = Path(__file__).resolve().parent / "valuesets"

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
    thresholds: Thresholds
    max_entries: int = 10_000
    snapshots: SnapshotCache[Any] | None = None  # facts of recently seen prefetches (None: read every call)

    @classmethod
    def load(cls, threshold_overrides: dict[str, Any] | None = None, max_entries: int = 10_000,
             snapshots: SnapshotCache[Any] | None = None) -> Knowledge:
        return cls(Terminology.load_dir(VALUESETS_DIR), Thresholds.from_config(threshold_overrides), max_entries, snapshots)

    def reader(self) -> SnapshotReader:
        """How these rules read a chart: these value sets, as far back as the longest look-back."""
        return SnapshotReader(self.terminology, self.thresholds.history_days(), self.max_entries, self.snapshots)


def evaluate(inp: RuleInput, rules: Sequence[Rule], knowledge: Knowledge) -> list[Finding]:
    ctx = RuleContext(inp.snapshot, inp.hook, knowledge.thresholds, inp.focus)
    findings: list[Finding] = []
    silenced: set[str] = set()
    for rule in rules:  # superseding rules come first in each service's list, so silenced ones are not even run
        if getattr(rule, "topic", None) in silenced:
            continue
        for f in rule(ctx):
            findings.append(f)
            silenced.update(SUPERSEDES.get(f.topic, ()))
    return [f for f in findings if f.topic not in silenced]
