"""The prefetch tests' FHIR server and its token, and a request that leaves prefetch keys for the service to fetch."""

from __future__ import annotations

from tests.conftest import hook_request

BASE = "https://ehr.example.org/fhir"
AUTH = {
    "access_token": "tok-123-SECRET",
    "token_type": "Bearer",
    "expires_in": 300,
    "scope": "patient/*.read",
    "subject": "cds-service",
}


def _missing(*keys):
    body = hook_request("patient-view", fhirServer=BASE, fhirAuthorization=AUTH)
    for key in keys:
        body["prefetch"].pop(key)
    return body
