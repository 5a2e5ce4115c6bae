"""CORS: the preflight with Private Network Access, and the origin patterns (exact origins, anchored '*.' wildcards)."""

from __future__ import annotations

import pytest

from tests.conftest import PRODUCTION


def test_cors_preflight_and_private_network_access(client):
    resp = client.options(
        "/cds-services/backpain-order-select",
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://sandbox.cds-hooks.org"
    assert resp.headers["Access-Control-Allow-Private-Network"] == "true"
    assert {"GET", "POST", "OPTIONS"} <= set(resp.headers["Access-Control-Allow-Methods"].replace(" ", "").split(","))
    assert {"content-type", "authorization"} <= set(
        resp.headers["Access-Control-Allow-Headers"].lower().replace(" ", "").split(",")
    )
    other = client.options(
        "/cds-services", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert "Access-Control-Allow-Origin" not in other.headers


# --- CORS pattern language: exact origins and anchored '*.' subdomain wildcards ------------------------------------

CORS_ORIGINS = [
    "https://*.ehr.example",
    "https://sandbox.cds-hooks.org",
    "http://localhost:8080",
    "https://fhir.example:8443",
    "https://[::1]:9443",
]


@pytest.fixture
def cors_client(tmp_path):
    from hooks.wsgi import create_app

    return create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "cors_origins": CORS_ORIGINS}).test_client()


def _cors_request(client, origin, method):
    """A browser's preflight of a hook call, or a plain GET of discovery, from ``origin``."""
    if method == "preflight":
        return client.options(
            "/cds-services/backpain-order-select",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
    return client.get("/cds-services", headers={"Origin": origin})


@pytest.mark.parametrize(
    "origin",
    [
        "https://portal.ehr.example",
        "https://a.b.ehr.example",
        "https://PORTAL.Ehr.Example",
        "https://x-1.ehr.example",
        "https://portal.ehr.example:443",
        "https://sandbox.cds-hooks.org",
        "https://sandbox.cds-hooks.org:443",
        "http://localhost:8080",
        "https://fhir.example:8443",
        "https://[::1]:9443",
    ],
)
@pytest.mark.parametrize("method", ["preflight", "get"])
def test_cors_reflects_an_allowed_origin(cors_client, origin, method):
    resp = _cors_request(cors_client, origin, method)
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == origin
    assert "Origin" in resp.headers["Vary"]


@pytest.mark.parametrize(
    "origin",
    [
        "https://ehr.example",  # the domain itself is not one of its subdomains
        "https://ehr.example.attacker.test",
        "https://portal.ehr.example.evil",
        "https://portal.ehr.example.attacker.test",
        "https://evilehr.example",
        "https://portal-ehr.example",
        "https://portal.evilehr.example",
        "https://.ehr.example",
        "https://a..ehr.example",
        "https://-a.ehr.example",
        "http://portal.ehr.example",
        "https://portal.ehr.example:8443",
        "https://portal.ehr.example/",
        "https://portal.ehr.example/x",
        "https://user@portal.ehr.example",
        "https://sandbox.cds-hooks.org.evil",
        "https://xsandbox.cds-hooks.org",
        "https://sandbox.cds-hooks.org:8443",
        "http://sandbox.cds-hooks.org",
        "https://sandboxxcds-hooks.org",
        "http://localhost:8081",
        "http://localhost",
        "https://localhost:8080",
        "http://localhost:80800",
        "https://fhir.example",
        "https://fhir.example:443",
        "https://[::2]:9443",
        "null",
        "",
        "*",
    ],
)
@pytest.mark.parametrize("method", ["preflight", "get"])
def test_cors_refuses_an_origin_not_listed(cors_client, origin, method):
    resp = _cors_request(cors_client, origin, method)
    assert "Access-Control-Allow-Origin" not in resp.headers


@pytest.mark.parametrize(
    "entry",
    [
        "https://ehr.example/",
        "https://ehr.example/path",
        "https://*.example",
        "https://*",
        "https://a.*.ehr.example",
        "https://**.ehr.example",
        "https://*ehr.example",
        "*.ehr.example",
        "ehr.example",
        "ftp://ehr.example",
        "https://",
        "https://ehr.example:99999",
        "https://ehr.example:0",
        "https://user@ehr.example",
        "https://ehr.example?x=1",
        "https://ehr.example#x",
        "https://ehr_example.org",
        "https://[not-v6]",
        "https://ehr.example:",
        " https://ehr.example",
    ],
)
def test_a_malformed_cors_entry_is_refused_at_start_up(entry):
    from cds_service.config import load_settings

    with pytest.raises(ValueError, match="cors_origins entry"):
        load_settings(overrides={"cors_origins": [entry]})


def test_cors_wildcard_alone_is_for_development_only(tmp_path):
    from cds_service.config import load_settings
    from hooks.wsgi import create_app

    resp = (
        create_app({"database_url": f"sqlite:///{tmp_path}/f.db", "cors_origins": ["*"]})
        .test_client()
        .get("/cds-services", headers={"Origin": "https://anything.example"})
    )
    assert resp.headers["Access-Control-Allow-Origin"] in ("*", "https://anything.example")
    with pytest.raises(ValueError, match="only acceptable in development"):
        load_settings(overrides={**PRODUCTION, "cors_origins": ["*"]})
