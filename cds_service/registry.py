"""Services declared once: the registry that routes calls also writes the discovery document.

A service is its protocol facts (id, hook, title, description, prefetch templates, usage requirements), how it reads a
chart (``SnapshotReader``: its value sets and look-back) and its ``evaluate``: the patient's facts in, findings out —
the one place the product's clinical content plugs into the protocol layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .cards import DrivenFindingLike
from .prefetch import PrefetchTemplate
from .snapshot import PatientSnapshot, SnapshotReader

HOOKS = ("patient-view", "order-select", "order-sign")


@dataclass(frozen=True)
class RuleInput:
    """What a service's evaluate() receives: the patient's facts, the hook, and the draft orders the advice is about."""

    snapshot: PatientSnapshot
    hook: str
    focus: frozenset[str]  # selections on order-select; every draft on order-sign; none on patient-view


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    prefetch: tuple[PrefetchTemplate, ...]
    reader: SnapshotReader
    evaluate: Callable[[RuleInput], Sequence[DrivenFindingLike]]
    usage_requirements: str = ""

    def discovery(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"hook": self.hook, "id": self.id, "title": self.title, "description": self.description}
        if self.prefetch:
            doc["prefetch"] = {t.key: t.query for t in self.prefetch}
        if self.usage_requirements:
            doc["usageRequirements"] = self.usage_requirements
        return doc


class Registry:
    def __init__(self, services: list[ServiceDefinition]) -> None:
        ids = [s.id for s in services]
        if len(ids) != len(set(ids)):
            raise ValueError("duplicate service id")
        self._services = {s.id: s for s in services}

    def get(self, service_id: str) -> ServiceDefinition | None:
        return self._services.get(service_id)

    def discovery(self) -> dict[str, Any]:
        return {"services": [s.discovery() for s in self._services.values()]}

    def __iter__(self) -> Iterator[ServiceDefinition]:
        return iter(self._services.values())
