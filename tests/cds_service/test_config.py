"""environment = "production" is safe by default: what it changes, what it refuses to start without, the JWT audience
never taken from a request's Host or forwarded headers, and the Dockerfile's environment starting only when configured.
BPCDS_* environment variables are converted to their setting's type, and a value that does not convert is refused."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.loadgen import ServerProcess, free_port
from cds_service.cli import check_bind_safety, gunicorn_options
from cds_service.config import Settings, load_settings, reference
from cds_service.errors import FHIRTargetRefused
from cds_service.fhir_client import check_address
from hooks.wsgi import create_app
from tests.cds_service.auth_support import ISS, JWKS, token
from tests.conftest import PRODUCTION, ROOT, hook_request

PATH = "/cds-services/backpain-patient-view"


# --- defaults that change with the environment --------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, expected",
    [
        ({}, {"development": True, "production": False}),  # unset: the environment decides
        ({"override": False}, {"development": False, "production": False}),
        (
            {"override": True},
            {"development": True, "production": True},
        ),  # set explicitly: a sidecar FHIR server on this host
        ({"env": "true"}, {"development": True, "production": True}),
        ({"env": "false"}, {"development": False, "production": False}),
        ({"toml": "true"}, {"development": True, "production": True}),
        ({"toml": "false"}, {"development": False, "production": False}),
    ],
)
@pytest.mark.parametrize("environment", ["development", "production"])
def test_loopback_fhir_servers_are_refused_in_production_unless_set_explicitly(tmp_path, environment, source, expected):
    base: dict[str, Any] = PRODUCTION if environment == "production" else {}
    overrides = {**base, **({"fhir_allow_loopback": source["override"]} if "override" in source else {})}
    environ = {"BPCDS_FHIR_ALLOW_LOOPBACK": source["env"]} if "env" in source else {}
    config = None
    if "toml" in source:
        config = tmp_path / "c.toml"
        config.write_text(f"fhir_allow_loopback = {source['toml']}\n")
    settings = load_settings(config, overrides=overrides, environ=environ)
    assert settings.fhir_allow_loopback is expected[environment]
    if expected[environment]:
        check_address("127.0.0.1", settings)
    else:
        with pytest.raises(FHIRTargetRefused, match="loopback"):
            check_address("127.0.0.1", settings)


def test_a_settings_object_built_directly_follows_the_same_rule():
    assert Settings().fhir_allow_loopback is True
    assert Settings(environment="production").fhir_allow_loopback is False
    assert Settings(environment="production", fhir_allow_loopback=True).fhir_allow_loopback is True


# --- environment variables: each converted to its setting's type -------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("false", False),
        ("False", False),
        ("off", False),
        ("0", False),
        ("no", False),
        ("true", True),
        ("ON", True),
        ("1", True),
        ("yes", True),
        (" true ", True),
    ],
)
@pytest.mark.parametrize("environment", ["development", "production"])
def test_the_optional_loopback_switch_reads_booleans_from_the_environment(environment, raw, expected):
    base: dict[str, Any] = PRODUCTION if environment == "production" else {}
    settings = load_settings(overrides=base, environ={"BPCDS_FHIR_ALLOW_LOOPBACK": raw})
    assert settings.fhir_allow_loopback is expected


@pytest.mark.parametrize(
    "name, raw",
    [
        ("FHIR_ALLOW_LOOPBACK", "tru"),
        ("FHIR_ALLOW_LOOPBACK", ""),
        ("INSECURE", "ja"),
        ("DEV_PAGES", "2"),
        ("PORT", "8o80"),
        ("WORKERS", "2.5"),
        ("JWT_CLOCK_SKEW", ""),
        ("FHIR_CALL_DEADLINE", "3s"),
        ("FHIR_READ_TIMEOUT", "fast"),
        ("CORS_ORIGINS", '["https://a.example", 1]'),
        ("CORS_ORIGINS", "[https://a.example"),
        ("FORWARDED_ALLOW_IPS", "{}"),
        ("TRUSTED_CLIENTS", "https://ehr.example"),
        ("TRUSTED_CLIENTS", '["https://ehr.example"]'),
        ("THRESHOLD_KETOROLAC_MAX_DAYS", "five"),
        ("THRESHOLD_IMAGING_EARLY_DAYS", "6 weeks"),
    ],
)
def test_a_malformed_environment_value_is_refused_naming_its_variable(name, raw):
    with pytest.raises(ValueError, match=f"BPCDS_{name}\\b"):
        load_settings(environ={f"BPCDS_{name}": raw})


def test_numbers_and_strings_from_the_environment():
    settings = load_settings(
        environ={
            "BPCDS_PORT": "8181",
            "BPCDS_WORKERS": " 3 ",
            "BPCDS_FHIR_CALL_DEADLINE": "2.75",
            "BPCDS_FHIR_READ_TIMEOUT": "2",
            "BPCDS_JWKS_MAX_BYTES": "1_000_000",
            "BPCDS_PUBLIC_BASE_URL": "https://cds.example/backpain",
            "BPCDS_INSECURE": "yes",
        }
    )
    assert (settings.port, settings.workers, settings.jwks_max_bytes) == (8181, 3, 1_000_000)
    assert type(settings.port) is int and type(settings.workers) is int
    assert (
        settings.fhir_call_deadline == 2.75
        and settings.fhir_read_timeout == 2.0
        and type(settings.fhir_read_timeout) is float
    )
    assert settings.public_base_url == "https://cds.example/backpain" and settings.insecure is True


def test_lists_from_the_environment_as_json_or_comma_separated():
    clients = [{"iss": ISS, "jwks": JWKS, "tenants": ["hospital-a"]}]
    settings = load_settings(
        environ={
            "BPCDS_CORS_ORIGINS": " https://a.example , https://b.example,",
            "BPCDS_FHIR_ALLOWED_ORIGINS": '["https://fhir.example", "http://127.0.0.1:*"]',
            "BPCDS_FORWARDED_ALLOW_IPS": "10.0.0.2",
            "BPCDS_JWT_ALGORITHMS": '["ES384"]',
            "BPCDS_TRUSTED_CLIENTS": json.dumps(clients),
        }
    )
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.fhir_allowed_origins == ["https://fhir.example", "http://127.0.0.1:*"]
    assert settings.forwarded_allow_ips == ["10.0.0.2"] and settings.jwt_algorithms == ["ES384"]
    assert settings.trusted_clients == clients
    assert load_settings(environ={"BPCDS_CORS_ORIGINS": "[]"}).cors_origins == []


def test_thresholds_from_the_environment():
    settings = load_settings(
        environ={"BPCDS_THRESHOLD_KETOROLAC_MAX_DAYS": "4", "BPCDS_THRESHOLD_IMAGING_EARLY_DAYS": " 35.5"}
    )
    assert settings.thresholds == {"ketorolac_max_days": 4.0, "imaging_early_days": 35.5}


def test_every_setting_can_be_given_in_the_environment():
    """Each default, written as an environment variable, comes back as itself (no setting has a type the
    environment cannot express)."""

    def written(value: Any) -> str:
        return (
            json.dumps(value)
            if isinstance(value, (list, dict))
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )

    defaults = {key: default for key, default, _ in reference() if key != "thresholds" and default is not None}
    settings = load_settings(environ={f"BPCDS_{key.upper()}": written(value) for key, value in defaults.items()})
    assert {key: getattr(settings, key) for key in defaults} == defaults
    assert {key: type(getattr(settings, key)) for key in defaults} == {
        key: type(value) for key, value in defaults.items()
    }


@pytest.mark.parametrize(
    "change, message",
    [
        ({"public_base_url": ""}, "production requires public_base_url"),
        ({"public_base_url": "http://cds.hospital.example"}, "production requires public_base_url"),
        ({"public_base_url": "https://cds.hospital.example/?x=1"}, "public_base_url must be an absolute URL"),
        ({"public_base_url": "cds.hospital.example"}, "public_base_url must be an absolute URL"),
        ({"trusted_clients": []}, "production requires trusted_clients"),
        ({"insecure": True}, "insecure is never allowed in production"),
        ({"cors_origins": ["http://ehr.hospital.example"]}, "production requires https cors_origins"),
        ({"cors_origins": ["*"]}, "only acceptable in development"),
        ({"fhir_allowed_origins": ["http://127.0.0.1:*"]}, "production requires https FHIR origins"),
    ],
)
def test_production_refuses_to_start_when_it_would_be_unsafe(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_settings(overrides={**PRODUCTION, **change})


@pytest.mark.parametrize(
    "change",
    [
        {"metrics_port": 9464},
        {"metrics_port": 0, "metrics_bearer_token_file": "/run/secrets/metrics-token"},
        {"metrics_port": 0, "metrics_enabled": False},
    ],
)
def test_production_metrics_are_on_their_own_port_or_behind_a_token(change):
    load_settings(overrides={**PRODUCTION, **change})  # each of these starts


def test_production_refuses_metrics_open_on_the_hook_port():
    with pytest.raises(ValueError, match="production does not serve /metrics openly on the hook port"):
        load_settings(overrides={**PRODUCTION, "metrics_port": 0})
    load_settings(overrides={"metrics_port": 0})  # development: on the main port, open (loopback by default)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"metrics_port": 8080, "port": 8080}, "metrics_port must differ from port"),
        ({"metrics_port": 70000}, "metrics_port must be 0"),
        ({"ready_timeout": 0}, "ready_timeout must be more than 0"),
    ],
)
def test_metrics_and_readiness_settings_are_checked(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_settings(overrides=change)


def test_gunicorn_hooks_for_metrics():
    options = gunicorn_options(load_settings(overrides={"metrics_port": 9464}))
    assert callable(options["child_exit"]) and callable(options["when_ready"])
    assert "when_ready" not in gunicorn_options(load_settings())  # metrics on the main port: the workers answer
    assert "child_exit" not in gunicorn_options(load_settings(overrides={"metrics_enabled": False}))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "0.0.0.0"])
def test_production_requires_authentication_even_on_loopback(tmp_path, host):
    empty = tmp_path / "clients.json"
    empty.write_text("[]")  # configured, but no client in it
    settings = load_settings(overrides={**PRODUCTION, "trusted_clients": [], "trusted_clients_file": str(empty)})
    with pytest.raises(SystemExit, match="refusing to start in production without trusted JWT clients"):
        check_bind_safety(settings, host)
    check_bind_safety(load_settings(overrides=PRODUCTION), host)  # with a trusted client it starts


# --- the JWT audience ---------------------------------------------------------------------------------------------


@pytest.fixture
def production_client(tmp_path):
    settings = {
        **PRODUCTION,
        "database_url": f"sqlite:///{tmp_path}/f.db",
        "trusted_clients": [{"iss": ISS, "jwks": JWKS}],
    }
    return create_app(settings).test_client()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Host": "evil.example"},
        {"Host": "cds.hospital.example", "X-Forwarded-Proto": "http"},
        {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
    ],
)
def test_production_audience_is_public_base_url_whatever_the_request_says(production_client, headers):
    host = headers.get("X-Forwarded-Host") or headers.get("Host") or "localhost"
    from_request = token(jku=None, claims={"aud": f"{headers.get('X-Forwarded-Proto', 'http')}://{host}{PATH}"})
    spoofed = production_client.post(
        PATH, json=hook_request("patient-view"), headers={**headers, "Authorization": f"Bearer {from_request}"}
    )
    assert spoofed.status_code == 401
    good = token(jku=None, claims={"aud": f"https://cds.hospital.example{PATH}"})
    resp = production_client.post(
        PATH, json=hook_request("patient-view"), headers={**headers, "Authorization": f"Bearer {good}"}
    )
    assert resp.status_code == 200


@pytest.mark.parametrize(
    "allow, expected", [([], ""), (["10.0.0.2"], "10.0.0.2"), (["10.0.0.0/8", "::1"], "10.0.0.0/8,::1"), (["*"], "*")]
)
def test_forwarded_allow_ips_is_what_gunicorn_believes(allow, expected):
    assert gunicorn_options(load_settings(overrides={"forwarded_allow_ips": allow}))["forwarded_allow_ips"] == expected


def _clients_file(directory: Path) -> Path:
    path = directory / "clients.json"
    path.write_text(json.dumps([{"iss": ISS, "jwks": JWKS}]))
    return path


@pytest.mark.slow
def test_forwarded_proto_from_loopback_is_not_believed_by_default(tmp_path):
    """gunicorn's own default believes X-Forwarded-Proto from 127.0.0.1, so a local client could choose the scheme
    of the audience; with forwarded_allow_ips empty (the default) it cannot."""
    clients = _clients_file(tmp_path)
    with ServerProcess(workers=1, extra_config=f'trusted_clients_file = "{clients}"\n') as server:
        url = f"{server.url}{PATH}"
        as_https = token(jku=None, claims={"aud": url.replace("http://", "https://")})
        resp = requests.post(
            url,
            json=hook_request("patient-view"),
            timeout=10,
            headers={"Authorization": f"Bearer {as_https}", "X-Forwarded-Proto": "https"},
        )
        assert resp.status_code == 401
        as_called = token(jku=None, claims={"aud": url})
        resp = requests.post(
            url,
            json=hook_request("patient-view"),
            timeout=10,
            headers={"Authorization": f"Bearer {as_called}", "X-Forwarded-Proto": "https"},
        )
        assert resp.status_code == 200


# --- the Dockerfile's environment ---------------------------------------------------------------------------------


def _dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(item.split("=", 1) for item in shlex.split(line[4:]))  # type: ignore[misc]
    return env


@pytest.mark.slow
def test_the_dockerfile_environment_starts_in_production_only_once_configured(tmp_path):
    image = _dockerfile_env()
    assert image["BPCDS_ENVIRONMENT"] == "production"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPCDS_")} | image
    refused = subprocess.run(
        [sys.executable, "-m", "hooks.cli", "serve", "--host", "127.0.0.1", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert refused.returncode != 0
    assert (
        "backpain-cds: refusing to start: production requires" in refused.stderr and "Traceback" not in refused.stderr
    )
    env.update(
        {
            "BPCDS_PUBLIC_BASE_URL": "https://cds.hospital.example",
            "BPCDS_TRUSTED_CLIENTS_FILE": str(_clients_file(tmp_path)),
            "BPCDS_FHIR_ALLOWED_ORIGINS": '["https://fhir.hospital.example"]',
            "BPCDS_CORS_ORIGINS": "[]",
            "BPCDS_METRICS_PORT": str(free_port()),
        }
    )
    with ServerProcess(workers=1, env=env) as server:  # its config file names a database in its own directory
        assert requests.get(f"{server.url}/sandbox", timeout=5).status_code == 404  # no development pages
        assert requests.post(f"{server.url}{PATH}", json=hook_request("patient-view"), timeout=10).status_code == 401
        tok = token(jku=None, claims={"aud": f"https://cds.hospital.example{PATH}"})
        resp = requests.post(
            f"{server.url}{PATH}",
            json=hook_request("patient-view"),
            timeout=10,
            headers={"Authorization": f"Bearer {tok}"},
        )
        assert resp.status_code == 200, resp.text
