"""Hostile tokens: every (alg, key type) pair, claims of the wrong JSON type, a JWKS of the wrong shape: a bare 401."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import jwt
import pytest
import responses

from hooks.wsgi import create_app
from tests.cds_service.auth_support import AUD, EC_KEY, ISS, JKU, MATRIX_JWKS, MATRIX_KIDS, SIGNERS, post, token

FITS = {("ES384", "ec-1"), ("ES256", "ec256-1"), ("RS384", "rsa-1"), ("RS256", "rsa-1"), ("PS384", "rsa-1")}


@pytest.fixture
def every_alg(tmp_path):
    """A service trusting every algorithm of the matrix (so only the key/algorithm fit decides), keys pinned."""

    def make(tenants: list[str] | None = None):
        return create_app(
            {
                "database_url": f"sqlite:///{tmp_path}/f.db",
                "jwt_algorithms": list(SIGNERS),
                "trusted_clients": [{"iss": ISS, "jwks": MATRIX_JWKS, "tenants": tenants or []}],
            }
        ).test_client()

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
    {"exp": str(NOW_S + 300)},
    {"iat": str(NOW_S)},
    {"nbf": str(NOW_S)},
    {"exp": True},
    {"iat": False},
    {"nbf": True},
    {"exp": None},
    {"exp": [NOW_S + 300]},
    {"iat": {"t": NOW_S}},
    {"exp": float("inf")},
    {"iat": float("-inf")},
    {"iat": float("nan")},
    {"exp": 10**30},
    {"iat": -(10**30)},
    {"exp": 10**400},
    {"nbf": 1e300},
    {"tenant": ["hospital-a"]},
    {"tenant": {"id": "hospital-a"}},
    {"tenant": 7},
    {"tenant": None},
    {"jti": 5},
    {"jti": ["a"]},
    {"jti": {"a": 1}},
    {"jti": ""},
    {"jti": "x" * 1000},
    {"jti": None},
    {"iss": [ISS]},
    {"iss": 5},
    {"sub": 5},
    {"sub": ["epic"]},
    {"aud": [AUD, 1]},
    {"aud": [AUD, None]},
    {"aud": 5},
    {"aud": {"url": AUD}},
    {"aud": []},
]


@pytest.mark.parametrize("tenants", [[], ["hospital-a"]], ids=["no-tenants", "tenants"])
@pytest.mark.parametrize(
    "claims", WRONG_TYPES, ids=[f"{i}-{k}-{type(v).__name__}" for i, c in enumerate(WRONG_TYPES) for k, v in c.items()]
)
def test_claims_of_the_wrong_type_are_a_bare_401(every_alg, tenants, claims):
    if tenants and "tenant" not in claims:
        claims = {**claims, "tenant": "hospital-a"}
    resp = post(every_alg(tenants), raw_token(claims))
    assert resp.status_code == 401
    assert resp.get_data() == b""


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": NOW_S + 300.5, "iat": NOW_S + 0.25},  # NumericDate may be fractional (RFC 7519 §2)
        {"nbf": NOW_S - 1.5, "sub": "epic-client"},
        {"tenant": "hospital-a"},
        {"aud": [AUD]},
    ],
)
def test_claims_of_the_right_type_still_pass(every_alg, claims):
    assert post(every_alg(["hospital-a"] if "tenant" in claims else None), raw_token(claims)).status_code == 200


@pytest.mark.parametrize(
    "jwks",
    [
        [1, 2],
        {"keys": 5},
        {"keys": [5, "x", None]},
        {"keys": {"kid": "ec-1"}},
        "keys",
        7,
        {"keys": [{"kty": "RSA", "kid": "ec-1", "n": "!!", "e": "AQAB"}]},
        {"keys": [{"kty": "EC", "kid": "ec-1", "crv": "P-384", "x": 5, "y": []}]},
    ],
)
def test_a_jwks_of_the_wrong_shape_fails_closed_with_401(secured, jwks):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(JKU, json=jwks)
        assert post(secured(), token()).status_code == 401
