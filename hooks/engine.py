"""The clinical half of a hook call: the service's rules over the patient's facts → findings (one problem, one card)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_service.caches import SnapshotCache
from cds_service.registry import RuleInput
from cds_service.snapshot import SnapshotReader
from cds_service.terminology import Terminology

from . import catalogue
from .catalogue import ALL_HOOKS, RuleSpec
from .context import RuleContext
from .findings import Finding
from .thresholds import Thresholds

VALUESETS_DIR = Path(__file__).resolve().parent / "valuesets"


@dataclass(frozen=True)
class Knowledge:
    terminology: Terminology
    thresholds: Thresholds
    max_entries: int = 10_000
    snapshots: SnapshotCache[Any] | None = None  # facts of recently seen prefetches (None: read every call)

    @classmethod
    def load(
        cls,
        threshold_overrides: dict[str, Any] | None = None,
        max_entries: int = 10_000,
        snapshots: SnapshotCache[Any] | None = None,
    ) -> Knowledge:
        return cls(
            Terminology.load_dir(VALUESETS_DIR), Thresholds.from_config(threshold_overrides), max_entries, snapshots
        )

    def reader(self) -> SnapshotReader:
        """How these rules read a chart: these value sets, as far back as the longest declared look-back."""
        return SnapshotReader(
            self.terminology, catalogue.history_days(self.thresholds), self.max_entries, self.snapshots
        )


class Engine:
    """The rules of each hook in the order the catalogue derives, and what each silences (one problem, one card)."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self.rules: dict[str, list[RuleSpec]] = {hook: catalogue.rules_for(hook) for hook in ALL_HOOKS}
        self.supersedes = catalogue.supersedes()

    def evaluate(self, inp: RuleInput) -> list[Finding]:
        ctx = RuleContext(inp.snapshot, inp.hook, self.knowledge.thresholds, inp.focus)
        findings: list[Finding] = []
        silenced: set[str] = set()
        for spec in self.rules[inp.hook]:  # a superseding rule comes first, so the rules it silences are not even run
            if spec.topic in silenced:
                continue
            found = spec.fn(ctx)
            catalogue.offered(spec, found)
            for f in found:
                findings.append(f)
                silenced.update(self.supersedes.get(f.topic, ()))
        return [f for f in findings if f.topic not in silenced]
