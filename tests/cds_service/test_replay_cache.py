"""A client JWT is accepted once — by every worker of a server (SQLite, the default) and by every replica (PostgreSQL,
Redis); a replay cache that cannot answer refuses the call (503); production refuses a per-process cache."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from bench.loadgen import ServerProcess
from cds_service.config import load_settings
from cds_service.replay_cache import (
    PostgresReplayCache,
    RedisReplayCache,
    ReplayCache,
    SQLiteReplayCache,
    open_replay_cache,
)
from hooks.wsgi import create_app
from tests.cds_service.auth_support import ISS, JWKS, token
from tests.conftest import PRODUCTION, hook_request

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/15"
PATH = "/cds-services/backpain-patient-view"
PUBLIC = "https://cds.hospital.example"


def _postgres() -> str:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("DROP TABLE IF EXISTS jti_seen")
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(exc).__name__}: {exc})")
    return PG_URL


def _redis() -> str:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:
        pytest.skip(f"Redis not reachable at 127.0.0.1:6379 ({type(exc).__name__})")
    return REDIS_URL


@pytest.fixture
def new_store(request, tmp_path):
    """A factory of store instances, as each worker (or replica) opens its own."""
    kind = request.param
    if kind == "memory":
        return ReplayCache
    if kind == "sqlite":
        return lambda: SQLiteReplayCache(str(tmp_path / "feedback.sqlite3"))
    if kind == "postgres":
        url = _postgres()
        return lambda: PostgresReplayCache(url)
    url = _redis()
    return lambda: RedisReplayCache(url)


ALL = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
]
SHARED = ALL[1:]


@pytest.mark.parametrize("new_store", ALL, indirect=True)
def test_a_pair_is_accepted_once_until_it_expires(new_store):
    store, jti, now = new_store(), str(uuid.uuid4()), time.time()
    assert store.first_use(ISS, jti, now + 300, now) is True
    assert store.first_use(ISS, jti, now + 300, now + 1) is False
    assert store.first_use(ISS, jti, now + 300, now + 299) is False
    assert store.first_use("https://other.example", jti, now + 300, now) is True  # per issuer
    if not isinstance(store, RedisReplayCache):  # Redis expires by its own clock (tested by its TTL below)
        assert (
            store.first_use(ISS, jti, now + 900, now + 300) is True
        )  # the first token expired: a new one may reuse it
        assert store.first_use(ISS, jti, now + 900, now + 301) is False


@pytest.mark.redis
def test_redis_keeps_a_pair_for_the_token_lifetime():
    store, jti, now = RedisReplayCache(_redis()), str(uuid.uuid4()), time.time()
    assert store.first_use(ISS, jti, now + 120.2, now)
    assert 120 <= store._redis.ttl(f"backpain-cds:jti:{ISS}:{jti}") <= 121


@pytest.mark.parametrize("new_store", SHARED, indirect=True)
def test_a_pair_seen_by_one_worker_is_refused_by_another(new_store):
    worker_a, worker_b, jti, now = new_store(), new_store(), str(uuid.uuid4()), time.time()
    assert worker_a.first_use(ISS, jti, now + 300, now) is True
    assert worker_b.first_use(ISS, jti, now + 300, now) is False


@pytest.mark.parametrize("new_store", SHARED, indirect=True)
def test_workers_racing_with_one_token_accept_it_exactly_once(new_store):
    stores = [new_store() for _ in range(8)]
    jti, now, results = str(uuid.uuid4()), time.time(), []
    barrier = threading.Barrier(len(stores))

    def worker(store: ReplayCache) -> None:
        barrier.wait()
        results.append(store.first_use(ISS, jti, now + 300, now))

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [False] * 7 + [True]


@pytest.mark.parametrize("new_store", [p for p in SHARED if p.values[0] != "redis"], indirect=True)
def test_expired_pairs_are_deleted(new_store):
    store, now = new_store(), time.time()
    store.first_use(ISS, "short-lived", now + 10, now)
    store.first_use(ISS, "long-lived", now + 900, now + 1)
    assert store.count() == 2
    store.first_use(ISS, "later", now + 900, now + 100)  # past the prune interval and the first pair's expiry
    assert store.count() == 2  # short-lived is gone


# --- through the service ------------------------------------------------------------------------------------------


def _post(client, tok: str):
    return client.post(PATH, json=hook_request("patient-view"), headers={"Authorization": f"Bearer {tok}"})


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ],
)
def test_two_service_instances_sharing_a_store_accept_a_token_once(tmp_path, backend):
    settings = {
        "database_url": f"sqlite:///{tmp_path}/feedback.sqlite3",
        "public_base_url": PUBLIC,
        "trusted_clients": [{"iss": ISS, "jwks": JWKS}],
    }
    if backend == "postgres":
        settings["database_url"] = _postgres()
    if backend == "redis":
        settings["redis_url"] = _redis()
    a, b = create_app(settings).test_client(), create_app(settings).test_client()
    tok = token(jku=None, claims={"aud": f"{PUBLIC}{PATH}"})
    assert _post(a, tok).status_code == 200
    assert _post(b, tok).status_code == 401
    assert _post(a, tok).status_code == 401


def test_a_locked_sqlite_replay_cache_fails_closed_with_503(tmp_path, monkeypatch):
    monkeypatch.setattr(SQLiteReplayCache, "BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "feedback.sqlite3"
    client = create_app(
        {
            "database_url": f"sqlite:///{path}",
            "public_base_url": PUBLIC,
            "trusted_clients": [{"iss": ISS, "jwks": JWKS}],
        }
    ).test_client()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        tok = token(jku=None, claims={"aud": f"{PUBLIC}{PATH}"})
        resp = _post(client, tok)
        assert resp.status_code == 503
        assert resp.get_json()["issue"][0]["details"]["coding"][0]["code"] == "replay-cache-unavailable"
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert _post(client, tok).status_code == 200  # it was never recorded as used: the retry is its first use


@pytest.mark.slow
def test_gunicorn_workers_and_a_second_server_on_one_sqlite_file_accept_a_token_once(tmp_path):
    """The default store (the service's SQLite file) holds across every worker: a token accepted by one worker of
    server A is refused by A's other worker and by server B (a separate process on the same file)."""
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps([{"iss": ISS, "jwks": JWKS}]))
    database = f"sqlite:///{tmp_path}/feedback.sqlite3"
    config = f'trusted_clients_file = "{clients}"\npublic_base_url = "{PUBLIC}"\n'
    with (
        ServerProcess(workers=2, database_url=database, extra_config=config) as a,
        ServerProcess(workers=1, database_url=database, extra_config=config) as b,
    ):

        def send(server: ServerProcess, tok: str) -> int:
            with requests.Session() as fresh:  # a new connection each time: any worker may take it
                return fresh.post(
                    f"{server.url}{PATH}",
                    json=hook_request("patient-view"),
                    timeout=10,
                    headers={"Authorization": f"Bearer {tok}"},
                ).status_code

        first, second = (token(jku=None, claims={"aud": f"{PUBLIC}{PATH}"}) for _ in range(2))
        assert send(a, first) == 200
        assert [send(a, first) for _ in range(12)] == [401] * 12
        assert send(b, first) == 401
        assert send(b, second) == 200
        assert send(a, second) == 401


# --- start-up -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"workers": 2, "replay_cache": "memory"},
            "production with workers = 2 needs a replay cache the workers share",
        ),
        (
            {"workers": 2, "database_url": "sqlite:///:memory:"},
            "production with workers = 2 needs a replay cache the workers share",
        ),
        ({"replicas": 3}, "production with replicas = 3 needs a replay cache every replica shares"),
        ({"replicas": 2, "replay_cache": "memory", "redis_url": REDIS_URL}, "production with replicas = 2 needs"),
        ({"replicas": 2, "replay_cache": "database", "redis_url": REDIS_URL}, "production with replicas = 2 needs"),
        ({"replay_cache": "redis"}, "replay_cache 'redis' needs redis_url"),
        ({"replay_cache": "disk"}, "replay_cache must be auto, database, redis or memory"),
        ({"replicas": 0}, "workers and replicas must be at least 1"),
    ],
)
def test_production_refuses_a_replay_cache_its_workers_or_replicas_do_not_share(change, message):
    with pytest.raises(ValueError, match=message):
        load_settings(overrides={**PRODUCTION, "database_url": "sqlite:///var/f.sqlite3", **change})


@pytest.mark.parametrize(
    "change, backend, scope",
    [
        ({"workers": 2}, "database", "host"),  # the default: SQLite shared by this host's workers
        ({"workers": 1, "replay_cache": "memory"}, "memory", "process"),
        ({"replicas": 3, "redis_url": REDIS_URL}, "redis", "replicas"),
        ({"replicas": 3, "database_url": PG_URL}, "database", "replicas"),
        (
            {"replicas": 3, "database_url": PG_URL, "redis_url": REDIS_URL},
            "redis",
            "replicas",
        ),  # Redis takes precedence
    ],
)
def test_production_starts_with_a_shared_replay_cache(change, backend, scope):
    settings = load_settings(overrides={**PRODUCTION, "database_url": "sqlite:///var/f.sqlite3", **change})
    assert (settings.replay_backend(), settings.replay_scope()) == (backend, scope)


def test_development_may_use_a_per_process_cache_with_several_workers(tmp_path):
    settings = load_settings(overrides={"workers": 2, "replay_cache": "memory"})
    assert type(open_replay_cache(settings)) is ReplayCache
    default = load_settings(overrides={"database_url": f"sqlite:///{tmp_path}/f.sqlite3"})
    assert isinstance(open_replay_cache(default), SQLiteReplayCache)
    assert Path(tmp_path / "f.sqlite3").exists()
