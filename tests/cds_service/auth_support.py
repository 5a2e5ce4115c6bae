"""The client-authentication tests' keys (EC, RSA, Ed25519), their JWKS, a token signer and a hook-call poster."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.conftest import hook_request

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


def token(
    *,
    key: Any = EC_KEY,
    alg: str = "ES384",
    kid: str = "ec-1",
    jku: str | None = JKU,
    claims: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    headers: dict[str, Any] | None = None,
) -> str:
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


def post(client, tok: str | None, path: str = "/cds-services/backpain-patient-view", scheme: str = "Bearer"):
    headers = {"Authorization": f"{scheme} {tok}"} if tok is not None else {}
    return client.post(path, json=hook_request("patient-view"), headers=headers)


# the hostile-token matrix: a key of every type, and the signer of each algorithm (test_auth_hostile_tokens.py)
EC256_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
MATRIX_KIDS = {"ec-1": EC_KEY, "rsa-1": RSA_KEY, "ec256-1": EC256_KEY}  # EC P-384, RSA 2048, EC P-256
MATRIX_JWKS = {
    "keys": [_jwk(EC_KEY, "ec-1", "ES384"), _jwk(RSA_KEY, "rsa-1", "RS384"), _jwk(EC256_KEY, "ec256-1", "ES256")]
}
SIGNERS = {"ES384": EC_KEY, "ES256": EC256_KEY, "RS384": RSA_KEY, "RS256": RSA_KEY, "PS384": RSA_KEY, "EdDSA": ED_KEY}
