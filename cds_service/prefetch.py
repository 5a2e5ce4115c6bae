"""Prefetch templates (CDS Hooks 2.0 tokens only) and their resolution, exactly as the spec table says.

| key in the request            | what happens                                                        |
|-------------------------------|---------------------------------------------------------------------|
| absent                        | GET {fhirServer}/{rendered template} (Bearer token when given)      |
| ``null``                      | no data: empty, never refetched                                      |
| searchset with a ``next`` link| pages followed on the fhirServer origin only, within caps            |
| OperationOutcome              | refetched when a fhirServer is known, else treated as missing        |
| missing and not obtainable    | required key → HTTP 412 naming the key; optional key → unavailable  |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .errors import FHIRAccessError, PrefetchUnavailable, fetch_failure_reason
from .fhir_client import FHIRClient

_TOKEN = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


@dataclass(frozen=True)
class PrefetchTemplate:
    key: str
    query: str
    required: bool = True  # False: the call goes on without it and the snapshot marks it unavailable


def bare_id(value: str, resource_type: str = "Patient") -> str:
    """``Patient/123`` and ``123`` both mean id 123 (some EHRs send the reference form)."""
    prefix = resource_type + "/"
    return value[len(prefix) :] if value.startswith(prefix) else value


def render(query: str, context: dict[str, Any]) -> str | None:
    """Substitute 2.0 tokens, URL-encoding each value; None when a token cannot be resolved."""
    failed = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal failed
        token = match.group(1)
        value: Any = None
        if token.startswith("context."):
            name = token[len("context.") :]
            value = context.get(name)
            if name == "patientId" and isinstance(value, str):
                value = bare_id(value)
        elif token in _USER_TOKENS:
            user = context.get("userId")
            prefix = _USER_TOKENS[token] + "/"
            if isinstance(user, str) and user.startswith(prefix):
                value = user[len(prefix) :]
        if not isinstance(value, (str, int, float)) or isinstance(value, bool) or value == "":
            failed = True
            return ""
        return quote(str(value), safe="")

    rendered = _TOKEN.sub(substitute, query)
    return None if failed else rendered


@dataclass
class ResolvedPrefetch:
    data: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # key → reason (optional keys only)
    fetched: int = 0  # outbound requests made


FetchObserver = Callable[[str, "str | None"], None]  # (key, None when fetched | failure reason code)


def resolve(
    templates: list[PrefetchTemplate],
    request: dict[str, Any],
    client_factory: Callable[[], FHIRClient | None],
    observe: FetchObserver = lambda key, reason: None,
) -> ResolvedPrefetch:
    """Every template's data (the table above); ``observe`` is told of each key the service had to fetch itself (an
    absent key, an OperationOutcome, a searchset with a ``next`` link) and whether that fetch failed, and why."""
    given = request.get("prefetch") or {}
    context = request.get("context") or {}
    result = ResolvedPrefetch()
    client: FHIRClient | None = None
    client_error: str | None = None

    def get_client() -> FHIRClient:
        nonlocal client, client_error
        if client is None and client_error is None:
            try:
                client = client_factory()
                if client is None:
                    client_error = "no fhirServer in the request"
            except FHIRAccessError as exc:
                client_error = str(exc)
        if client is None:
            raise FHIRAccessError(client_error or "no fhirServer")
        return client

    try:
        for template in templates:
            try:
                result.data[template.key] = _observed(template, given, context, get_client, observe)
            except FHIRAccessError as exc:
                if template.required:
                    raise PrefetchUnavailable(
                        template.key, str(exc), exc.fhir_status, fetch_failure_reason(exc)
                    ) from None
                result.unavailable[template.key] = str(exc)
                result.data[template.key] = None
    finally:
        if client is not None:
            result.fetched = client.requests_made
    return result


def _observed(
    template: PrefetchTemplate,
    given: dict[str, Any],
    context: dict[str, Any],
    get_client: Callable[[], FHIRClient],
    observe: FetchObserver,
) -> dict[str, Any] | None:
    """``_resolve_one``, telling ``observe`` of a fetch the service made itself and how it ended."""
    fetches = _fetches(template.key, given)
    try:
        data = _resolve_one(template, given, context, get_client)
    except FHIRAccessError as exc:
        observe(template.key, fetch_failure_reason(exc))
        raise
    if fetches:
        observe(template.key, None)
    return data


def _fetches(key: str, given: dict[str, Any]) -> bool:
    """The service fetches this key itself (absent, an OperationOutcome, or a searchset to complete)."""
    if key not in given:
        return True
    value = given[key]
    if value is None:
        return False
    return value.get("resourceType") == "OperationOutcome" or (
        value.get("resourceType") == "Bundle"
        and any(isinstance(link, dict) and link.get("relation") == "next" for link in value.get("link") or [])
    )


def _resolve_one(
    template: PrefetchTemplate, given: dict[str, Any], context: dict[str, Any], get_client: Callable[[], FHIRClient]
) -> dict[str, Any] | None:
    if template.key in given:
        value = given[template.key]
        if value is None:
            return None
        if value.get("resourceType") == "OperationOutcome":
            return _fetch(template, context, get_client)  # the client hit an error: refetch if we can
        if value.get("resourceType") == "Bundle" and any(
            isinstance(link, dict) and link.get("relation") == "next" for link in value.get("link") or []
        ):
            return get_client().complete_bundle(value)
        return value
    return _fetch(template, context, get_client)


def _fetch(template: PrefetchTemplate, context: dict[str, Any], get_client: Callable[[], FHIRClient]) -> dict[str, Any]:
    relative = render(template.query, context)
    if relative is None:
        raise FHIRAccessError("template token cannot be resolved from the context")
    data = get_client().read(relative)
    if data.get("resourceType") == "OperationOutcome":
        raise FHIRAccessError("FHIR server answered an OperationOutcome")
    return data


def resource_count(prefetch: Mapping[str, Any]) -> int:
    """Resources in a prefetch: a Bundle's entries, else one per value."""
    count = 0
    for value in prefetch.values():
        if isinstance(value, dict):
            entries = value.get("entry") if value.get("resourceType") == "Bundle" else None
            count += len(entries) if isinstance(entries, list) else 1
    return count
