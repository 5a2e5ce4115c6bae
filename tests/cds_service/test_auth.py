"""Client JWT authentication matrix (CDS Hooks 2.0): generated EC and RSA keys, a local JWKS served through responses."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import jwt
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from cds_service.auth import Authenticator, RedisReplayCache, TrustedClient
from cds_service.cli import check_bind_safety
from cds_service.config import load_settings
from hooks.wsgi import create_app
from tests.conftest import call, hook_request

ISS = "https://ehr.example.org"
JKU = "https://ehr.example.org/.well-known/jwks.json"
AUD = "http://localhost/cds-services/backpain-patient-view"
EC_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = ec.generate_private_key(ec.SECP384R1())


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algo = jwt.algorithms.ECAlgorithm if alg.startswith("ES") else jwt.algorithms.RSAAlgorithm
    data = json.loads(algo.to_jwk(key.public_key()))
    data.update({"kid": kid, "alg": alg, "use": "sig"})
    return data


JWKS = {"keys": [_jwk(EC_KEY, "ec-1", "ES384"), _jwk(RSA_KEY, "rsa-1", "RS384")]}


def token(*, key: Any = EC_KEY, alg: str = "ES384", kid: str = "ec-1", jku: str | None = JKU, claims: dict[str, Any] | None = None,
          drop: tuple[str, ...] = (), headers: dict[str, Any] | None = None) -> str:
    now = int(time.time())
    body = {"iss": ISS, "aud": AUD, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    body.update(claims or {})
    for name in drop:
        body.pop(name)
    head = {"kid": kid, "typ": "JWT"}
    if jku:
        head["jku"] = jku
    head.update(headers or {})
    return jwt.encode(body, key, algorithm=alg, headers=head)


@pytest.fixture
def secured(tmp_path):
    def make(**settings: Any):
        base = {"database_url": f"sqlite:///{tmp_path}/f.db", "trusted_clients": [{"iss": ISS, "jku": JKU, "tenants": []}]}
        base.update(settings)
        return create_app(base).test_client()
    return make


@pytest.fixture
def jwks_server():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(JKU, json=JWKS, headers={"Cache-Control": "max-age=600"})
        yield rsps


def post(client, tok: str | None, path: str = "/cds-services/backpain-patient-view", scheme: str = "Bearer"):
    headers = {"Authorization": f"{scheme} {tok}"} if tok is not None else {}
    return client.post(path, json=hook_request("patient-view"), headers=headers)


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
    return jwt.encode({"iss": ISS, "aud": AUD, "exp": int(time.time()) + 60, "iat": int(time.time()), "jti": "h"}, "secret" * 8,
                      algorithm="HS256", headers={"kid": "ec-1", "jku": JKU})


def _none() -> str:
    import base64

    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{b64({'alg': 'none', 'kid': 'ec-1', 'typ': 'JWT'})}.{b64({'iss': ISS, 'aud': AUD, 'exp': int(time.time()) + 60, 'iat': int(time.time()), 'jti': 'n'})}."


@pytest.mark.parametrize("make_token, scheme", [
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
])
def test_rejected_with_a_bare_401(secured, jwks_server, make_token, scheme):
    resp = post(secured(), make_token(), scheme=scheme)
    assert resp.status_code == 401
    assert resp.get_data() == b""


def test_untrusted_issuer_makes_no_outbound_request(secured, jwks_server):
    tok = token(claims={"iss": "https://sandbox.cds-hooks.org"}, jku="https://sandbox.cds-hooks.org/.well-known/jwks.json")
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


@pytest.mark.parametrize("reply", [dict(status=500), dict(status=200, body=b"x" * 300_000), dict(status=302, headers={"Location": "https://x"}),
                                   dict(body=responses.ConnectionError("down")), dict(status=200, body="not json")])
def test_jwks_failure_fails_closed(secured, reply):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(JKU, **reply)
        started = time.monotonic()
        assert post(secured(), token()).status_code == 401
        assert time.monotonic() - started < 3


def test_tenant_must_match(tmp_path, jwks_server):
    app = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "trusted_clients": [{"iss": ISS, "jku": JKU, "tenants": ["hospital-a"]}]})
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
    resp = client.post("/cds-services/backpain-patient-view/feedback", json=body, headers={"Authorization": f"Bearer {tok}"})
    assert resp.status_code == 200


def test_public_base_url_sets_the_audience(tmp_path, jwks_server):
    app = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "trusted_clients": [{"iss": ISS, "jku": JKU}],
                      "public_base_url": "https://cds.hospital.org/backpain"})
    client = app.test_client()
    assert post(client, token()).status_code == 401
    assert post(client, token(claims={"aud": "https://cds.hospital.org/backpain/cds-services/backpain-patient-view"})).status_code == 200


def test_sandbox_shaped_token_passes_when_its_issuer_is_registered(tmp_path):
    """The public sandbox's header/claims shape (jku, typ, 300 s lifetime); its real key is public, so a site that
    registers it accepts tokens that prove nothing — the guide says so."""
    sandbox_iss, sandbox_jku = "https://sandbox.cds-hooks.org", "https://sandbox.cds-hooks.org/.well-known/jwks.json"
    key = ec.generate_private_key(ec.SECP384R1())
    with responses.RequestsMock() as rsps:
        rsps.get(sandbox_jku, json={"keys": [_jwk(key, "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f", "ES384")]})
        app = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "trusted_clients": [{"iss": sandbox_iss, "jku": sandbox_jku}]})
        now = int(time.time())
        tok = jwt.encode({"iss": sandbox_iss, "aud": AUD, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}, key, algorithm="ES384",
                         headers={"kid": "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f", "jku": sandbox_jku, "typ": "JWT"})
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


@pytest.mark.parametrize("host, clients, insecure, ok", [
    ("127.0.0.1", [], False, True), ("::1", [], False, True), ("localhost", [], False, True),
    ("0.0.0.0", [], False, False), ("10.0.0.5", [], False, False), ("0.0.0.0", [], True, True),
    ("0.0.0.0", [{"iss": ISS, "jku": JKU}], False, True),
])
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
        app = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "trusted_clients": [{"iss": ISS, "jku": JKU, "jwks": JWKS}]})
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
    app = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "redis_url": "redis://127.0.0.1:1/0",
                      "trusted_clients": [{"iss": ISS, "jwks": JWKS}]})
    resp = post(app.test_client(), token(jku=None))
    assert resp.status_code == 503
    issue = resp.get_json()["issue"][0]
    assert (issue["code"], issue["details"]["coding"][0]["code"]) == ("transient", "replay-cache-unavailable")


# --- hostile tokens: every (alg, key type) pair and claims of the wrong JSON type are a bare 401, never a 500 ----------

EC256_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
MATRIX_KIDS = {"ec-1": EC_KEY, "rsa-1": RSA_KEY, "ec256-1": EC256_KEY}  # EC P-384, RSA 2048, EC P-256
MATRIX_JWKS = {"keys": [_jwk(EC_KEY, "ec-1", "ES384"), _jwk(RSA_KEY, "rsa-1", "RS384"), _jwk(EC256_KEY, "ec256-1", "ES256")]}
SIGNERS = {"ES384": EC_KEY, "ES256": EC256_KEY, "RS384": RSA_KEY, "RS256": RSA_KEY, "PS384": RSA_KEY, "EdDSA": ED_KEY}
FITS = {("ES384", "ec-1"), ("ES256", "ec256-1"), ("RS384", "rsa-1"), ("RS256", "rsa-1"), ("PS384", "rsa-1")}


@pytest.fixture
def every_alg(tmp_path):
    """A service trusting every algorithm of the matrix (so only the key/algorithm fit decides), keys pinned."""
    def make(tenants: list[str] | None = None):
        return create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "jwt_algorithms": list(SIGNERS),
                           "trusted_clients": [{"iss": ISS, "jwks": MATRIX_JWKS, "tenants": tenants or []}]}).test_client()
    return make


@pytest.mark.parametrize("kid", MATRIX_KIDS)
@pytest.mark.parametrize("alg", SIGNERS)
def test_every_algorithm_against_every_key_type(every_alg, caplog, alg, kid):
    """RS384 naming an EC key's kid made PyJWT raise TypeError (a 500): a key that does not fit the alg is a 401."""
    signer = MATRIX_KIDS[kid] if (alg, kid) in FITS else SIGNERS[alg]
    with caplog.at_level(logging.INFO, logger="backpain_cds"):
        resp = post(every_alg(), token(key=signer, alg=alg, kid=kid, jku=None))
    if (alg, kid) in FITS:
        assert resp.status_code == 200
    else:
        assert resp.status_code == 401
        assert resp.get_data() == b"" and resp.headers["WWW-Authenticate"] == "Bearer"
        [failure] = [r for r in caplog.records if r.getMessage() == "client authentication failed"]
        assert failure.reason.startswith(("the key named by kid is not a key for", "invalid token"))


def raw_token(claims: dict[str, Any], *, key: Any = EC_KEY, alg: str = "ES384", kid: str = "ec-1") -> str:
    """A correctly signed token whose claims are exactly ``claims`` (PyJWT's encoder would refuse some of them)."""
    now = int(time.time())
    body = {"iss": ISS, "aud": AUD, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    body.update(claims)
    payload = json.dumps(body).encode()  # Python's json writes inf/nan as Infinity/NaN, which PyJWT's reader accepts
    return jwt.api_jws.PyJWS().encode(payload, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


NOW_S = int(time.time())
WRONG_TYPES = [
    {"exp": str(NOW_S + 300)}, {"iat": str(NOW_S)}, {"nbf": str(NOW_S)}, {"exp": True}, {"iat": False}, {"nbf": True},
    {"exp": None}, {"exp": [NOW_S + 300]}, {"iat": {"t": NOW_S}}, {"exp": float("inf")}, {"iat": float("-inf")},
    {"iat": float("nan")}, {"exp": 10**30}, {"iat": -(10**30)}, {"exp": 10**400}, {"nbf": 1e300},
    {"tenant": ["hospital-a"]}, {"tenant": {"id": "hospital-a"}}, {"tenant": 7}, {"tenant": None},
    {"jti": 5}, {"jti": ["a"]}, {"jti": {"a": 1}}, {"jti": ""}, {"jti": "x" * 1000}, {"jti": None},
    {"iss": [ISS]}, {"iss": 5}, {"sub": 5}, {"sub": ["epic"]},
    {"aud": [AUD, 1]}, {"aud": [AUD, None]}, {"aud": 5}, {"aud": {"url": AUD}}, {"aud": []},
]


@pytest.mark.parametrize("tenants", [[], ["hospital-a"]], ids=["no-tenants", "tenants"])
@pytest.mark.parametrize("claims", WRONG_TYPES, ids=[f"{i}-{k}-{type(v).__name__}" for i, c in enumerate(WRONG_TYPES)
                                                     for k, v in c.items()])
def test_claims_of_the_wrong_type_are_a_bare_401(every_alg, tenants, claims):
    if tenants and "tenant" not in claims:
        claims = {**claims, "tenant": "hospital-a"}
    resp = post(every_alg(tenants), raw_token(claims))
    assert resp.status_code == 401
    assert resp.get_data() == b""


@pytest.mark.parametrize("claims", [
    {"exp": NOW_S + 300.5, "iat": NOW_S + 0.25},  # NumericDate may be fractional (RFC 7519 §2)
    {"nbf": NOW_S - 1.5, "sub": "epic-client"},
    {"tenant": "hospital-a"},
    {"aud": [AUD]},
])
def test_claims_of_the_right_type_still_pass(every_alg, claims):
    assert post(every_alg(["hospital-a"] if "tenant" in claims else None), raw_token(claims)).status_code == 200


@pytest.mark.parametrize("jwks", [[1, 2], {"keys": 5}, {"keys": [5, "x", None]}, {"keys": {"kid": "ec-1"}}, "keys", 7,
                                  {"keys": [{"kty": "RSA", "kid": "ec-1", "n": "!!", "e": "AQAB"}]},
                                  {"keys": [{"kty": "EC", "kid": "ec-1", "crv": "P-384", "x": 5, "y": []}]}])
def test_a_jwks_of_the_wrong_shape_fails_closed_with_401(secured, jwks):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(JKU, json=jwks)
        assert post(secured(), token()).status_code == 401
