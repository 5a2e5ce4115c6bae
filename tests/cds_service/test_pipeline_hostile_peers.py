"""Hostile peers never produce a 5xx: a client's tokens (random headers and claims, correctly signed or mangled) and
FHIR servers that misbehave (through responses, then raw HTTP over real sockets). Generated requests and clinical
data: test_pipeline.py."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cds_service.test_pipeline import VALIDATORS, json_value, resource
from tests.conftest import call, hook_request

# --- hostile tokens: random headers and claims, correctly signed with the test keys (or mangled) -------------------

_NUMBERS = st.one_of(
    st.integers(-(10**20), 10**20),
    st.floats(),
    st.just(10**400),
    st.booleans(),
    st.integers(0, 2_000_000_000).map(str),
    st.just(None),
)


def _claim(valid):
    return st.one_of(st.just(valid), st.just(valid), json_value, _NUMBERS)


@st.composite
def hostile_tokens(draw):
    import base64
    import json as _json
    import time as _time
    import uuid as _uuid

    import jwt

    from tests.cds_service.auth_support import AUD, ISS, MATRIX_KIDS, SIGNERS

    now = int(_time.time())
    signing_alg = draw(st.sampled_from(sorted(SIGNERS)))
    key = SIGNERS[signing_alg]  # signed correctly; the header's alg and kid may say otherwise
    header = draw(
        st.fixed_dictionaries(
            {
                "alg": st.one_of(
                    st.just(signing_alg),
                    st.sampled_from(["ES384", "RS384", "HS256", "none", "EdDSA", "es384", ""]),
                    json_value,
                ),
                "kid": st.one_of(st.sampled_from(sorted(MATRIX_KIDS)), st.text(max_size=8), json_value),
            },
            optional={
                "typ": st.one_of(st.just("JWT"), json_value),
                "jku": st.one_of(st.just("https://attacker.example/j"), json_value),
                "crit": json_value,
                "b64": st.booleans(),
                "x5u": st.text(max_size=10),
            },
        )
    )
    claims = draw(
        st.fixed_dictionaries(
            {
                "iss": _claim(ISS),
                "aud": st.one_of(st.just(AUD), st.just([AUD]), json_value),
                "exp": _claim(now + 300),
                "iat": _claim(now),
                "jti": st.one_of(st.just(str(_uuid.uuid4())), json_value),
            },
            optional={"nbf": _claim(now), "tenant": st.one_of(st.just("hospital-a"), json_value), "sub": json_value},
        )
    )
    for name in draw(st.sets(st.sampled_from(["iss", "aud", "exp", "iat", "jti"]), max_size=2)):
        claims.pop(name)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(_json.dumps(header).encode())}.{b64(_json.dumps(claims).encode())}"
    signature = jwt.algorithms.get_default_algorithms()[signing_alg].sign(signing_input.encode(), key)
    tok = f"{signing_input}.{b64(signature)}"
    mangle = draw(st.sampled_from(["none", "none", "none", "truncate", "flip", "segments"]))
    if mangle == "truncate":
        tok = tok[: draw(st.integers(0, len(tok)))]
    elif mangle == "flip":
        i = draw(st.integers(0, len(tok) - 1))
        tok = tok[:i] + draw(st.sampled_from("AZaz09-_.=!")) + tok[i + 1 :]
    elif mangle == "segments":
        tok = ".".join([tok] * draw(st.integers(0, 3)))
    return tok


_TOKEN_APP = None


def _token_client():
    global _TOKEN_APP
    if _TOKEN_APP is None:
        from hooks.wsgi import create_app
        from tests.cds_service.auth_support import ISS, MATRIX_JWKS, SIGNERS

        _TOKEN_APP = create_app(
            {
                "database_url": "sqlite:///:memory:",
                "jwt_algorithms": sorted(SIGNERS),
                "trusted_clients": [{"iss": ISS, "jwks": MATRIX_JWKS, "tenants": ["hospital-a"]}],
            }
        )
    return _TOKEN_APP.test_client()


@settings(max_examples=250, deadline=None)
@given(tok=hostile_tokens(), scheme=st.sampled_from(["Bearer", "Bearer", "bearer", "Basic", ""]))
def test_hostile_tokens_never_5xx(tok, scheme):
    resp = _token_client().post(
        "/cds-services/backpain-patient-view",
        json=hook_request("patient-view"),
        headers={"Authorization": f"{scheme} {tok}".strip()},
    )
    assert resp.status_code in (200, 401), resp.get_data(as_text=True)[:300]
    if resp.status_code == 401:
        assert resp.get_data() == b""


# --- FHIR server behaviours: status, body, content type, failures, small delays --------------------------------------

FHIR_BASE = "https://ehr.example.org/fhir"


@st.composite
def fhir_replies(draw):
    import json as _json

    import requests as _requests

    kind = draw(
        st.sampled_from(["bundle", "bundle", "resource", "json", "bytes", "truncated", "error", "empty", "paged"])
    )
    status = draw(
        st.one_of(
            st.just(200),
            st.just(200),
            st.sampled_from([201, 204, 301, 302, 304, 400, 401, 403, 404, 410, 429, 500, 502, 503]),
            st.integers(200, 599),
        )
    )
    ctype = draw(
        st.sampled_from(
            [
                "application/fhir+json",
                "application/json",
                "application/json; charset=utf-8",
                "text/html",
                "application/octet-stream",
                "",
            ]
        )
    )
    delay = draw(st.sampled_from([0.0, 0.0, 0.01, 0.05]))
    if kind == "error":
        return (
            status,
            ctype,
            delay,
            draw(
                st.sampled_from(
                    [
                        _requests.ConnectionError("down"),
                        _requests.ReadTimeout("slow"),
                        _requests.exceptions.ChunkedEncodingError("cut"),
                        _requests.exceptions.ContentDecodingError("gzip"),
                        OSError("odd"),
                        ValueError("odd"),
                    ]
                )
            ),
        )
    if kind == "bundle":
        body = _json.dumps(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": r} for r in draw(st.lists(resource, max_size=4))],
            }
        ).encode()
    elif kind == "paged":
        nxt = draw(
            st.sampled_from(
                [f"{FHIR_BASE}/Condition?page=2", "https://evil.example/x", "not a url", "", f"{FHIR_BASE}/x"]
            )
        )
        body = _json.dumps({"resourceType": "Bundle", "entry": [], "link": [{"relation": "next", "url": nxt}]}).encode()
    elif kind == "resource":
        body = _json.dumps(draw(resource)).encode()
    elif kind == "json":
        body = _json.dumps(draw(json_value)).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=200))
    elif kind == "truncated":
        whole = _json.dumps({"resourceType": "Bundle", "entry": [{"resource": draw(resource)}]}).encode()
        body = whole[: draw(st.integers(0, len(whole)))]
    else:
        body = b""
    return status, ctype, delay, body


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    replies=st.lists(fhir_replies(), min_size=1, max_size=4),
    missing=st.sets(
        st.sampled_from(["patient", "conditions", "medications", "labs", "findings", "allergies"]),
        min_size=1,
        max_size=3,
    ),
)
def test_fhir_server_behaviours_never_5xx(tmp_path_factory, replies, missing):
    import itertools
    import re as _re
    import time as _time

    import responses as _responses

    from hooks.wsgi import create_app
    from tests.conftest import fake_resolver

    app = _fhir_app(tmp_path_factory, create_app, fake_resolver)
    answers = itertools.cycle(replies)

    def reply(request):
        status, ctype, delay, body = next(answers)
        _time.sleep(delay)
        if isinstance(body, BaseException):
            raise body
        return status, ({"Content-Type": ctype} if ctype else {}), body

    body = hook_request("patient-view", fhirServer=FHIR_BASE)
    for key in missing:
        body["prefetch"].pop(key)
    with _responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(_responses.GET, _re.compile(_re.escape(FHIR_BASE) + ".*"), callback=reply)
        resp = call(app.test_client(), body)
    assert resp.status_code in (200, 412), resp.get_data(as_text=True)[:300]
    assert resp.mimetype == "application/json"
    if resp.status_code == 200:
        VALIDATORS.response(resp.get_json())
    else:
        assert resp.get_json()["resourceType"] == "OperationOutcome"


_FHIR_APPS: dict[str, object] = {}


def _fhir_app(tmp_path_factory, create_app, resolver):
    if "app" not in _FHIR_APPS:
        path = tmp_path_factory.mktemp("fuzz-fhir") / "f.db"
        _FHIR_APPS["app"] = create_app(
            {
                "database_url": f"sqlite:///{path}",
                "fhir_call_deadline": 0.5,
                "fhir_read_timeout": 0.4,
                "fhir_max_response_bytes": 20_000,
                "fhir_max_pages": 3,
            },
            resolver=resolver,
        )
    return _FHIR_APPS["app"]


# --- the same over real sockets: raw HTTP a server might send -------------------------------------------------------

_STATUS_LINES = [
    b"HTTP/1.1 200 OK",
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 200",
    b"HTTP/1.1 404 Not Found",
    b"HTTP/1.1 500 Oops",
    b"HTTP/1.1 302 Found",
    b"HTTP/2 200",
    b"HTTP/1.1 abc",
    b"garbage",
    b"",
    b"HTTP/1.1 100 Continue",
    b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000,
]
_GOOD_BODY = b'{"resourceType": "Bundle", "type": "searchset", "entry": []}'


@st.composite
def raw_http(draw):
    import gzip

    body = draw(
        st.sampled_from([_GOOD_BODY, b"{", b"[]", b"", b"\xff\xfe", b'{"resourceType": "Patient", "id": "p1"}'])
    )
    framing = draw(
        st.sampled_from(
            [
                "length",
                "length-short",
                "length-long",
                "length-bad",
                "chunked",
                "chunked-bad",
                "close",
                "gzip",
                "gzip-bad",
            ]
        )
    )
    headers = [b"Content-Type: " + draw(st.sampled_from([b"application/fhir+json", b"text/html", b""]))]
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(body))
    elif framing == "length-short":
        headers.append(b"Content-Length: %d" % max(0, len(body) - 3))
    elif framing == "length-long":
        headers.append(b"Content-Length: %d" % (len(body) + 50))
    elif framing == "length-bad":
        headers.append(
            draw(
                st.sampled_from(
                    [
                        b"Content-Length: -5",
                        b"Content-Length: abc",
                        b"Content-Length: 99999999999999999999",
                        b"Content-Length: 5\r\nContent-Length: 7",
                    ]
                )
            )
        )
    elif framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked")
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    elif framing == "chunked-bad":
        headers.append(b"Transfer-Encoding: chunked")
        body = draw(st.sampled_from([b"zz\r\nabc", b"5\r\nab", b"ffffffffffffffff\r\n", b"3\r\nabc"]))
    elif framing in ("gzip", "gzip-bad"):
        headers.append(b"Content-Encoding: gzip")
        body = gzip.compress(body) if framing == "gzip" else b"\x1f\x8b\x08garbage"
        headers.append(b"Content-Length: %d" % len(body))
    else:
        headers.append(b"Connection: close")
    status = draw(st.sampled_from(_STATUS_LINES))
    hold = draw(st.sampled_from([0.0, 0.0, 0.0, 0.3]))  # keep the connection open a while after sending
    return status + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body, hold


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reply=raw_http())
def test_raw_http_from_a_fhir_server_never_5xx(tmp_path_factory, reply):
    import socket
    import threading
    import time as _time

    from hooks.wsgi import create_app

    raw, hold = reply
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        listener.settimeout(5)
        try:
            while True:
                conn, _ = listener.accept()
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(raw)
                    _time.sleep(hold)
        except OSError:
            return

    threading.Thread(target=serve, daemon=True).start()
    if "raw" not in _FHIR_APPS:
        path = tmp_path_factory.mktemp("fuzz-raw") / "f.db"
        _FHIR_APPS["raw"] = create_app(
            {
                "database_url": f"sqlite:///{path}",
                "fhir_call_deadline": 0.5,
                "fhir_read_timeout": 0.4,
                "fhir_connect_timeout": 0.4,
                "fhir_allow_loopback": True,
            }
        )
    try:
        body = hook_request("patient-view", fhirServer=f"http://127.0.0.1:{port}/fhir")
        body["prefetch"].pop("conditions")
        body["prefetch"].pop("labs")
        resp = call(_FHIR_APPS["raw"].test_client(), body)  # type: ignore[attr-defined]
    finally:
        listener.close()
    assert resp.status_code in (200, 412), resp.get_data(as_text=True)[:300]
    assert resp.mimetype == "application/json"
