"""Fixtures shared by the service's tests: ``secured``, an app trusting the test issuer's JWKS (auth_support.py)."""

from __future__ import annotations

from typing import Any

import pytest

from hooks.wsgi import create_app
from tests.cds_service.auth_support import ISS, JKU


@pytest.fixture
def secured(tmp_path):
    def make(**settings: Any):
        base = {
            "database_url": f"sqlite:///{tmp_path}/f.db",
            "trusted_clients": [{"iss": ISS, "jku": JKU, "tenants": []}],
        }
        base.update(settings)
        return create_app(base).test_client()

    return make
