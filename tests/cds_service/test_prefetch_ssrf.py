"""SSRF-safe FHIR targets: refused addresses and origins, the socket pinned to the checked address (DNS, TLS)."""

from __future__ import annotations

import contextlib
import http.server
import ssl
import threading

import pytest

from cds_service.config import load_settings
from cds_service.errors import FHIRAccessError, FHIRTargetRefused
from cds_service.fhir_client import FHIRClient, check_address
from hooks.wsgi import create_app
from tests.cds_service.prefetch_support import _missing
from tests.conftest import PRODUCTION, call, fake_resolver


@pytest.mark.parametrize(
    "server, reason",
    [
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
    ],
)
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
    app = create_app(
        {"database_url": f"sqlite:///{tmp_path}/f.db", "fhir_allowed_origins": ["https://fhir.hospital.org"]},
        resolver=fake_resolver,
    )
    resp = call(app.test_client(), _missing("conditions"))
    assert resp.status_code == 412
    assert len(mocked.calls) == 0


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

    ``fhir.rebind.test`` exists only for the check's resolver (``.test`` never resolves in DNS): a client that looked
    the name up again to connect would fail; this one reaches the server, and the server sees the name in Host."""
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
    settings = load_settings(
        overrides={"fhir_allowed_origins": [f"http://fhir.rebind.test:{port}"], "fhir_allow_loopback": False}
    )
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
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.mark.parametrize("name, verified", [("fhir.rebind.test", True), ("other.rebind.test", False)])
def test_https_to_the_checked_address_still_verifies_the_certificate_for_the_name(
    tmp_path, monkeypatch, name, verified
):
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
