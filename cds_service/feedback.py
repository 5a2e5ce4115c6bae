"""Append-only feedback store: SQLite (WAL, synchronous=FULL) by default, PostgreSQL when configured.

A feedback record is committed before the 200 is sent, so an acknowledged record survives the process being
killed right after. Issued cards (uuid → service, topic, indicator) are recorded too, so the summary can count
outcomes per card topic; that write happens after the response is built, off the clinical path, and its loss
only makes a topic show as "unknown".

Storage is bounded: :meth:`FeedbackStore.prune` deletes feedback received more than ``feedback_retention_days`` ago
and issued-card records older than ``issued_cards_retention_days`` that no remaining feedback refers to (they are
only the join key of the summary), in small batches; SQLite's write-ahead log is then checkpointed and truncated.
Text PostgreSQL cannot store (a NUL character) is refused the same way by both stores: the feedback schema refuses it
with a 400 naming the field, and :func:`_rows` raises ValueError should anything else reach the store with one.
"""

from __future__ import annotations

import abc
import json
import math
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config import sqlite_path
from .pg import create_schema

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS feedback (
        id {pk},
        service_id TEXT NOT NULL,
        card_uuid TEXT NOT NULL,
        outcome TEXT NOT NULL,
        accepted_suggestions TEXT NOT NULL,
        override_system TEXT, override_code TEXT, override_display TEXT,
        user_comment TEXT,
        outcome_timestamp TEXT NOT NULL,
        received_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS feedback_card ON feedback (card_uuid)",
    "CREATE INDEX IF NOT EXISTS feedback_received ON feedback (received_at)",
    """CREATE TABLE IF NOT EXISTS issued_cards (
        card_uuid TEXT PRIMARY KEY,
        service_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        indicator TEXT NOT NULL,
        issued_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS issued_cards_issued ON issued_cards (issued_at)",
    # A card that carries another topic's facts (one problem, one card) covers that topic: its feedback counts there
    # too.
    """CREATE TABLE IF NOT EXISTS card_covers (
        card_uuid TEXT NOT NULL,
        topic TEXT NOT NULL,
        PRIMARY KEY (card_uuid, topic))""",
]
PRUNE_BATCH = 5000  # rows per delete transaction: other writers wait for one batch, never for the whole prune


def _stamp(moment: datetime) -> str:
    """The stored form of a moment: UTC ISO 8601 to the millisecond — one fixed width, so text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _storable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    if any(isinstance(v, str) and "\x00" in v for v in row):
        raise ValueError("text with a NUL character cannot be stored (PostgreSQL refuses it; so does SQLite here)")
    return row


def _rows(service_id: str, items: Iterable[dict[str, Any]], received: str) -> list[tuple[Any, ...]]:
    rows = []
    for item in items:
        override = item.get("overrideReason") or {}
        reason = override.get("reason") or {}
        accepted = [s["id"] for s in item.get("acceptedSuggestions") or []]
        _storable(tuple(accepted))
        rows.append(
            _storable(
                (
                    service_id,
                    item["card"],
                    item["outcome"],
                    json.dumps(accepted),
                    reason.get("system"),
                    reason.get("code"),
                    reason.get("display"),
                    override.get("userComment"),
                    item["outcomeTimestamp"],
                    received,
                )
            )
        )
    return rows


class FeedbackStore(abc.ABC):
    """Interface: ``append`` (durable on return), ``record_cards``, ``summary``, ``count``, ``prune``."""

    placeholder = "?"
    clock: Callable[[], datetime] = staticmethod(_utc_now)  # injectable: tests date records and prune as of any day

    def append(self, service_id: str, items: list[dict[str, Any]]) -> int:
        rows = _rows(service_id, items, _stamp(self.clock()))
        ph = ",".join([self.placeholder] * 10)
        self._execute_many(
            "INSERT INTO feedback (service_id, card_uuid, outcome, accepted_suggestions, override_system, "
            "override_code, "
            f"override_display, user_comment, outcome_timestamp, received_at) VALUES ({ph})",
            rows,
        )
        return len(rows)

    def record_cards(
        self, batch: list[tuple[str, list[dict[str, Any]]]], covers: dict[str, tuple[str, ...]] | None = None
    ) -> None:
        """Issued cards of several hook calls — (service id, cards) each — in one transaction; ``covers``: card uuid →
        the other topics whose facts that card carries (their feedback summary counts it too, marked ``via``)."""
        issued = _stamp(self.clock())
        rows = [
            (c["uuid"], service_id, c["source"].get("topic", {}).get("code", "unknown"), c["indicator"], issued)
            for service_id, cards in batch
            for c in cards
        ]
        if rows:
            ph = ",".join([self.placeholder] * 5)
            self._execute_many(
                f"INSERT INTO issued_cards (card_uuid, service_id, topic, indicator, issued_at) VALUES ({ph}) "
                f"ON CONFLICT (card_uuid) DO NOTHING",
                rows,
            )
        covered = [(uuid, topic) for uuid, topics in (covers or {}).items() for topic in topics]
        if covered:
            ph = ",".join([self.placeholder] * 2)
            self._execute_many(
                f"INSERT INTO card_covers (card_uuid, topic) VALUES ({ph}) ON CONFLICT DO NOTHING", covered
            )

    def summary(self, service_id: str | None = None) -> list[dict[str, Any]]:
        where = f"WHERE f.service_id = {self.placeholder}" if service_id else ""
        sql = (
            f"SELECT COALESCE(c.topic, 'unknown'), f.outcome, COALESCE(f.override_code, ''), COUNT(*) "
            f"FROM feedback f LEFT JOIN issued_cards c ON c.card_uuid = f.card_uuid {where} "
            f"GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
        rows = self._query(sql, (service_id,) if service_id else ())
        out: list[dict[str, Any]] = [
            {"topic": t, "outcome": o, "overrideReason": r or None, "count": int(n)} for t, o, r, n in rows
        ]
        # Feedback on a card that carried another topic's facts, counted under that topic too (marked with the card's
        # own).
        via = (
            f"SELECT v.topic, c.topic, f.outcome, COALESCE(f.override_code, ''), COUNT(*) "
            "FROM feedback f JOIN issued_cards c ON c.card_uuid = f.card_uuid JOIN card_covers v ON v.card_uuid = "
            "f.card_uuid "
            f"{where} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        )
        out += [
            {"topic": t, "outcome": o, "overrideReason": r or None, "count": int(n), "via": card_topic}
            for t, card_topic, o, r, n in self._query(via, (service_id,) if service_id else ())
        ]
        return out

    def topics(self, card_uuids: list[str]) -> dict[str, str]:
        """The topic each of these issued cards was recorded with (cards the ledger has not recorded are absent)."""
        unique = sorted(set(card_uuids))[:500]  # one feedback POST: a handful of cards
        if not unique:
            return {}
        marks = ",".join([self.placeholder] * len(unique))
        rows = self._query(f"SELECT card_uuid, topic FROM issued_cards WHERE card_uuid IN ({marks})", tuple(unique))
        return {str(uuid): str(topic) for uuid, topic in rows}

    def count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM feedback", ())[0][0])

    def prune(self, now: datetime, feedback_days: int, issued_cards_days: int) -> tuple[int, int]:
        """Delete feedback received before ``now - feedback_days`` and issued cards issued before
        ``now - issued_cards_days`` that no feedback refers to. Returns (feedback rows, issued-card rows) deleted.
        Never deletes feedback younger than ``feedback_days``."""
        p = self.placeholder
        feedback_cutoff = _stamp(now - timedelta(days=feedback_days))
        cards_cutoff = _stamp(now - timedelta(days=issued_cards_days))
        feedback = self._delete_in_batches(
            f"DELETE FROM feedback WHERE id IN (SELECT id FROM feedback WHERE received_at < {p} LIMIT {PRUNE_BATCH})",
            (feedback_cutoff,),
        )
        cards = self._delete_in_batches(
            "DELETE FROM issued_cards WHERE card_uuid IN (SELECT c.card_uuid FROM issued_cards c WHERE c.issued_at < "
            f"{p} "
            f"AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.card_uuid = c.card_uuid) LIMIT {PRUNE_BATCH})",
            (cards_cutoff,),
        )
        self._delete_in_batches(
            f"DELETE FROM card_covers WHERE card_uuid IN (SELECT v.card_uuid FROM card_covers v WHERE NOT EXISTS "
            f"(SELECT 1 FROM issued_cards c WHERE c.card_uuid = v.card_uuid) LIMIT {PRUNE_BATCH})",
            (),
        )
        self._after_prune()
        return feedback, cards

    def _delete_in_batches(self, sql: str, params: tuple[Any, ...]) -> int:
        total = 0
        while True:
            deleted = self._delete(sql, params)
            total += deleted
            if deleted < PRUNE_BATCH:
                return total

    @abc.abstractmethod
    def _delete(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run one DELETE in its own committed transaction; the number of rows deleted."""

    def _after_prune(self) -> None:  # noqa: B027 - optional hook: SQLite checkpoints its log
        """Reclaim what the deletions freed, where the backend needs to be told."""

    def card_uuids(self) -> list[str]:
        return [r[0] for r in self._query("SELECT card_uuid FROM feedback ORDER BY id", ())]

    @abc.abstractmethod
    def _execute_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run ``sql`` for every row in one committed transaction."""

    @abc.abstractmethod
    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Return all rows of a read query."""

    def close(self) -> None:  # noqa: B027 - optional hook: backends with connections override it
        """Release connections held by this store."""

    @abc.abstractmethod
    def ping(self, timeout: float) -> None:
        """A trivial query on a new connection to the database, within about ``timeout`` seconds; raises when the
        database cannot answer (readiness: a connection this process already holds would hide a database gone)."""


class SQLiteFeedbackStore(FeedbackStore):
    def __init__(self, path: str) -> None:
        self._uri = path == ":memory:"
        if self._uri:  # one in-memory database shared by every thread of this process (tests, replay)
            path = f"file:backpain-{uuid.uuid4().hex}?mode=memory&cache=shared"
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        conn = self._conn()
        self._keepalive = conn if self._uri else None
        for stmt in _SCHEMA:
            conn.execute(stmt.format(pk="INTEGER PRIMARY KEY AUTOINCREMENT"))
        conn.commit()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():  # never use a connection across fork (gunicorn preload)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, uri=self._uri, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # durable at commit, not only at checkpoint
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute(f"PRAGMA wal_autocheckpoint={self.WAL_AUTOCHECKPOINT_PAGES}")  # SQLite's default: kept on
            conn.execute(f"PRAGMA journal_size_limit={self.JOURNAL_SIZE_LIMIT}")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    # The log is checkpointed into the database every ~4 MB of writes (1000 pages), and a checkpoint that resets it
    # truncates the file back to 4 MiB, so one large transaction cannot leave a large log behind for good.
    WAL_AUTOCHECKPOINT_PAGES = 1000
    JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024

    def _delete(self, sql: str, params: tuple[Any, ...]) -> int:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            deleted = int(conn.execute(sql, params).rowcount)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return deleted

    def _after_prune(self) -> None:
        if not self._uri:  # what was deleted is in the log: copy it into the database and truncate the log to zero
            self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def wal_bytes(self) -> int:
        wal = Path(self.path + "-wal")
        return wal.stat().st_size if wal.exists() else 0

    def _execute_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self._conn().execute(sql, params).fetchall()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def ping(self, timeout: float) -> None:
        if self._uri:  # this process's own memory: there is nothing to lose but the process
            self._conn().execute("SELECT 1 FROM feedback LIMIT 1").fetchall()
            return
        conn = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, timeout=timeout)  # never creates the file
        try:
            conn.execute("SELECT 1 FROM feedback LIMIT 1").fetchall()
        finally:
            conn.close()


class PostgresFeedbackStore(FeedbackStore):
    placeholder = "%s"

    def __init__(self, url: str) -> None:
        import psycopg  # optional dependency: pip install 'backpain-cds[postgres]'

        self._psycopg = psycopg
        self.url = url
        self._local = threading.local()
        with self._connect() as conn:
            create_schema(conn, [stmt.format(pk="BIGSERIAL PRIMARY KEY") for stmt in _SCHEMA])

    def _connect(self) -> Any:
        return self._psycopg.connect(self.url, connect_timeout=5)

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or self._local.pid != os.getpid():  # never use a connection across fork
            conn = self._connect()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _execute_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        conn = self._conn()
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, rows)

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = self._conn()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def _delete(self, sql: str, params: tuple[Any, ...]) -> int:
        conn = self._conn()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(sql, params)
            return int(cur.rowcount)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()

    def ping(self, timeout: float) -> None:
        # libpq waits at least 2 s to connect whatever it is told; the readiness thread is not waited for beyond
        # ``timeout`` (readiness.run_checks)
        ms = max(1, int(timeout * 1000))
        with self._psycopg.connect(
            self.url, connect_timeout=max(2, math.ceil(timeout)), options=f"-c statement_timeout={ms}"
        ) as conn:
            conn.execute("SELECT 1").fetchall()


def open_store(database_url: str, clock: Callable[[], datetime] | None = None) -> FeedbackStore:
    scheme = urlsplit(database_url).scheme
    store: FeedbackStore
    if scheme in ("postgresql", "postgres"):
        store = PostgresFeedbackStore(database_url)
    elif scheme == "sqlite":
        store = SQLiteFeedbackStore(sqlite_path(database_url))
    else:
        raise ValueError("database_url must be sqlite:///path or postgresql://…")
    if clock is not None:
        store.clock = clock
    return store
