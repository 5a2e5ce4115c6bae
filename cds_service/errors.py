"""Typed errors with stable codes, mapped to HTTP in one handler (see app.py).

    CDSError                       (base; never leaves as a 500 with a trace)
    ├── BadRequest           400   malformed JSON, schema violation, hook mismatch
    ├── Unauthorized         401   bad or missing client JWT (bare body, no detail)
    ├── NotFound             404   unknown service
    ├── MethodNotAllowed     405
    ├── PayloadTooLarge      413
    ├── UnsupportedMediaType 415
    ├── PrefetchUnavailable  412   required prefetch key could not be obtained
    └── ReplayCacheUnavailable 503 the jti replay cache cannot answer: the call is not accepted (fail closed)

    FHIRAccessError                (internal: an outbound FHIR request failed; becomes 412 or "unavailable")
    └── FHIRTargetRefused          fhirServer or a link is not allowed (allowlist, SSRF ranges, origin)

Every non-2xx body is a FHIR OperationOutcome; messages never include tokens or request bodies.
"""

from __future__ import annotations

from typing import Any


class CDSError(Exception):
    status = 500
    code = "exception"  # FHIR IssueType
    error_id = "internal"

    def __init__(self, message: str, *, expression: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression

    def outcome(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": "error",
            "code": self.code,
            "details": {
                "coding": [{"system": "https://backpain-cds.example.org/CodeSystem/error", "code": self.error_id}]
            },
            "diagnostics": self.message,
        }
        if self.expression:
            issue["expression"] = [self.expression]
        return {"resourceType": "OperationOutcome", "issue": [issue]}


class BadRequest(CDSError):
    status, code, error_id = 400, "invalid", "bad-request"


class Unauthorized(CDSError):
    status, code, error_id = 401, "login", "unauthorized"

    def __init__(self, reason: str = "unauthorized") -> None:
        # The reason is for the log only; the response carries no detail.
        super().__init__("unauthorized")
        self.reason = reason
        self.iss: str | None = None  # for the log only
        self.jti: str | None = None


class NotFound(CDSError):
    status, code, error_id = 404, "not-found", "not-found"


class MethodNotAllowed(CDSError):
    status, code, error_id = 405, "not-supported", "method-not-allowed"


class PayloadTooLarge(CDSError):
    status, code, error_id = 413, "too-costly", "payload-too-large"


class UnsupportedMediaType(CDSError):
    status, code, error_id = 415, "not-supported", "unsupported-media-type"


class PrefetchUnavailable(CDSError):
    status, code, error_id = 412, "incomplete", "prefetch-unavailable"

    def __init__(self, key: str, reason: str, fhir_status: int | None = None, reason_code: str = "other") -> None:
        super().__init__(
            f"prefetch '{key}' is missing and could not be fetched: {reason}", expression=f"prefetch.{key}"
        )
        self.key = key
        self.fhir_status = fhir_status  # the FHIR server's answer; not this response's status
        self.reason_code = reason_code  # fetch_failure_reason: for metrics


class ReplayCacheUnavailable(CDSError):
    status, code, error_id = 503, "transient", "replay-cache-unavailable"

    def __init__(self, reason: str) -> None:
        # The token was not found wanting, but without the replay cache it cannot be accepted: fail closed.
        super().__init__("client authentication is unavailable (replay protection cannot answer); try again")
        self.reason = reason  # for the log only: the store and the exception class


class FHIRAccessError(Exception):
    """An outbound FHIR request failed (timeout, status, size, non-JSON, deadline)."""

    def __init__(self, message: str, fhir_status: int | None = None) -> None:
        super().__init__(message)
        self.fhir_status = fhir_status  # the FHIR server's HTTP status, when it answered


class FHIRTargetRefused(FHIRAccessError):
    """The target URL is not allowed (allowlist, address range, origin of a next link, redirect)."""


# Why an outbound fetch failed, as a fixed code (metrics labels): the first entry whose words the message contains. The
# messages are the FHIR client's own (fhir_client.py, fhir_transport.py, prefetch.py), never a server's text.
FETCH_FAILURE_REASONS = (
    ("redirect", "redirect"),
    ("deadline", "deadline"),
    ("timed out", "timeout"),
    ("larger than the configured cap", "size_cap"),
    ("page/entry cap", "page_cap"),
    ("answered HTTP", "status"),
    ("unreachable", "unreachable"),
    ("cannot resolve host", "dns"),
    ("has no address", "dns"),
    ("non-JSON", "invalid_response"),
    ("not a resource", "invalid_response"),
    ("not a Bundle", "invalid_response"),
    ("OperationOutcome", "operation_outcome"),
    ("no fhirServer", "no_fhir_server"),
    ("template token", "context_token"),
    # the target checks (an error met while making the client is re-raised as a plain FHIRAccessError: prefetch.py)
    ("allowlist", "refused_target"),
    ("address", "refused_target"),
    ("URL", "refused_target"),
    ("invalid port", "refused_target"),
)


def fetch_failure_reason(exc: FHIRAccessError) -> str:
    """``exc`` as one of a fixed set of codes: ``refused_target`` (allowlist, SSRF ranges, origin), ``redirect``,
    ``deadline``, ``timeout``, ``size_cap``, ``page_cap``, ``status``, ``unreachable``, ``dns``, ``invalid_response``,
    ``operation_outcome``, ``no_fhir_server``, ``context_token``, else ``other``."""
    message = str(exc)
    for words, code in FETCH_FAILURE_REASONS:
        if words in message:
            return code
    return "refused_target" if isinstance(exc, FHIRTargetRefused) else "other"
