"""GET /ready: 200 when the content is loaded and the feedback store (and Redis, when it is the replay cache) answers;
503 naming each failing check and its reason — never a URL or a password — within the configured time."""

from __future__ import annotations

import shutil
import time

import pytest

from bench.loadgen import free_port
from hooks.wsgi import create_app
from tests.conftest import NOW, fake_resolver

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _client(tmp_path, **settings):
    base = {"database_url": f"sqlite:///{tmp_path}/db/f.db"}
    return create_app({**base, **settings}, clock=lambda: NOW, resolver=fake_resolver).test_client()


def test_ready_when_everything_answers(tmp_path):
    resp = _client(tmp_path).get("/ready")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ready"}


def test_health_is_liveness_and_stays_200_when_not_ready(tmp_path):
    client = _client(tmp_path)
    shutil.rmtree(tmp_path / "db")
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 503


def test_not_ready_when_the_sqlite_store_is_gone(tmp_path):
    client = _client(tmp_path)
    shutil.rmtree(tmp_path / "db")  # the database file and its directory: this process's open connection hides it
    resp = client.get("/ready")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "not ready"
    assert body["failing"] == {"feedback_store": "OperationalError"}
    assert not (tmp_path / "db").exists()  # the probe never creates a database


def test_not_ready_when_redis_does_not_answer_and_the_url_is_not_shown(tmp_path):
    url = f"redis://:hunter2-password@127.0.0.1:{free_port()}/0"  # a closed port
    client = _client(tmp_path, redis_url=url, ready_timeout=1.0)
    started = time.monotonic()
    resp = client.get("/ready")
    assert time.monotonic() - started < 2.5
    assert resp.status_code == 503
    assert set(resp.get_json()["failing"]) == {"redis"}
    text = resp.get_data(as_text=True)
    assert "hunter2" not in text and "127.0.0.1" not in text


def test_redis_is_not_checked_when_it_is_not_the_replay_cache(tmp_path):
    client = _client(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0", replay_cache="database")
    assert client.get("/ready").status_code == 200


@pytest.mark.redis
def test_ready_with_a_redis_that_answers(tmp_path):
    try:
        import redis

        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except Exception as exc:
        pytest.skip(f"Redis not reachable at 127.0.0.1:6379 ({type(exc).__name__})")
    assert _client(tmp_path, redis_url="redis://127.0.0.1:6379/0").get("/ready").status_code == 200


@pytest.mark.postgres
def test_not_ready_when_postgresql_does_not_answer(tmp_path):
    try:
        app = create_app({"database_url": PG_URL})
    except Exception as exc:  # no server here: say so
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(exc).__name__})")
    client = app.test_client()
    assert client.get("/ready").status_code == 200
    store = app.extensions["backpain"]["store"]
    store.url = f"postgresql://postgres:hunter2-password@127.0.0.1:{free_port()}/test"  # the server went away
    started = time.monotonic()
    resp = client.get("/ready")
    assert time.monotonic() - started < 3.5  # libpq's shortest connect timeout is 2 s; it refuses at once here
    assert resp.status_code == 503
    assert resp.get_json()["failing"] == {"feedback_store": "OperationalError"}
    assert "hunter2" not in resp.get_data(as_text=True)


def test_a_check_that_hangs_is_reported_as_timed_out_within_the_timeout(tmp_path):
    client = _client(tmp_path, ready_timeout=0.5)
    checks = client.application.extensions["backpain"]["ready_checks"]
    checks["feedback_store"] = lambda timeout: time.sleep(5)  # a database that never answers
    started = time.monotonic()
    resp = client.get("/ready")
    assert time.monotonic() - started < 1.5
    assert resp.status_code == 503
    assert resp.get_json()["failing"] == {"feedback_store": "timed out after 0.5 s"}


def test_not_ready_without_content(tmp_path):
    client = _client(tmp_path)
    client.application.extensions["backpain"]["components"].renderer.templates.clear()
    resp = client.get("/ready")
    assert resp.status_code == 503
    assert resp.get_json()["failing"] == {"content": "no card templates loaded"}
