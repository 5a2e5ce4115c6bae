"""CDS Hooks 2.0 client authentication: the EHR signs a JWT per call; we verify it with PyJWT.

Order of checks (spec notes): header well-formed with an allowed ``alg`` (never none/HMAC, never taken from the
token) → ``iss`` allowlisted (else no outbound request at all) → ``jku`` equals the one registered for that issuer
→ signature against the issuer's JWKS (cached per Cache-Control, capped; one rate-limited refetch on an unknown
``kid``) → ``aud``, ``exp``, ``iat``, lifetime, ``tenant`` → ``jti`` not seen for that ``iss`` within the lifetime.
Any failure raises :class:`~cds_service.errors.Unauthorized`; only ``iss``/``jti`` and a reason are logged.

A token is attacker-controlled input: before any arithmetic, every claim used has its JSON type checked (NumericDate
claims are finite numbers, never booleans or strings; ``iss``/``jti``/``sub``/``tenant`` strings; ``aud`` a string or
an array of strings), the key named by ``kid`` must be of the type and curve the token's ``alg`` needs, and whatever
PyJWT or cryptography raises while verifying becomes a 401, never a 500.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .config import Settings
from .errors import ReplayCacheUnavailable, Unauthorized
from .fhir_transport import Deadline, watched_session
from .replay_cache import RedisReplayCache, ReplayCache, open_replay_cache

if TYPE_CHECKING:
    from flask import Request

__all__ = ["Authenticator", "RedisReplayCache", "ReplayCache", "TrustedClient", "authenticate"]
log = logging.getLogger("backpain_cds.request")

_MAX_AGE = re.compile(r"max-age=(\d+)")
JWKS_FAILURE_BACKOFF = 5.0  # seconds: a down JWKS endpoint costs one timeout, not one per call
MAX_JTI_LENGTH = 256  # a UUID is 36; anything far longer is not an identifier an EHR mints per call
_NUMERIC_DATE_LIMIT = 2**53  # RFC 7519 NumericDate as JSON numbers carry it; beyond this it is no date
_EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}  # RFC 7518 §3.4: the curve is the alg's


def _numeric_date(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -_NUMERIC_DATE_LIMIT <= value <= _NUMERIC_DATE_LIMIT
    return isinstance(value, float) and math.isfinite(value) and abs(value) <= _NUMERIC_DATE_LIMIT


def claim_problem(claims: dict[str, Any]) -> str | None:
    """Why the claims' JSON types are wrong (a reason for the log), or None. Values are checked later."""
    for name in ("exp", "iat", "nbf"):
        if name in claims and not _numeric_date(claims[name]):
            return f"{name} is not a NumericDate"
    for name in ("iss", "jti", "sub", "tenant"):
        if name in claims and not isinstance(claims[name], str):
            return f"{name} is not a string"
    jti = claims.get("jti")
    if isinstance(jti, str) and not 0 < len(jti) <= MAX_JTI_LENGTH:
        return "jti is empty or too long"
    aud = claims.get("aud")
    if "aud" in claims and not (
        isinstance(aud, str) or (isinstance(aud, list) and all(isinstance(a, str) for a in aud))
    ):
        return "aud is not a string or an array of strings"
    return None


def key_fits(alg: str, key: Any) -> bool:
    """The key is of the type (and, for ECDSA, the curve) the algorithm is defined with."""
    if alg in _EC_CURVES:
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _EC_CURVES[alg]
    if alg[:2] in ("RS", "PS"):
        return isinstance(key, rsa.RSAPublicKey)
    return False  # EdDSA and anything else: no such key is ever loaded (_parse_jwks keeps EC and RSA keys only)


@dataclass
class TrustedClient:
    iss: str
    jku: str | None = None
    static_jwks: dict[str, Any] | None = None
    tenants: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> TrustedClient:
        jwks = data.get("jwks")
        if data.get("jwks_file"):
            jwks = json.loads(Path(data["jwks_file"]).read_text())
        if not data.get("jku") and not jwks:
            raise ValueError(f"trusted client {data.get('iss')!r} needs a jku or a jwks")
        return cls(iss=data["iss"], jku=data.get("jku"), static_jwks=jwks, tenants=frozenset(data.get("tenants") or ()))


@dataclass
class _CachedKeys:
    keys: dict[str, Any] = field(default_factory=dict)  # kid → PyJWK
    expires: float = 0.0
    last_refresh: float = float("-inf")
    failed_until: float = 0.0  # after a failed fetch, fail fast (closed) instead of waiting on the endpoint again


class Authenticator:
    JWKS_DEADLINE = (
        3.0  # seconds for one JWKS fetch, all of it: a call waiting on one still ends well within its budget
    )

    def __init__(
        self,
        settings: Settings,
        clients: list[TrustedClient],
        *,
        session: requests.Session | None = None,
        replay: ReplayCache | None = None,
        clock: Any = time.time,
    ) -> None:
        self.settings = settings
        self.clients = {c.iss: c for c in clients}
        self._session = session  # None: a session per JWKS fetch, watched by that fetch's deadline
        self._keys: dict[str, _CachedKeys] = {}
        self._lock = threading.Lock()
        # shared by every worker (and replica, with Redis/PostgreSQL); with no trusted client nothing is ever checked
        self.replay = replay or (open_replay_cache(settings) if self.clients else ReplayCache())
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self.clients)

    def verify(self, authorization: str | None, audience: str) -> dict[str, Any]:
        try:
            return self._verify(authorization, audience)
        except Unauthorized as exc:
            if authorization and exc.iss is None:
                try:
                    unverified = jwt.decode(
                        authorization.removeprefix("Bearer ").strip(), options={"verify_signature": False}
                    )
                    exc.iss, exc.jti = str(unverified.get("iss"))[:200], str(unverified.get("jti"))[:200]
                except Exception:  # only for the log line: an unreadable token has no iss to log
                    pass
            raise

    # Complexity: one check per CDS Hooks 2.0 client-JWT rule, in the spec's order, so it can be audited against it.
    def _verify(self, authorization: str | None, audience: str) -> dict[str, Any]:  # noqa: C901
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("missing bearer token")
        token = authorization[len("Bearer ") :].strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except Exception:  # PyJWTError for what PyJWT recognises; anything else from a hostile token is malformed too
            raise Unauthorized("malformed token") from None
        problem = claim_problem(unverified)
        if problem:
            raise Unauthorized(problem)
        alg = header.get("alg")
        if alg not in self.settings.jwt_algorithms:
            raise Unauthorized(f"algorithm {alg!r} not allowed")
        if not isinstance(header.get("kid"), str):
            raise Unauthorized("no kid")
        if header.get("typ") not in (None, "JWT"):
            raise Unauthorized("typ is not JWT")
        iss = unverified.get("iss")
        client = self.clients.get(iss) if isinstance(iss, str) else None
        if client is None:
            raise Unauthorized("issuer not trusted")
        jku = header.get("jku")
        if jku is not None and jku != client.jku:
            raise Unauthorized("jku is not the one registered for this issuer")
        key = self._key(client, header["kid"])
        if not key_fits(alg, key):
            raise Unauthorized(f"the key named by kid is not a key for {alg}")
        skew = self.settings.jwt_clock_skew
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=audience,
                issuer=client.iss,
                leeway=skew,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except Exception as exc:  # the one place a token is verified: PyJWTError, and TypeError/ValueError/… from
            # PyJWT or cryptography on shapes they do not expect — every one of them is a token we do not accept
            raise Unauthorized(f"invalid token ({type(exc).__name__})") from None
        now = self._clock()
        iat, exp = claims["iat"], claims["exp"]
        if not isinstance(iat, (int, float)) or iat > now + skew:
            raise Unauthorized("iat in the future")
        if exp - iat > self.settings.jwt_max_lifetime:
            raise Unauthorized("token lifetime too long")
        if client.tenants and claims.get("tenant") not in client.tenants:
            raise Unauthorized("tenant not allowed")
        # the pair is kept until the token itself expires (exp + skew); a store that cannot answer raises a 503
        if not self.replay.first_use(client.iss, claims["jti"], float(exp) + skew, now):
            raise Unauthorized("jti replayed")
        return claims

    # -- keys --------------------------------------------------------------------------------
    def _key(self, client: TrustedClient, kid: str) -> Any:
        if client.static_jwks is not None:  # pinned keys: never fetched (a registered jku is still checked above)
            keys = _parse_jwks(client.static_jwks)
            if kid not in keys:
                raise Unauthorized("unknown kid")
            return keys[kid]
        assert client.jku is not None
        with self._lock:
            cached = self._keys.setdefault(client.iss, _CachedKeys())
            now = time.monotonic()
            if kid in cached.keys and cached.expires > now:
                return cached.keys[kid]
            if not cached.keys or cached.expires <= now:
                fetch = True  # nothing cached yet, or the cache expired
            else:  # unknown kid: one refresh, rate-limited so unknown kids cannot make us hammer the JWKS endpoint
                fetch = now - cached.last_refresh >= self.settings.jwks_min_refresh_interval
                if fetch:
                    cached.last_refresh = now
            if fetch:
                if now < cached.failed_until:
                    raise Unauthorized("JWKS endpoint failed recently")
                try:
                    keys, max_age = self._fetch_jwks(client.jku)
                except Unauthorized:
                    cached.failed_until = now + JWKS_FAILURE_BACKOFF
                    raise
                cached.keys, cached.expires = keys, now + max_age
            if kid not in cached.keys:
                raise Unauthorized("unknown kid")
            return cached.keys[kid]

    def _fetch_jwks(self, url: str) -> tuple[dict[str, Any], float]:
        """GET the JWKS within JWKS_DEADLINE whatever the endpoint does (a watchdog ends a dripping answer)."""
        cap = self.settings.jwks_max_bytes
        deadline = Deadline(self.JWKS_DEADLINE)
        session = self._session or watched_session(deadline)
        left = deadline.remaining()
        try:
            with session.get(url, timeout=(min(2.0, left), min(2.0, left)), allow_redirects=False, stream=True) as resp:
                if resp.status_code != 200:
                    raise Unauthorized(f"JWKS endpoint answered {resp.status_code}")
                body = b""
                for chunk in resp.iter_content(16384):
                    body += chunk
                    if len(body) > cap:
                        raise Unauthorized("JWKS too large")
                    if deadline.expired():
                        raise Unauthorized("JWKS fetch exceeded its deadline")
                match = _MAX_AGE.search(resp.headers.get("Cache-Control", ""))
        except Unauthorized:
            raise
        except Exception:  # whatever the transport raised: the endpoint could not be read (fail closed)
            raise Unauthorized(
                "JWKS fetch exceeded its deadline" if deadline.expired() else "JWKS endpoint unreachable"
            ) from None
        finally:
            deadline.close()
            if session is not self._session:
                session.close()
        if deadline.fired:  # cut short by the watchdog: not the whole document
            raise Unauthorized("JWKS fetch exceeded its deadline")
        max_age = min(int(match.group(1)) if match else 300, self.settings.jwks_cache_max_age)
        try:
            return _parse_jwks(json.loads(body)), float(max_age)
        except (ValueError, TypeError):
            raise Unauthorized("JWKS unreadable") from None


def _parse_jwks(data: Any) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    entries = data.get("keys") if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("kty") not in ("EC", "RSA"):
            continue  # never a symmetric key
        try:
            keys[entry["kid"]] = jwt.PyJWK(entry).key
        except Exception:  # a malformed entry is skipped, whatever the library raises for it
            continue
    return keys


# Why a client JWT was refused, as a fixed code (metrics labels): the reasons ``Authenticator`` gives, by their words.
# A reason is the service's own text, but some quote the token's header (``alg``): the label is never the text itself.
AUTH_FAILURE_CODES = (
    ("algorithm ", "algorithm"),  # first: the rest of that reason is the token's own alg, whatever it says
    ("missing bearer token", "missing_token"),
    ("malformed token", "malformed"),
    ("is not a NumericDate", "claim_type"),
    ("is not a string", "claim_type"),
    ("jti is empty or too long", "claim_type"),
    ("aud is not a string", "claim_type"),
    ("is not a key for", "algorithm"),
    ("no kid", "header"),
    ("typ is not JWT", "header"),
    ("issuer not trusted", "untrusted_issuer"),
    ("jku is not the one registered", "jku_mismatch"),
    ("unknown kid", "unknown_kid"),
    ("JWKS", "jwks_unavailable"),
    ("(ExpiredSignatureError)", "expired"),
    ("(InvalidAudienceError)", "audience"),
    ("(InvalidSignatureError)", "signature"),
    ("(MissingRequiredClaimError)", "missing_claim"),
    ("(ImmatureSignatureError)", "not_yet_valid"),
    ("invalid token", "invalid_token"),
    ("iat in the future", "iat_in_future"),
    ("token lifetime too long", "lifetime"),
    ("tenant not allowed", "tenant"),
    ("jti replayed", "replayed"),
)
AUTH_FAILURE_REASONS = frozenset(code for _, code in AUTH_FAILURE_CODES) | {"replay_cache_unavailable", "other"}


def auth_failure_code(reason: str) -> str:
    """One of ``AUTH_FAILURE_REASONS`` for an ``Unauthorized`` reason (``other`` for one this table does not know)."""
    for words, code in AUTH_FAILURE_CODES:
        if words in reason:
            return code
    return "other"


def authenticate(
    authenticator: Authenticator, request: Request, public_base_url: str, required: bool = True
) -> dict[str, Any] | None:
    """The first step of every call: the client's JWT verified for the URL that was called (``public_base_url`` + path
    behind a proxy, else the URL the request came to) — its claims, or None when authentication is off (or not
    ``required`` for this endpoint). A failure is logged with its reason, ``iss`` and ``jti`` (never the token) and
    raised: 401, or 503 when the replay cache cannot answer (fail closed)."""
    if not (authenticator.enabled and required):
        return None
    base = public_base_url.rstrip("/")
    audience = f"{base}{request.path}" if base else request.base_url
    try:
        return authenticator.verify(request.headers.get("Authorization"), audience)
    except Unauthorized as exc:
        log.info(
            "client authentication failed",
            extra={"reason": exc.reason, "iss": exc.iss, "jti": exc.jti, "path": request.path},
        )
        raise
    except ReplayCacheUnavailable as exc:  # fail closed: 503, and loud in the log
        log.error("replay cache unavailable; call refused", extra={"reason": exc.reason, "path": request.path})
        raise
