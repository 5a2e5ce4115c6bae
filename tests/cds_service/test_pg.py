"""Replicas starting together on a fresh PostgreSQL database create its tables once (no catalogue race)."""

from __future__ import annotations

import threading

import pytest

from cds_service.feedback import PostgresFeedbackStore
from cds_service.replay_cache import PostgresReplayCache

pytestmark = pytest.mark.postgres


def test_stores_created_at_once_by_many_processes_create_the_schema_once(own_database):
    """Eight start-ups at the same moment: without the advisory lock, CREATE TABLE IF NOT EXISTS racing on a fresh
    database fails with UniqueViolation on pg_type (seen when two replicas started together)."""
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def start(kind: type) -> None:
        barrier.wait()
        try:
            kind(own_database)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(k,)) for k in [PostgresFeedbackStore, PostgresReplayCache] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert PostgresFeedbackStore(own_database).summary() == []  # the tables exist, empty
    cache = PostgresReplayCache(own_database)
    assert cache.first_use("https://ehr.example", "j1", 2e9, 1e9) is True
    assert cache.first_use("https://ehr.example", "j1", 2e9, 1e9) is False
