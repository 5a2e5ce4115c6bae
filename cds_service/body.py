"""Reading a request body: the size cap, JSON content types, strict JSON, and the hook request's own parse, which reuses
the parsed prefetch of an earlier request that ended with the same bytes (``read_hook_body``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from flask import Request

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

if TYPE_CHECKING:
    from .caches import PrefetchParses

JSON_TYPES = ("application/json", "application/fhir+json")


def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body: JSON content types only (415), at most ``max_bytes`` (413), whatever Content-Length claims."""
    ctype = (request.mimetype or "").lower()
    if ctype not in JSON_TYPES:
        raise UnsupportedMediaType("Content-Type must be application/json")
    length = request.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(f"request body over {max_bytes} bytes")
    body = request.stream.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"request body over {max_bytes} bytes")
    return body


def parse_json(body: bytes, parse: Callable[[bytes], Any] = orjson.loads) -> Any:
    """Strict JSON (no NaN/Infinity; nesting bounded at 1024 by the parser itself), or a 400 saying why."""
    try:
        return parse(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise BadRequest("JSON nested too deeply") from None
        raise BadRequest(f"body is not valid JSON ({str(exc).split(':')[0]})") from None


def parse_hook_body(raw: bytes, parses: PrefetchParses | None) -> HookBody:
    """A hook request's body, parsed as ``read_hook_body`` does, or a 400."""
    result: HookBody = parse_json(raw, lambda data: read_hook_body(data, parses))
    return result


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
