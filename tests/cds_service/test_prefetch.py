"""Prefetch resolution exactly as the spec table; the FHIR client's limits; SSRF-safe targets."""

from __future__ import annotations

import contextlib
import http.server
import ssl
import threading

import pytest
import requests
import responses
from responses import matchers

from cds_service.config import load_settings
from cds_service.errors import FHIRAccessError, FHIRTargetRefused
from cds_service.fhir_client import FHIRClient, check_address
from cds_service.prefetch import render
from hooks.wsgi import create_app
from tests.conftest import NOW, PREFETCH_KEYS, PRODUCTION, bundle, call, fake_resolver, hook_request, patient

BASE = "https://ehr.example.org/fhir"
AUTH = {"access_token": "tok-123-SECRET", "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "cds-service"}
EMPTY = {"resourceType": "Bundle", "type": "searchset", "entry": []}


def _missing(*keys):
    body = hook_request("patient-view", fhirServer=BASE, fhirAuthorization=AUTH)
    for key in keys:
        body["prefetch"].pop(key)
    return body


def test_render_url_encodes_token_values():
    assert render("Patient/{{context.patientId}}", {"patientId": "a b/c?d"}) == "Patient/a%20b%2Fc%3Fd"
    assert render("Condition?patient={{context.patientId}}", {"patientId": "Patient/123"}) == "Condition?patient=123"
    assert render("Practitioner/{{userPractitionerId}}", {"userId": "Practitioner/9"}) == "Practitioner/9"
    assert render("Practitioner/{{userPractitionerId}}", {"userId": "PractitionerRole/9"}) is None
    assert render("Encounter/{{context.encounterId}}", {}) is None


def test_absent_key_is_fetched_with_exact_url_and_bearer_token(client, mocked):
    mocked.get(f"{BASE}/Condition", match=[matchers.query_string_matcher("patient=Patient/p1"),
                                           matchers.header_matcher({"Authorization": "Bearer tok-123-SECRET"})], json=EMPTY)
    resp = call(client, _missing("conditions"))
    assert resp.status_code == 200
    assert len(mocked.calls) == 1
    assert mocked.calls[0].request.url == f"{BASE}/Condition?patient=Patient/p1"
    assert mocked.calls[0].request.headers["Accept"].startswith("application/fhir+json")


def test_open_server_needs_no_token(client, mocked):
    body = _missing("patient")
    body.pop("fhirAuthorization")
    mocked.get(f"{BASE}/Patient/p1", json=patient("p1"))
    assert call(client, body).status_code == 200
    assert "Authorization" not in mocked.calls[0].request.headers


def test_patient_id_with_reference_form_is_encoded_bare(client, mocked):
    body = _missing("medications")
    body["context"]["patientId"] = "Patient/p1"
    mocked.get(f"{BASE}/MedicationRequest", match=[matchers.query_string_matcher("patient=Patient/p1")], json=EMPTY)
    assert call(client, body).status_code == 200


def test_null_means_empty_and_is_never_refetched(client, mocked):
    assert call(client, hook_request("patient-view", fhirServer=BASE, fhirAuthorization=AUTH)).status_code == 200
    assert len(mocked.calls) == 0


def test_operation_outcome_is_refetched(client, mocked):
    body = hook_request("patient-view", fhirServer=BASE)
    body["prefetch"]["conditions"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    mocked.get(f"{BASE}/Condition", json=EMPTY)
    assert call(client, body).status_code == 200
    assert len(mocked.calls) == 1


def test_operation_outcome_without_server_is_412(client):
    body = hook_request("patient-view")
    body["prefetch"]["conditions"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    resp = call(client, body)
    assert resp.status_code == 412
    assert resp.get_json()["issue"][0]["expression"] == ["prefetch.conditions"]


def test_optional_key_unobtainable_is_not_fatal(client):
    body = hook_request("patient-view")
    body["prefetch"].pop("labs")
    assert call(client, body).status_code == 200


def test_paged_prefetch_follows_next_on_same_origin(client, mocked):
    page1 = {"resourceType": "Bundle", "type": "searchset", "link": [{"relation": "next", "url": f"{BASE}/Condition?page=2"}],
             "entry": []}
    mocked.get(f"{BASE}/Condition", match=[matchers.query_string_matcher("page=2")],
               json={"resourceType": "Bundle", "type": "searchset", "entry": []})
    body = hook_request("patient-view", fhirServer=BASE)
    body["prefetch"]["conditions"] = page1
    assert call(client, body).status_code == 200
    assert mocked.calls[0].request.url == f"{BASE}/Condition?page=2"


@pytest.mark.parametrize("next_url", ["https://evil.example.org/fhir/Condition?page=2", "http://ehr.example.org/fhir/Condition?page=2",
                                      "https://ehr.example.org:8443/fhir/Condition?page=2"])
def test_next_link_on_another_origin_is_not_followed(client, mocked, next_url):
    body = hook_request("patient-view", fhirServer=BASE)
    body["prefetch"]["conditions"] = {"resourceType": "Bundle", "type": "searchset", "entry": [],
                                      "link": [{"relation": "next", "url": next_url}]}
    resp = call(client, body)
    assert resp.status_code == 412
    assert len(mocked.calls) == 0


def test_page_cap(tmp_path, mocked):
    app = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "fhir_max_pages": 3}, resolver=fake_resolver, clock=lambda: NOW)
    for i in range(2, 4):
        mocked.get(f"{BASE}/Condition", match=[matchers.query_string_matcher(f"page={i}")],
                   json={"resourceType": "Bundle", "link": [{"relation": "next", "url": f"{BASE}/Condition?page={i + 1}"}], "entry": []})
    body = hook_request("patient-view", fhirServer=BASE)
    body["prefetch"]["conditions"] = {"resourceType": "Bundle", "link": [{"relation": "next", "url": f"{BASE}/Condition?page=2"}], "entry": []}
    resp = call(app.test_client(), body)
    assert resp.status_code == 412
    assert len(mocked.calls) == 2


@pytest.mark.parametrize("reply", [
    dict(status=401, json={"resourceType": "OperationOutcome"}),
    dict(status=403, json={}),
    dict(status=404, json={}),
    dict(status=500, body="oops"),
    dict(status=200, body="<html>not json</html>"),
    dict(status=200, json=[1, 2, 3]),
    dict(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data"}),
    dict(status=200, body=requests.exceptions.ConnectTimeout("slow")),
    dict(status=200, body=requests.exceptions.ReadTimeout("slow")),
    dict(status=200, body=requests.exceptions.ConnectionError("refused")),
])
def test_fhir_server_failures_give_412_naming_the_key_never_the_token(client, mocked, reply):
    mocked.get(f"{BASE}/Condition", **reply)
    resp = call(client, _missing("conditions"))
    assert resp.status_code == 412
    text = resp.get_data(as_text=True)
    assert "prefetch.conditions" in text and "tok-123-SECRET" not in text
    urls = [c.request.url.split("?")[0] for c in mocked.calls]
    # no redirect followed, no retry storm; a 4xx "unknown type" answer also asks the server its FHIR version once
    expected = [f"{BASE}/Condition"] + ([f"{BASE}/metadata"] if reply.get("status") in (404,) else [])
    assert urls == expected


def test_response_size_cap(tmp_path, mocked):
    app = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "fhir_max_response_bytes": 2000}, resolver=fake_resolver)
    mocked.get(f"{BASE}/Condition", json={"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Basic", "id": "x" * 5000}}]})
    assert call(app.test_client(), _missing("conditions")).status_code == 412


def test_timeouts_and_no_redirects_are_passed_to_requests(monkeypatch):
    settings = load_settings(overrides={"fhir_connect_timeout": 1.5, "fhir_read_timeout": 2.0})
    seen = {}

    class Session(requests.Session):
        def get(self, url, **kw):  # type: ignore[override]
            seen.update(kw)
            raise requests.exceptions.ConnectTimeout()

    client = FHIRClient(BASE, settings, session=Session(), resolver=fake_resolver)
    with pytest.raises(FHIRAccessError):
        client.read("Patient/1")
    assert seen["allow_redirects"] is False and seen["stream"] is True
    connect, read = seen["timeout"]
    assert 0 < connect <= 1.5 and 0 < read <= 2.0


def test_deadline_across_all_fetches(tmp_path, mocked):
    app = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "fhir_call_deadline": 0.5, "fhir_read_timeout": 0.5},
                     resolver=fake_resolver)
    import time

    def slow(request):
        time.sleep(0.3)
        return (200, {}, '{"resourceType": "Bundle", "entry": []}')

    mocked.add_callback(responses.GET, f"{BASE}/Condition", callback=slow)
    mocked.add_callback(responses.GET, f"{BASE}/MedicationRequest", callback=slow)
    mocked.assert_all_requests_are_fired = False
    started = time.monotonic()
    resp = call(app.test_client(), _missing("conditions", "medications", "serviceRequests"))
    assert resp.status_code == 412
    assert time.monotonic() - started < 1.5
    assert len(mocked.calls) <= 2


# --- SSRF ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("server, reason", [
    ("http://169.254.169.254/latest", "allowlist"),  # http to a non-loopback host is not allowlisted
    ("https://169.254.169.254/fhir", "link-local"),
    ("https://metadata.internal/fhir", "link-local"),
    ("https://10.1.2.3/fhir", "private"),
    ("https://192.168.1.1/fhir", "private"),
    ("https://172.16.0.1/fhir", "private"),
    ("https://intranet.example.org/fhir", "private"),
    ("https://[fe80::1]/fhir", "link-local"),
    ("https://[fd00:ec2::254]/fhir", "link-local"),
    ("https://v6local.example.org/fhir", "link-local"),
    ("https://[::ffff:10.0.0.1]/fhir", "private"),
    ("https://0.0.0.0/fhir", "unroutable"),
    ("https://100.64.0.1/fhir", "private"),
    ("https://user:pw@ehr.example.org/fhir", "credentials"),
    ("gopher://ehr.example.org/", "http"),
])
def test_ssrf_targets_are_refused_without_any_request(server, reason, mocked):
    settings = load_settings()
    with pytest.raises(FHIRTargetRefused, match=reason):
        FHIRClient(server, settings, resolver=fake_resolver).read("Patient/1")
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "2130706433"])
def test_loopback_allowed_in_development_only(address):
    dev = load_settings()
    prod = load_settings(overrides=PRODUCTION)  # loopback is refused by default in production
    import ipaddress
    literal = str(ipaddress.ip_address(int(address))) if address.isdigit() else address
    check_address(literal, dev)
    with pytest.raises(FHIRTargetRefused):
        check_address(literal, prod)


def test_production_refuses_http_origins():
    with pytest.raises(ValueError, match="https"):
        load_settings(overrides={**PRODUCTION, "fhir_allowed_origins": ["http://ehr.example.org"]})


def test_fhir_server_not_on_allowlist_gives_412_without_request(tmp_path, mocked):
    app = create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "fhir_allowed_origins": ["https://fhir.hospital.org"]},
                     resolver=fake_resolver)
    resp = call(app.test_client(), _missing("conditions"))
    assert resp.status_code == 412
    assert len(mocked.calls) == 0


def test_missing_keys_without_fhir_server_give_412():
    from tests.conftest import sequential_uuids  # noqa: F401

    body = hook_request("patient-view")
    for key in PREFETCH_KEYS:
        body["prefetch"].pop(key, None)
    app = create_app({"database_url": "sqlite:///:memory:"}, resolver=fake_resolver)
    resp = call(app.test_client(), body)
    assert resp.status_code == 412
    assert resp.get_json()["issue"][0]["expression"] == ["prefetch.patient"]


def test_prefetched_bundle_used_as_is(client, mocked):
    body = hook_request("patient-view", prefetch={"conditions": bundle()})
    assert call(client, body).status_code == 200
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("metadata, expected", [
    ({"resourceType": "Conformance", "fhirVersion": "1.0.2"}, "DSTU2"),
    ({"resourceType": "CapabilityStatement", "fhirVersion": "3.0.2"}, "STU3"),
])
def test_pre_r4_fhir_server_gets_one_clear_info_card_instead_of_412(client, mocked, metadata, expected):
    body = hook_request("patient-view", fhirServer=BASE)
    body["prefetch"].pop("medications")
    mocked.get(f"{BASE}/MedicationRequest", status=404, json={"resourceType": "OperationOutcome"})
    mocked.get(f"{BASE}/metadata", json=metadata)
    resp = call(client, body)
    assert resp.status_code == 200
    [card] = resp.get_json()["cards"]
    assert card["indicator"] == "info" and card["source"]["topic"]["code"] == "fhir-version-unsupported"
    assert card["summary"] == f"This EHR's FHIR server is {expected}: back-pain checks need FHIR R4 and were not run."
    assert "`medications`" in card["detail"]


def test_r4_server_that_fails_still_gets_412(client, mocked):
    body = hook_request("patient-view", fhirServer=BASE)
    body["prefetch"].pop("medications")
    mocked.get(f"{BASE}/MedicationRequest", status=404, json={"resourceType": "OperationOutcome"})
    mocked.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"})
    assert call(client, body).status_code == 412


def test_fhir_server_401_still_gives_our_412(client, mocked):
    mocked.get(f"{BASE}/Condition", status=401, json={"resourceType": "OperationOutcome"})
    resp = call(client, _missing("conditions"))
    assert resp.status_code == 412
    assert resp.get_json()["issue"][0]["code"] == "incomplete"


class _Recorder(http.server.BaseHTTPRequestHandler):
    hosts: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        _Recorder.hosts.append(self.headers.get("Host", ""))
        body = b'{"resourceType": "Patient", "id": "1"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _serving(tls: ssl.SSLContext | None = None):
    """A FHIR-ish server on 127.0.0.1 (its port), over TLS when given a context; stopped on exit."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.hosts = []
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def local_fhir():
    with _serving() as port:
        yield port


def test_the_connection_goes_to_the_checked_address_not_to_a_second_lookup(local_fhir):
    """DNS rebinding: the name is resolved once, by the SSRF check, and the socket opens to that very address.

    ``fhir.rebind.test`` exists only for the check's resolver (``.test`` never resolves in DNS): a client that looked the
    name up again to connect would fail; this one reaches the server, and the server sees the name in Host."""
    port = local_fhir
    lookups = []

    def resolver(host, p):
        lookups.append((host, p))
        return ["127.0.0.1"]

    settings = load_settings(overrides={"fhir_allowed_origins": [f"http://fhir.rebind.test:{port}"]})
    client = FHIRClient(f"http://fhir.rebind.test:{port}/fhir", settings, resolver=resolver)
    assert client.read("Patient/1") == {"resourceType": "Patient", "id": "1"}
    assert client.read("Patient/1")["id"] == "1"
    assert lookups == [("fhir.rebind.test", port)]  # once, whatever the number of requests
    assert _Recorder.hosts == [f"fhir.rebind.test:{port}"] * 2


def test_a_name_the_check_refused_is_never_connected(local_fhir):
    port = local_fhir
    settings = load_settings(overrides={"fhir_allowed_origins": [f"http://fhir.rebind.test:{port}"], "fhir_allow_loopback": False})
    with pytest.raises(FHIRTargetRefused, match="loopback"):
        FHIRClient(f"http://fhir.rebind.test:{port}/fhir", settings, resolver=lambda h, p: ["127.0.0.1"])
    assert _Recorder.hosts == []


def _self_signed(tmp_path, name: str):
    """A certificate for ``name`` (its own issuer) and its key, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.mark.parametrize("name, verified", [("fhir.rebind.test", True), ("other.rebind.test", False)])
def test_https_to_the_checked_address_still_verifies_the_certificate_for_the_name(tmp_path, monkeypatch, name, verified):
    """TLS over the pinned socket: SNI and the certificate check use the server's name, not its address."""
    cert_file, key_file = _self_signed(tmp_path, name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    with _serving(context) as port:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_file))  # trust this test's certificate only
        settings = load_settings(overrides={"fhir_allowed_origins": [f"https://fhir.rebind.test:{port}"]})
        client = FHIRClient(f"https://fhir.rebind.test:{port}/fhir", settings, resolver=lambda h, p: ["127.0.0.1"])
        if verified:
            assert client.read("Patient/1")["id"] == "1"
            assert _Recorder.hosts == [f"fhir.rebind.test:{port}"]
        else:  # a certificate for another name is refused even though the address is the checked one
            with pytest.raises(FHIRAccessError, match="unreachable"):
                client.read("Patient/1")
            assert _Recorder.hosts == []
