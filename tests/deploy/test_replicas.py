"""Two replicas, as two pods would be: separate production servers (gunicorn, bench.loadgen.ServerProcess) on two
loopback ports, sharing one fresh PostgreSQL database (feedback, card ledger) and Redis (the jti replay cache).

A client JWT accepted by one is refused by the other; feedback posted to one is in the other's summary; killing one
(SIGKILL, master and workers) in the middle of a feedback load loses none that it acknowledged. The database is this
module's own (created, then dropped); the Redis keys are under this run's own issuer, deleted afterwards."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import orjson
import pytest
import requests

from bench.loadgen import ServerProcess, free_port, run_load
from tests.cds_service.auth_support import JWKS, token
from tests.conftest import bundle, hook_request
from tests.factories import LBP, condition

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

SERVER = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/14"  # not the replay-cache tests' 15; keys under this run's issuer only
PUBLIC = "https://cds.hospital.example"
SERVICE = "backpain-patient-view"
ISS = f"https://ehr-{uuid.uuid4().hex[:12]}.replicas.example"  # this run's keys: backpain-cds:jti:{ISS}:*


@pytest.fixture(scope="module")
def redis_client() -> Iterator[Any]:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
    except Exception as exc:
        pytest.skip(f"Redis not reachable at 127.0.0.1:6379 ({type(exc).__name__})")
    try:
        yield client
    finally:
        for key in client.scan_iter(match=f"backpain-cds:jti:{ISS}:*", count=1000):
            client.delete(key)
        client.close()


@pytest.fixture(scope="module")
def replicas(own_database, redis_client, tmp_path_factory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two production servers configured alike (as two pods from one Deployment), stopped by their pids."""
    clients = tmp_path_factory.mktemp("replicas") / "trusted-clients.json"
    clients.write_text(json.dumps([{"iss": ISS, "jwks": JWKS}]))
    config = (
        'environment = "production"\n'
        f'public_base_url = "{PUBLIC}"\n'
        f'trusted_clients_file = "{clients}"\n'
        f'redis_url = "{REDIS_URL}"\n'
        "replicas = 2\n"
        'fhir_allowed_origins = ["https://fhir.hospital.example"]\n'
        'cors_origins = ["https://ehr.hospital.example"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPCDS_")}  # only this configuration
    # each pod has its metrics port (production never serves them on the hook port)
    a = ServerProcess(
        workers=2, database_url=own_database, extra_config=config + f"metrics_port = {free_port()}\n", env=env
    )
    b = ServerProcess(
        workers=1, database_url=own_database, extra_config=config + f"metrics_port = {free_port()}\n", env=env
    )
    try:
        a.wait_ready()
        b.wait_ready()
        yield a, b
    finally:
        a.close()
        b.close()


def _auth(path: str) -> dict[str, str]:
    """A fresh client JWT (its own jti) for the service path of ``path`` (a whole URL or a path)."""
    service_path = path[path.index("/cds-services") :]
    return {"Authorization": f"Bearer {token(jku=None, claims={'iss': ISS, 'aud': PUBLIC + service_path})}"}


def _feedback(card: str) -> bytes:
    return orjson.dumps(
        {"feedback": [{"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-11-22T03:32:27Z"}]}
    )


def _summary(server: ServerProcess) -> list[dict[str, Any]]:
    path = f"/cds-services/{SERVICE}/feedback/summary"
    resp = requests.get(server.url + path, headers=_auth(path), timeout=10)
    assert resp.status_code == 200, resp.text
    summary: list[dict[str, Any]] = resp.json()["summary"]
    return summary


def test_a_token_accepted_by_one_replica_is_refused_by_the_other(replicas, redis_client):
    a, b = replicas
    path = f"/cds-services/{SERVICE}"
    headers = _auth(path)
    jti = jwt.decode(headers["Authorization"][7:], options={"verify_signature": False})["jti"]
    calls = [
        requests.post(server.url + path, json=hook_request("patient-view"), headers=headers, timeout=10).status_code
        for server in (a, b, a)
    ]
    assert calls == [200, 401, 401]
    assert redis_client.exists(f"backpain-cds:jti:{ISS}:{jti}") == 1  # remembered in the shared Redis
    fresh = _auth(path)  # and a new token is accepted by either
    assert requests.post(b.url + path, json=hook_request("patient-view"), headers=fresh, timeout=10).status_code == 200


def test_feedback_posted_to_one_replica_is_in_the_other_replicas_summary(replicas):
    a, b = replicas
    path = f"/cds-services/{SERVICE}"
    body = hook_request(
        "patient-view",
        prefetch={
            "conditions": bundle(
                condition("lbp", *LBP, onset="2026-11-02"), condition("ce", "192970008", "Cauda equina syndrome")
            )
        },
    )
    resp = requests.post(a.url + path, json=body, headers=_auth(path), timeout=10)
    assert resp.status_code == 200, resp.text
    (card,) = resp.json()["cards"]
    assert card["source"]["topic"]["code"] == "imaging-red-flags"
    sent = requests.post(
        f"{a.url}{path}/feedback",
        data=_feedback(card["uuid"]),
        headers={**_auth(f"{path}/feedback"), "Content-Type": "application/json"},
        timeout=10,
    )
    assert sent.status_code == 200, sent.text
    # the card ledger is written behind the answer (a background thread): its topic reaches B within seconds
    wanted = {"topic": "imaging-red-flags", "outcome": "accepted", "overrideReason": None, "count": 1}
    deadline, seen = time.monotonic() + 15, []
    while time.monotonic() < deadline:
        seen = _summary(b)
        if wanted in seen:
            break
        time.sleep(0.2)
    assert wanted in seen, seen


def test_killing_a_replica_mid_load_loses_no_acknowledged_feedback(replicas, own_database):
    import psycopg

    a, b = replicas
    path = f"/cds-services/{SERVICE}/feedback"

    killer = threading.Thread(target=a.kill)  # SIGKILL to A's process group: master and both workers

    def spread(i: int) -> tuple[str, bytes, Any]:  # a load balancer's round robin
        if i == 200:  # a third of the way in, whatever the machine's speed
            killer.start()
        server = (a, b)[i % 2]
        card = f"kill-{'ab'[i % 2]}-{i}"
        return server.url + path, _feedback(card), card

    try:
        result = run_load("", spread, concurrency=6, count=600, max_seconds=30, headers=_auth)
    finally:
        if killer.is_alive():
            killer.join(timeout=15)
    assert a.proc.poll() is not None, "A was killed during the load"
    acknowledged = set(result.acknowledged)
    by_replica = {r: {c for c in acknowledged if c.startswith(f"kill-{r}-")} for r in "ab"}
    assert by_replica["a"] and by_replica["b"], result.statuses  # both took feedback before the kill
    assert set(result.statuses) <= {200, 0}, result.statuses  # refused connections to A after it died, no 5xx or 401
    with psycopg.connect(own_database, connect_timeout=3) as conn:
        stored = {row[0] for row in conn.execute("SELECT card_uuid FROM feedback WHERE card_uuid LIKE 'kill-%'")}
    assert acknowledged - stored == set()
    # and the survivor's summary counts them all (cards it never issued: topic unknown)
    (unknown,) = [row for row in _summary(b) if row["topic"] == "unknown" and row["outcome"] == "accepted"]
    assert unknown["count"] == len(stored) >= len(acknowledged)
    print(json.dumps({"statuses": result.statuses, "acknowledged": len(acknowledged), "stored": len(stored)}))
