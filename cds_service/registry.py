"""Services declared once: the registry that routes calls also writes the discovery document."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .prefetch import PrefetchTemplate

HOOKS = ("patient-view", "order-select", "order-sign")


@dataclass(frozen=True)
class HookCall:
    """What a service's evaluate() receives: the validated request with its prefetch resolved."""

    service_id: str
    hook: str
    context: dict[str, Any]
    prefetch: dict[str, Any]
    unavailable: frozenset[str]
    today: date
    prefetch_key: bytes | None = None  # bytes that determine the prefetch exactly (prefetch.HookBody.prefetch_key), if known


@dataclass(frozen=True)
class CallResult:
    cards: list[dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)  # counts for the request log (never content)
    after_response: Callable[[], None] | None = None  # bookkeeping the app runs once the response has been sent
    covers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # card uuid → other topics whose facts it carries


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    prefetch: tuple[PrefetchTemplate, ...]
    evaluate: Callable[[HookCall], CallResult]
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
