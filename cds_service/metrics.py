"""Prometheus metrics (``prometheus_client``): what the service counts, and how a scrape gathers it.

Every name starts ``backpain_cds_``; every label takes a value from a small fixed set (service ids the registry knows,
card topics the templates define, reason codes from the enumerations below), never text a request chose.

Under gunicorn (``backpain-cds serve``) the workers are separate processes: ``enable_multiprocess`` points
``PROMETHEUS_MULTIPROC_DIR`` at a directory before the app is built, each worker writes its values there, and a scrape
sums them (``MultiProcessCollector``); the master's ``child_exit`` hook marks a dead worker's files. Without that
variable (tests, one process) each app counts in its own registry.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "enable_multiprocess", "multiprocess_registry"]
PREFIX = "backpain_cds_"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNKNOWN = "unknown"
# seconds: a hook call with a complete prefetch takes milliseconds; one that fetches is bounded by the 3 s deadline
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def enable_multiprocess(directory: str) -> None:
    """Count in ``directory`` (shared by every process forked from here on). prometheus_client chooses how values are
    stored when it is imported, so the choice is made again now that the variable is set."""
    os.environ[MULTIPROC_ENV] = directory
    values.ValueClass = values.get_value_class()


def multiprocess_registry() -> CollectorRegistry:
    """A registry that reads every process's values from the multiprocess directory (built per scrape)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def mark_process_dead(pid: int) -> None:
    """gunicorn's ``child_exit``: a dead worker's live values are dropped (its counters stay, summed)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


class Metrics:
    """The service's metrics, registered in a registry of this app's own (one app, one set of series)."""

    def __init__(self, services: Iterable[str] = (), topics: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry()
        self._services = frozenset(services)
        self._topics = frozenset(topics)
        r = self.registry
        self.requests = Counter(
            PREFIX + "requests",
            "HTTP requests to the CDS endpoints by endpoint (discovery, hook, feedback, feedback_summary), service and "
            "status",
            ["endpoint", "service", "status"],
            registry=r,
        )
        self.latency = Histogram(
            PREFIX + "request_duration_seconds",
            "Time to answer a CDS endpoint request, by endpoint and service",
            ["endpoint", "service"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cards = Counter(
            PREFIX + "cards",
            "Cards returned by hook calls, by service, topic and indicator",
            ["service", "topic", "indicator"],
            registry=r,
        )
        self.prefetch_fetches = Counter(
            PREFIX + "prefetch_fetches",
            "Prefetch keys the service fetched itself (missing, OperationOutcome or paged), by key and outcome "
            "(fetched, failed)",
            ["key", "outcome"],
            registry=r,
        )
        self.prefetch_failures = Counter(
            PREFIX + "prefetch_failures", "Failed prefetch fetches by reason", ["reason"], registry=r
        )
        self.prefetch_412 = Counter(
            PREFIX + "prefetch_unavailable_responses",
            "412 responses: a required prefetch key could not be obtained, by service and key",
            ["service", "key"],
            registry=r,
        )
        self.auth_failures = Counter(
            PREFIX + "auth_failures", "Refused client authentications by reason code", ["reason"], registry=r
        )
        self.feedback = Counter(
            PREFIX + "feedback",
            "Feedback records stored, by service, card topic and outcome (accepted, overridden)",
            ["service", "topic", "outcome"],
            registry=r,
        )

    # -- label values from fixed sets ------------------------------------------------------------------------
    def service(self, service_id: str | None) -> str:
        return service_id if service_id in self._services else UNKNOWN

    def topic(self, topic: Any) -> str:
        return topic if isinstance(topic, str) and topic in self._topics else UNKNOWN

    # -- what the routes and the pipeline record -------------------------------------------------------------
    def request(self, endpoint: str, service_id: str | None, status: int, seconds: float) -> None:
        service = self.service(service_id)
        self.requests.labels(endpoint, service, str(status)).inc()
        self.latency.labels(endpoint, service).observe(seconds)

    def issued(self, service_id: str, cards: Iterable[dict[str, Any]]) -> None:
        service = self.service(service_id)
        for card in cards:
            source = card.get("source") or {}
            topic = self.topic((source.get("topic") or {}).get("code"))
            indicator = card.get("indicator")
            self.cards.labels(
                service, topic, indicator if indicator in ("info", "warning", "critical") else UNKNOWN
            ).inc()

    def fetched(self, key: str, reason: str | None) -> None:
        """One prefetch key the service fetched itself: ``reason`` None when it succeeded, else a failure code."""
        self.prefetch_fetches.labels(key, "fetched" if reason is None else "failed").inc()
        if reason is not None:
            self.prefetch_failures.labels(reason).inc()

    def unavailable(self, service_id: str, key: str) -> None:
        self.prefetch_412.labels(self.service(service_id), key).inc()

    def auth_failure(self, code: str) -> None:
        self.auth_failures.labels(code).inc()

    def feedback_outcomes(self, service_id: str, outcomes: Iterable[tuple[Any, Any]]) -> None:
        service = self.service(service_id)
        for topic, outcome in outcomes:
            self.feedback.labels(
                service, self.topic(topic), outcome if outcome in ("accepted", "overridden") else UNKNOWN
            ).inc()

    def exposition(self) -> bytes:
        """The text a scrape returns: every worker's values under gunicorn, else this app's."""
        registry = multiprocess_registry() if multiprocess_dir() else self.registry
        return generate_latest(registry)
