"""Replay protection: a client JWT's ``(iss, jti)`` is accepted once within the token's lifetime — by every worker.

Where the pairs are remembered (``replay_cache``, chosen by :func:`open_replay_cache`):

- ``auto`` (default): Redis when ``redis_url`` is set, else the database the service already keeps (``database_url``).
  SQLite is one file shared by every worker of this host; PostgreSQL and Redis are shared by every replica.
- ``memory``: this process only — explicit opt-in, refused in production with more than one worker or replica.

``first_use`` answers True exactly once per pair until the pair expires (the token's ``exp`` plus the clock skew,
after which the token itself is refused): one atomic statement decides (an insert, or the revival of an expired
row; ``rowcount`` says which happened), so two workers racing with the same token cannot both win. Expired rows are
deleted at most once a minute per process.

A store that cannot answer never lets a token in: :class:`~cds_service.errors.ReplayCacheUnavailable` is a 503 —
the token was not found wanting (a 401 would send the EHR's operators after their keys), but the call is not
accepted, and the outage shows in the service's own 5xx monitoring.
"""

from __future__ import annotations

import abc
import math
import os
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config import Settings, sqlite_path
from .errors import ReplayCacheUnavailable
from .pg import create_schema

PRUNE_INTERVAL = 60.0  # seconds between deletions of expired pairs, per process
_TABLE = (
    "CREATE TABLE IF NOT EXISTS jti_seen (iss TEXT NOT NULL, jti TEXT NOT NULL, expires_at {real} NOT NULL, "
    "PRIMARY KEY (iss, jti))"
)
_FIRST_USE = (
    "INSERT INTO jti_seen (iss, jti, expires_at) VALUES ({p}, {p}, {p}) ON CONFLICT (iss, jti) "
    "DO UPDATE SET expires_at = excluded.expires_at WHERE jti_seen.expires_at <= {p}"
)


class ReplayCache:
    """(iss, jti) seen within the token's lifetime, in this process only (``replay_cache = "memory"``)."""

    # Who shares what a store remembers is Settings.replay_scope(): process (memory, SQLite :memory:), host (an SQLite
    # file: every worker), replicas (PostgreSQL, Redis).

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def first_use(self, iss: str, jti: str, expires_at: float, now: float) -> bool:
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            expiry = self._seen.get((iss, jti))
            if expiry is not None and expiry > now:
                return False
            self._seen[(iss, jti)] = expires_at
            return True


class RedisReplayCache(ReplayCache):
    def __init__(self, url: str) -> None:
        import redis  # optional dependency

        self._redis = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    def first_use(self, iss: str, jti: str, expires_at: float, now: float) -> bool:
        import redis

        key = f"backpain-cds:jti:{iss}:{jti}"
        try:
            return bool(self._redis.set(key, b"1", nx=True, ex=max(1, math.ceil(expires_at - now))))
        except redis.RedisError as exc:
            raise ReplayCacheUnavailable(f"Redis: {type(exc).__name__}") from None


class _SQLReplayCache(ReplayCache, abc.ABC):
    """The ``jti_seen`` table of the service's database; one connection per thread and process (never across fork)."""

    placeholder = "?"

    def __init__(self) -> None:
        self._local = threading.local()
        self._prune_lock = threading.Lock()
        self._next_prune = 0.0

    @abc.abstractmethod
    def _connect(self) -> Any:
        """A new connection to the store (SQLite file or PostgreSQL)."""

    @abc.abstractmethod
    def _errors(self) -> tuple[type[BaseException], ...]:
        """The driver's exceptions that mean the store could not answer."""

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(conn, "closed", False) or self._local.pid != os.getpid():
            conn = self._connect()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _drop_connection(self) -> None:
        conn, self._local.conn = getattr(self._local, "conn", None), None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken: nothing more to release
                pass

    def first_use(self, iss: str, jti: str, expires_at: float, now: float) -> bool:
        p = self.placeholder
        try:
            conn = self._conn()
            first = conn.execute(_FIRST_USE.format(p=p), (iss, jti, expires_at, now)).rowcount == 1
            if now >= self._next_prune and self._prune_lock.acquire(blocking=False):
                try:
                    self._next_prune = now + PRUNE_INTERVAL
                    conn.execute(f"DELETE FROM jti_seen WHERE expires_at <= {p}", (now,))
                finally:
                    self._prune_lock.release()
            return first
        except self._errors() as exc:
            self._drop_connection()  # a broken connection is not reused by the next call
            raise ReplayCacheUnavailable(f"{type(self).__name__}: {type(exc).__name__}") from None

    def count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM jti_seen").fetchone()[0])


class SQLiteReplayCache(_SQLReplayCache):
    """The SQLite file of ``database_url``: shared by every worker (process) on this host, not across hosts."""

    BUSY_TIMEOUT_MS = 2000  # a hook call waits this long at most for another writer (feedback waits longer)

    def __init__(self, path: str) -> None:
        super().__init__()
        self._uri = path == ":memory:"
        if self._uri:  # tests and in-process replay: this process only
            path = f"file:backpain-jti-{uuid.uuid4().hex}?mode=memory&cache=shared"
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        conn = self._conn()
        self._keepalive = conn if self._uri else None
        conn.execute(_TABLE.format(real="REAL"))

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.BUSY_TIMEOUT_MS / 1000, isolation_level=None, uri=self._uri, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout={int(self.BUSY_TIMEOUT_MS)}")
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL, not FULL: in WAL mode still atomic and never corrupt; a power cut may forget the last pairs, which
        # re-opens only tokens that are minutes from expiry — and no commit waits for an fsync on the hook path.
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)


class PostgresReplayCache(_SQLReplayCache):
    """The ``jti_seen`` table of a PostgreSQL ``database_url``: shared by every replica using that database."""

    placeholder = "%s"

    def __init__(self, url: str) -> None:
        import psycopg  # optional dependency: pip install 'backpain-cds[postgres]'

        super().__init__()
        self._psycopg = psycopg
        self.url = url
        with self._connect() as conn:  # not kept: the process that creates the table may fork workers next
            create_schema(conn, [_TABLE.format(real="DOUBLE PRECISION")])

    def _connect(self) -> Any:
        # autocommit: each statement is its own transaction; a hook call waits 2 s at most for the database
        return self._psycopg.connect(self.url, connect_timeout=2, autocommit=True, options="-c statement_timeout=2000")

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (self._psycopg.Error,)


def open_replay_cache(settings: Settings) -> ReplayCache:
    kind = settings.replay_backend()
    if kind == "redis":
        return RedisReplayCache(settings.redis_url)
    if kind == "memory":
        return ReplayCache()
    if urlsplit(settings.database_url).scheme in ("postgresql", "postgres"):
        return PostgresReplayCache(settings.database_url)
    return SQLiteReplayCache(sqlite_path(settings.database_url))
