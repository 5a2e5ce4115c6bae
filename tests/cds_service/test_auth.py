"""Client JWT authentication (CDS Hooks 2.0): accepted and refused tokens, the JWKS fetch, tenants, audience, replay."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import ec

from cds_service.auth import Authenticator, RedisReplayCache, TrustedClient
from cds_service.cli import check_bind_safety
from cds_service.config import load_settings
from hooks.wsgi import create_app
from tests.cds_service.auth_support import AUD, ISS, JKU, JWKS, OTHER_KEY, RSA_KEY, _jwk, post, token
from tests.conftest import call, hook_request


@pytest.fixture
def jwks_server():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(JKU, json=JWKS, headers={"Cache-Control": "max-age=600"})
        yield rsps


def test_valid_es384_token_passes(secured, jwks_server):
    assert post(secured(), token()).status_code == 200
    assert len(jwks_server.calls) == 1


def test_valid_rs384_with_nbf_and_sub_passes(secured, jwks_server):
    tok = token(key=RSA_KEY, alg="RS384", kid="rsa-1", claims={"nbf": int(time.time()), "sub": "epic-client"})
    assert post(secured(), tok).status_code == 200


def test_aud_as_array_and_iat_slightly_ahead(secured, jwks_server):
    tok = token(claims={"aud": ["https://other.example", AUD], "iat": int(time.time()) + 1})
    assert post(secured(), tok).status_code == 200


def _hmac() -> str:
    return jwt.encode(
        {"iss": ISS, "aud": AUD, "exp": int(time.time()) + 60, "iat": int(time.time()), "jti": "h"},
        "secret" * 8,
        algorithm="HS256",
        headers={"kid": "ec-1", "jku": JKU},
    )


def _none() -> str:
    import base64

    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    claims = {"iss": ISS, "aud": AUD, "exp": int(time.time()) + 60, "iat": int(time.time()), "jti": "n"}
    return f"{b64({'alg': 'none', 'kid': 'ec-1', 'typ': 'JWT'})}.{b64(claims)}."


@pytest.mark.parametrize(
    "make_token, scheme",
    [
        (lambda: None, "Bearer"),
        (lambda: token(), "Basic"),
        (lambda: "not.a.jwt", "Bearer"),
        (lambda: "", "Bearer"),
        (_none, "Bearer"),
        (_hmac, "Bearer"),
        (lambda: token(key=OTHER_KEY), "Bearer"),  # signature does not verify
        (lambda: token(claims={"aud": "http://localhost/cds-services/backpain-order-sign"}), "Bearer"),
        (lambda: token(claims={"exp": int(time.time()) - 60, "iat": int(time.time()) - 360}), "Bearer"),
        (lambda: token(claims={"iat": int(time.time()) + 120, "exp": int(time.time()) + 420}), "Bearer"),
        (lambda: token(claims={"exp": int(time.time()) + 3600}), "Bearer"),  # lifetime over 900 s
        (lambda: token(drop=("jti",)), "Bearer"),
        (lambda: token(drop=("exp",)), "Bearer"),
        (lambda: token(key=RSA_KEY, alg="RS256", kid="rsa-1"), "Bearer"),  # algorithm not on the allowlist
        (lambda: token(headers={"typ": "at+jwt"}), "Bearer"),
    ],
)
def test_rejected_with_a_bare_401(secured, jwks_server, make_token, scheme):
    resp = post(secured(), make_token(), scheme=scheme)
    assert resp.status_code == 401
    assert resp.get_data() == b""


def test_untrusted_issuer_makes_no_outbound_request(secured, jwks_server):
    tok = token(
        claims={"iss": "https://sandbox.cds-hooks.org"}, jku="https://sandbox.cds-hooks.org/.well-known/jwks.json"
    )
    assert post(secured(), tok).status_code == 401
    assert len(jwks_server.calls) == 0


def test_unregistered_jku_is_never_fetched(secured, jwks_server):
    tok = token(jku="https://attacker.example/jwks.json")
    assert post(secured(), tok).status_code == 401
    assert len(jwks_server.calls) == 0


def test_replayed_jti_is_rejected(secured, jwks_server):
    client = secured()
    tok = token()
    assert post(client, tok).status_code == 200
    assert post(client, tok).status_code == 401


def test_unknown_kid_refetches_once_then_rate_limits(secured, jwks_server):
    client = secured()
    assert post(client, token()).status_code == 200
    assert post(client, token(kid="rotated")).status_code == 401
    assert post(client, token(kid="rotated-again")).status_code == 401
    assert len(jwks_server.calls) == 2  # initial fetch + one refresh; the third lookup is rate-limited


def test_rotated_key_is_found_on_refresh(secured, jwks_server):
    client = secured()
    assert post(client, token()).status_code == 200
    new_key = ec.generate_private_key(ec.SECP384R1())
    jwks_server.replace(responses.GET, JKU, json={"keys": JWKS["keys"] + [_jwk(new_key, "ec-2", "ES384")]})
    assert post(client, token(key=new_key, kid="ec-2")).status_code == 200


@pytest.mark.parametrize(
    "reply",
    [
        dict(status=500),
        dict(status=200, body=b"x" * 300_000),
        dict(status=302, headers={"Location": "https://x"}),
        dict(body=responses.ConnectionError("down")),
        dict(status=200, body="not json"),
    ],
)
def test_jwks_failure_fails_closed(secured, reply):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(JKU, **reply)
        started = time.monotonic()
        assert post(secured(), token()).status_code == 401
        assert time.monotonic() - started < 3


def test_tenant_must_match(tmp_path, jwks_server):
    app = create_app(
        {
            "database_url": f"sqlite:///{tmp_path}/f.db",
            "trusted_clients": [{"iss": ISS, "jku": JKU, "tenants": ["hospital-a"]}],
        }
    )
    client = app.test_client()
    assert post(client, token(claims={"tenant": "hospital-b"})).status_code == 401
    assert post(client, token(claims={"tenant": "hospital-a"})).status_code == 200


def test_static_jwks_without_jku(tmp_path):
    app = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "trusted_clients": [{"iss": ISS, "jwks": JWKS}]})
    assert post(app.test_client(), token(jku=None)).status_code == 200


def test_discovery_auth_is_a_switch(secured, jwks_server):
    assert secured().get("/cds-services").status_code == 200
    strict = secured(auth_discovery=True)
    assert strict.get("/cds-services").status_code == 401
    tok = token(claims={"aud": "http://localhost/cds-services"})
    assert strict.get("/cds-services", headers={"Authorization": f"Bearer {tok}"}).status_code == 200


def test_feedback_needs_a_token_too(secured, jwks_server):
    client = secured()
    body = {"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-11-22T03:32:27Z"}]}
    assert client.post("/cds-services/backpain-patient-view/feedback", json=body).status_code == 401
    tok = token(claims={"aud": "http://localhost/cds-services/backpain-patient-view/feedback"})
    resp = client.post(
        "/cds-services/backpain-patient-view/feedback", json=body, headers={"Authorization": f"Bearer {tok}"}
    )
    assert resp.status_code == 200


def test_public_base_url_sets_the_audience(tmp_path, jwks_server):
    app = create_app(
        {
            "database_url": f"sqlite:///{tmp_path}/f.db",
            "trusted_clients": [{"iss": ISS, "jku": JKU}],
            "public_base_url": "https://cds.hospital.org/backpain",
        }
    )
    client = app.test_client()
    assert post(client, token()).status_code == 401
    assert (
        post(
            client, token(claims={"aud": "https://cds.hospital.org/backpain/cds-services/backpain-patient-view"})
        ).status_code
        == 200
    )


def test_sandbox_shaped_token_passes_when_its_issuer_is_registered(tmp_path):
    """The public sandbox's header/claims shape (jku, typ, 300 s lifetime); its real key is public, so a site that
    registers it accepts tokens that prove nothing — the guide says so."""
    sandbox_iss, sandbox_jku = "https://sandbox.cds-hooks.org", "https://sandbox.cds-hooks.org/.well-known/jwks.json"
    key = ec.generate_private_key(ec.SECP384R1())
    with responses.RequestsMock() as rsps:
        rsps.get(sandbox_jku, json={"keys": [_jwk(key, "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f", "ES384")]})
        app = create_app(
            {
                "database_url": f"sqlite:///{tmp_path}/f.db",
                "trusted_clients": [{"iss": sandbox_iss, "jku": sandbox_jku}],
            }
        )
        now = int(time.time())
        tok = jwt.encode(
            {"iss": sandbox_iss, "aud": AUD, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())},
            key,
            algorithm="ES384",
            headers={"kid": "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f", "jku": sandbox_jku, "typ": "JWT"},
        )
        assert post(app.test_client(), tok).status_code == 200


def test_replay_cache_is_shared_through_redis():
    try:
        import redis

        redis.Redis.from_url("redis://127.0.0.1:6379/15", socket_connect_timeout=1).ping()
    except Exception as exc:
        pytest.skip(f"Redis not reachable at 127.0.0.1:6379 ({type(exc).__name__})")
    settings = load_settings(overrides={"redis_url": "redis://127.0.0.1:6379/15"})
    clients = [TrustedClient(ISS, static_jwks=JWKS)]
    worker_a, worker_b = Authenticator(settings, clients), Authenticator(settings, clients)
    assert isinstance(worker_a.replay, RedisReplayCache)
    tok = token(jku=None)
    worker_a.verify(f"Bearer {tok}", AUD)
    from cds_service.errors import Unauthorized

    with pytest.raises(Unauthorized):
        worker_b.verify(f"Bearer {tok}", AUD)


@pytest.mark.parametrize(
    "host, clients, insecure, ok",
    [
        ("127.0.0.1", [], False, True),
        ("::1", [], False, True),
        ("localhost", [], False, True),
        ("0.0.0.0", [], False, False),
        ("10.0.0.5", [], False, False),
        ("0.0.0.0", [], True, True),
        ("0.0.0.0", [{"iss": ISS, "jku": JKU}], False, True),
    ],
)
def test_auth_may_be_off_only_on_loopback(host, clients, insecure, ok):
    settings = load_settings(overrides={"trusted_clients": clients, "insecure": insecure})
    if ok:
        check_bind_safety(settings, host)
    else:
        with pytest.raises(SystemExit, match="refusing to bind"):
            check_bind_safety(settings, host)


def test_call_without_auth_configured_still_works(client):
    assert call(client, hook_request("patient-view")).status_code == 200


def test_pinned_jwks_with_registered_jku_never_fetches(tmp_path):
    with responses.RequestsMock() as rsps:  # strict: any fetch would fail the test
        app = create_app(
            {"database_url": f"sqlite:///{tmp_path}/f.db", "trusted_clients": [{"iss": ISS, "jku": JKU, "jwks": JWKS}]}
        )
        client = app.test_client()
        assert post(client, token()).status_code == 200
        assert post(client, token(jku="https://attacker.example/jwks.json")).status_code == 401
        assert len(rsps.calls) == 0


def test_down_jwks_endpoint_is_not_asked_again_on_every_call(secured):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(JKU, body=responses.ConnectionError("down"))
        client = secured()
        assert post(client, token()).status_code == 401
        started = time.monotonic()
        assert post(client, token()).status_code == 401
        assert len(rsps.calls) == 1  # the second call failed fast, closed
        assert time.monotonic() - started < 1


def test_redis_down_fails_closed_with_503(tmp_path):
    """A replay cache that cannot answer never lets a token in; the token was not found wanting, so not a 401."""
    settings = load_settings(overrides={"redis_url": "redis://127.0.0.1:1/0"})  # nothing listens on port 1
    auth = Authenticator(settings, [TrustedClient(ISS, static_jwks=JWKS)])
    from cds_service.errors import ReplayCacheUnavailable

    with pytest.raises(ReplayCacheUnavailable) as failure:
        auth.verify(f"Bearer {token(jku=None)}", AUD)
    assert failure.value.reason == "Redis: ConnectionError"
    app = create_app(
        {
            "database_url": f"sqlite:///{tmp_path}/f.db",
            "redis_url": "redis://127.0.0.1:1/0",
            "trusted_clients": [{"iss": ISS, "jwks": JWKS}],
        }
    )
    resp = post(app.test_client(), token(jku=None))
    assert resp.status_code == 503
    issue = resp.get_json()["issue"][0]
    assert (issue["code"], issue["details"]["coding"][0]["code"]) == ("transient", "replay-cache-unavailable")
