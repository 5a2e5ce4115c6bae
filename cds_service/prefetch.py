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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Self
from urllib.parse import quote

import orjson

from .config import Settings
from .errors import FHIRAccessError, PrefetchUnavailable
from .fhir_client import FHIRClient
from .recent import Recent

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
    return value[len(prefix):] if value.startswith(prefix) else value


def render(query: str, context: dict[str, Any]) -> str | None:
    """Substitute 2.0 tokens, URL-encoding each value; None when a token cannot be resolved."""
    failed = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal failed
        token = match.group(1)
        value: Any = None
        if token.startswith("context."):
            name = token[len("context."):]
            value = context.get(name)
            if name == "patientId" and isinstance(value, str):
                value = bare_id(value)
        elif token in _USER_TOKENS:
            user = context.get("userId")
            prefix = _USER_TOKENS[token] + "/"
            if isinstance(user, str) and user.startswith(prefix):
                value = user[len(prefix):]
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


def resolve(templates: list[PrefetchTemplate], request: dict[str, Any],
            client_factory: Callable[[], FHIRClient | None]) -> ResolvedPrefetch:
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
                result.data[template.key] = _resolve_one(template, given, context, get_client)
            except FHIRAccessError as exc:
                if template.required:
                    raise PrefetchUnavailable(template.key, str(exc), exc.fhir_status) from None
                result.unavailable[template.key] = str(exc)
                result.data[template.key] = None
    finally:
        if client is not None:
            result.fetched = client.requests_made
    return result


def _resolve_one(template: PrefetchTemplate, given: dict[str, Any], context: dict[str, Any],
                 get_client: Callable[[], FHIRClient]) -> dict[str, Any] | None:
    if template.key in given:
        value = given[template.key]
        if value is None:
            return None
        if value.get("resourceType") == "OperationOutcome":
            return _fetch(template, context, get_client)  # the client hit an error: refetch if we can
        if value.get("resourceType") == "Bundle" and any(
                isinstance(link, dict) and link.get("relation") == "next" for link in value.get("link") or []):
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


class HookBody(NamedTuple):
    data: Any  # exactly what ``orjson.loads`` gives for the request
    prefetch_key: bytes | None  # bytes of the request that determine ``data["prefetch"]`` exactly, when known
    reused: bool  # the prefetch value is the one parsed from an earlier request with the same bytes


_NULL_PREFETCH = b'"prefetch":null}'


def read_hook_body(raw: bytes, parsed: PrefetchParses | None = None) -> HookBody:
    """Parse a hook request, reusing the parsed prefetch of an earlier request that ended with the same bytes.

    An EHR re-sends the same prefetch (most of the body) on every keystroke of an order. The request is split at its
    first ``"prefetch"``. The bytes before it (the head) are parsed with ``"prefetch":null}`` appended; when that is a
    JSON object, the parser stood at depth 1 expecting a member name, whatever the head held (strings, escapes,
    nesting). The bytes from there on (the tail) are parsed as ``{`` + tail: from that same state they tokenise the
    same, so when both parse, the whole body is valid and equals the head's members updated with the tail's — the
    order and duplicate-key semantics of one parse (a generated test checks this against ``orjson.loads``). When the
    tail holds nothing but ``prefetch``, it determines the prefetch exactly: it is the key for the facts cache and for
    ``parsed``, whose hit replaces the tail's parse. Anything else is parsed whole (and errors come from that parse).
    Raises ``orjson.JSONDecodeError`` as ``orjson.loads`` does.
    """
    start = raw.find(b'"prefetch"')
    head = _head(raw[:start]) if start >= 0 else None
    if head is None:
        return HookBody(orjson.loads(raw), None, False)
    tail = raw[start:]
    value = parsed.get(tail) if parsed is not None else None
    if value is not None:
        head["prefetch"] = value
        return HookBody(head, tail, True)
    try:
        members = orjson.loads(b"{" + tail)
    except orjson.JSONDecodeError:
        return HookBody(orjson.loads(raw), None, False)
    head.update(members)
    return HookBody(head, tail if len(members) == 1 else None, False)  # its first member is prefetch


def _head(prefix: bytes) -> dict[str, Any] | None:
    """The members before ``prefix``'s end, if the parser stands there at depth 1 expecting a member name."""
    try:
        head = orjson.loads(prefix + _NULL_PREFETCH)
    except orjson.JSONDecodeError:
        return None
    return head if isinstance(head, dict) else None


class ChartCache(Recent):
    """Something kept per chart in this worker's memory, bounded by count, age and each chart's size.

    ``entries`` charts at most (0: nothing kept), none older than ``seconds``; a chart over ``max_resources`` resources
    or ``max_bytes`` of prefetch JSON is never kept. Both per-worker caches (parses, facts) share these settings.
    """

    def __init__(self, entries: int = 16, seconds: float = 120.0, max_resources: int = 2_000,
                 max_bytes: int = 2 * 1024 * 1024, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(entries, seconds, clock)
        self.max_resources, self.max_bytes = max_resources, max_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings.snapshot_cache_entries, settings.snapshot_cache_seconds, settings.snapshot_cache_max_resources,
                   settings.snapshot_cache_max_bytes)

    def keeps(self, prefetch: Mapping[str, Any], size: int | None = None) -> bool:
        """Whether a chart with this prefetch (of ``size`` JSON bytes, when known) may be kept at all."""
        return (self.entries > 0 and (size is None or size <= self.max_bytes)
                and resource_count(prefetch) <= self.max_resources)


class PrefetchParses(ChartCache):
    """Parsed prefetch values by the request bytes that carry them (``HookBody.prefetch_key``), per worker, in memory.

    The parsed prefetch of a typical chart (~350 resources, 300 KB) costs more to build and free than the rest of a
    cached call.
    """

    def remember(self, body: HookBody) -> None:
        """Keep a request's parsed prefetch for the next request that ends with the same bytes."""
        value = body.data.get("prefetch") if isinstance(body.data, dict) else None
        if not body.reused and body.prefetch_key is not None and isinstance(value, dict) \
                and self.keeps(value, len(body.prefetch_key)):
            self.put(body.prefetch_key, value)


def resource_count(prefetch: Mapping[str, Any]) -> int:
    """Resources in a prefetch: a Bundle's entries, else one per value."""
    count = 0
    for value in prefetch.values():
        if isinstance(value, dict):
            entries = value.get("entry") if value.get("resourceType") == "Bundle" else None
            count += len(entries) if isinstance(entries, list) else 1
    return count
