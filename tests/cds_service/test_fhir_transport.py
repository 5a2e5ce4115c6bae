"""The per-call deadline bounds the whole outbound exchange whatever the FHIR server does: real sockets on 127.0.0.1
that drip the status line, the headers, the TLS handshake or the body a byte at a time (each byte well within the read
timeout, so a read timeout alone never fires), accept and never answer, or answer page 1 and drip page 2; a name that
takes long to resolve. The hook still answers per the spec, in JSON, within the deadline plus slack."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from bench.loadgen import ServerProcess
from cds_service.config import load_settings
from cds_service.errors import FHIRAccessError
from cds_service.fhir_client import Deadline, FHIRClient
from hooks.wsgi import create_app
from tests.conftest import call, hook_request

DEADLINE = 0.5
SLACK = 1.2  # a noisy shared machine; a dripping server would otherwise hold the call for DRIP_FOR seconds
DRIP_EVERY = 0.2  # well inside the read timeout below: each byte restarts it
DRIP_FOR = 8.0  # how long a server keeps dripping (the call must end long before)
FAST = {
    "fhir_call_deadline": DEADLINE,
    "fhir_read_timeout": 0.4,
    "fhir_connect_timeout": 0.4,
    "fhir_allow_loopback": True,
}
BUNDLE = b'{"resourceType": "Bundle", "type": "searchset", "entry": []}'


def _drip(conn: socket.socket, data: bytes, stop: threading.Event) -> None:
    end = time.monotonic() + DRIP_FOR
    for i in range(len(data)):
        if stop.is_set() or time.monotonic() > end:
            return
        conn.sendall(data[i : i + 1])
        time.sleep(DRIP_EVERY)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _headers(body_length: int | None) -> bytes:
    length = f"Content-Length: {body_length}\r\n" if body_length is not None else "Connection: close\r\n"
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n{length}\r\n".encode()


def drip_headers(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
    _drip(conn, _headers(len(BUNDLE)) + BUNDLE, stop)


def drip_body(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
    conn.sendall(_headers(len(BUNDLE)))
    _drip(conn, BUNDLE, stop)


def complete_json_then_spaces(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
    """No length: the body ends when the connection does. What was read when the deadline cut it is valid JSON —
    and still must not be taken for the whole answer."""
    conn.sendall(_headers(None) + BUNDLE)
    _drip(conn, b" " * 1000, stop)


def silent(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
    stop.wait(DRIP_FOR)


def tls_drip(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
    """Answers the ClientHello with a TLS record header announcing 16 KB, then drips it (the handshake never ends)."""
    _drip(conn, b"\x16\x03\x03\x40\x00" + b"\x02" * 100, stop)


def second_page_drips(port: int) -> Callable[[socket.socket, bytes, threading.Event], None]:
    """Page 1 at once (and the connection closed, so page 2 comes on a new one), page 2 dripped."""

    def handle(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        if b"page=2" in request.split(b"\r\n", 1)[0]:
            drip_body(conn, request, stop)
            return
        page1 = (
            b'{"resourceType": "Bundle", "type": "searchset", "entry": [], "link": [{"relation": "next", "url": '
            b'"http://127.0.0.1:%d/fhir/Condition?page=2"}]}' % port
        )
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(page1), page1)
        )
        conn.close()
        PAGES_SERVED.append(1)

    return handle


PAGES_SERVED: list[int] = []


@contextlib.contextmanager
def serving(behaviour: Callable[..., None] | str, *, read_request: bool = True) -> Iterator[int]:
    """A TCP server on 127.0.0.1 handling every connection in its own thread; stopped and its sockets closed on exit."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    handler = second_page_drips(port) if behaviour == "second-page" else behaviour
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve_one(conn: socket.socket) -> None:
        try:
            request = _read_request(conn) if read_request else b""
            handler(conn, request, stop)  # type: ignore[operator]
            stop.wait(DRIP_FOR)  # never close first: the client must end the exchange itself
        except OSError:
            pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conns.append(conn)
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield port
    finally:
        stop.set()
        listener.close()
        for conn in conns:
            conn.close()


BEHAVIOURS = {
    "drip-headers": drip_headers,
    "drip-body": drip_body,
    "json-then-spaces": complete_json_then_spaces,
    "silent": silent,
    "second-page": "second-page",
}


def _missing(body: dict, *keys: str) -> dict:
    for key in keys:
        body["prefetch"].pop(key)
    return body


@pytest.fixture
def fast_client(tmp_path):
    return create_app({"database_url": f"sqlite:///{tmp_path}/f.db", **FAST}).test_client()


def _timed(fn: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.monotonic()
    resp = fn()
    return resp, time.monotonic() - started


@pytest.mark.parametrize("behaviour", list(BEHAVIOURS) + ["tls-drip"])
def test_a_required_key_from_a_stalling_server_is_a_json_412_within_the_deadline(fast_client, behaviour):
    with serving(tls_drip if behaviour == "tls-drip" else BEHAVIOURS[behaviour]) as port:
        scheme = "https" if behaviour == "tls-drip" else "http"
        body = _missing(hook_request("patient-view", fhirServer=f"{scheme}://127.0.0.1:{port}/fhir"), "conditions")
        resp, elapsed = _timed(lambda: call(fast_client, body))
    assert resp.status_code == 412
    assert resp.mimetype == "application/json"
    issue = resp.get_json()["issue"][0]
    assert resp.get_json()["resourceType"] == "OperationOutcome" and issue["expression"] == ["prefetch.conditions"]
    assert "deadline" in issue["diagnostics"] or "timed out" in issue["diagnostics"]
    assert elapsed < DEADLINE + SLACK


@pytest.mark.parametrize("behaviour", ["drip-headers", "drip-body", "silent"])
def test_an_optional_key_from_a_stalling_server_still_gets_the_cards(fast_client, behaviour):
    with serving(BEHAVIOURS[behaviour]) as port:
        body = _missing(hook_request("patient-view", fhirServer=f"http://127.0.0.1:{port}/fhir"), "labs")
        resp, elapsed = _timed(lambda: call(fast_client, body))
    assert resp.status_code == 200
    assert resp.get_json() == {"cards": []}
    assert elapsed < DEADLINE + SLACK


def test_page_one_is_read_and_page_two_is_cut_at_the_deadline(fast_client):
    PAGES_SERVED.clear()
    with serving("second-page") as port:
        body = _missing(hook_request("patient-view", fhirServer=f"http://127.0.0.1:{port}/fhir"), "conditions")
        resp, elapsed = _timed(lambda: call(fast_client, body))
    assert PAGES_SERVED == [1]
    assert resp.status_code == 412
    assert "deadline" in resp.get_json()["issue"][0]["diagnostics"]
    assert elapsed < DEADLINE + SLACK


def test_several_missing_keys_share_one_deadline(fast_client):
    with serving(drip_body) as port:
        body = _missing(
            hook_request("patient-view", fhirServer=f"http://127.0.0.1:{port}/fhir"),
            "labs",
            "findings",
            "allergies",
            "conditions",
        )
        resp, elapsed = _timed(lambda: call(fast_client, body))
    assert resp.status_code == 412
    assert elapsed < DEADLINE + SLACK  # not one deadline (or read timeout) per key


def test_a_slow_name_lookup_is_bounded_by_the_deadline(tmp_path):
    def slow_dns(host: str, port: int) -> list[str]:
        time.sleep(4)
        return ["93.184.216.34"]

    app = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", **FAST}, resolver=slow_dns)
    body = _missing(hook_request("patient-view", fhirServer="https://slow-dns.example/fhir"), "conditions")
    resp, elapsed = _timed(lambda: call(app.test_client(), body))
    assert resp.status_code == 412
    assert "name resolution" in resp.get_json()["issue"][0]["diagnostics"]
    assert elapsed < DEADLINE + SLACK


def test_the_watchdog_is_stopped_when_the_call_ends(fast_client):
    with serving(lambda conn, request, stop: conn.sendall(_headers(len(BUNDLE)) + BUNDLE)) as port:
        body = _missing(hook_request("patient-view", fhirServer=f"http://127.0.0.1:{port}/fhir"), "conditions")
        assert call(fast_client, body).status_code == 200
    time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name == "fhir-deadline" and t.is_alive()]


def test_the_client_alone_honours_the_deadline_too():
    settings = load_settings(overrides=FAST)
    with serving(drip_headers) as port:
        client = FHIRClient(f"http://127.0.0.1:{port}/fhir", settings, deadline=Deadline(DEADLINE))
        started = time.monotonic()
        with pytest.raises(FHIRAccessError, match="per-call deadline exceeded"):
            client.read("Patient/p1")
        assert time.monotonic() - started < DEADLINE + SLACK
        with pytest.raises(FHIRAccessError, match="per-call deadline exceeded"):  # spent: no new request is made
            client.read("Patient/p1")
        client.close()


@pytest.mark.parametrize("behaviour", ["drip-headers", "drip-body"])
def test_through_an_http_proxy_the_deadline_holds_too(tmp_path, monkeypatch, behaviour):
    """HTTP_PROXY in the environment: the connection goes to the proxy (not pinned), and is watched all the same."""
    with serving(BEHAVIOURS[behaviour]) as proxy_port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        app = create_app(
            {
                "database_url": f"sqlite:///{tmp_path}/f.db",
                **FAST,
                "fhir_allowed_origins": ["http://fhir.proxied.test"],
            },
            resolver=lambda h, p: ["127.0.0.1"],
        )
        body = _missing(hook_request("patient-view", fhirServer="http://fhir.proxied.test/fhir"), "conditions")
        resp, elapsed = _timed(lambda: call(app.test_client(), body))
    assert resp.status_code == 412
    assert elapsed < DEADLINE + SLACK


@pytest.mark.parametrize("behaviour", ["drip-headers", "drip-body", "silent"])
def test_a_dripping_jwks_endpoint_fails_closed_within_its_deadline(tmp_path, monkeypatch, behaviour):
    from cds_service.auth import Authenticator
    from tests.cds_service.auth_support import ISS, token

    monkeypatch.setattr(Authenticator, "JWKS_DEADLINE", DEADLINE, raising=False)
    with serving(BEHAVIOURS[behaviour]) as port:
        jku = f"http://127.0.0.1:{port}/jwks.json"
        app = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "trusted_clients": [{"iss": ISS, "jku": jku}]})
        tok = token(jku=jku)
        resp, elapsed = _timed(
            lambda: app.test_client().post(
                "/cds-services/backpain-patient-view",
                json=hook_request("patient-view"),
                headers={"Authorization": f"Bearer {tok}"},
            )
        )
    assert resp.status_code == 401
    assert elapsed < DEADLINE + SLACK


@pytest.mark.slow
def test_under_gunicorn_a_dripping_server_gets_a_json_412_not_a_worker_timeout(tmp_path):
    """Before: the call ran until gunicorn killed the worker at 30 s and the EHR got gunicorn's HTML 500."""
    config = (
        "fhir_call_deadline = 1.0\nfhir_read_timeout = 0.5\nfhir_connect_timeout = 0.5\nfhir_allow_loopback = true\n"
    )
    with ServerProcess(workers=1, extra_config=config) as server, serving(drip_headers) as port:
        body = _missing(hook_request("patient-view", fhirServer=f"http://127.0.0.1:{port}/fhir"), "conditions")
        resp, elapsed = _timed(
            lambda: requests.post(f"{server.url}/cds-services/backpain-patient-view", json=body, timeout=60)
        )
        log = (server.dir / "server.log").read_text()
    assert resp.status_code == 412
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json()["issue"][0]["expression"] == ["prefetch.conditions"]
    assert elapsed < 1.0 + SLACK
    assert "WORKER TIMEOUT" not in log
