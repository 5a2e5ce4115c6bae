"""Reading FHIR JSON liberally (package-internal helpers): a single value where a list was expected, a missing or
odd-typed field read as absent, the codings of a CodeableConcept, references, and the resources of a prefetch value."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("backpain_cds.snapshot")

# What an odd entry can raise while being read: it is then skipped and counted, never the whole call.
_ENTRY_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, ZeroDivisionError)


def _obj(value: Any, key: str) -> dict[str, Any]:
    """value[key] when both are JSON objects, else {} (liberal reading of imperfect FHIR)."""
    item = value.get(key) if isinstance(value, dict) else None
    return item if isinstance(item, dict) else {}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _first(value: Any) -> Any:
    items = _as_list(value)
    return items[0] if items else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _refs(value: Any) -> tuple[str, ...]:
    """The reference strings of a Reference or list of References."""
    if not value:
        return ()
    return tuple(_str(r.get("reference")) for r in _as_list(value) if isinstance(r, dict))


def _concept_text(concept: Any) -> str:
    if not concept:
        return ""
    concept = _first(concept)
    if not isinstance(concept, dict):
        return ""
    texts = [_str(concept.get("text"))] + [
        _str(c.get("display")) for c in _as_list(concept.get("coding")) if isinstance(c, dict)
    ]
    return next((t for t in texts if t), "")


def _local_reference(reference: str) -> str:
    """``http://x/fhir/Medication/7/_history/2`` → ``Medication/7``."""
    parts = reference.split("/_history")[0].rstrip("/").split("/")
    return "/".join(parts[-2:])


def _codings(concept: Any) -> tuple[tuple[str, str], ...]:
    """(system, code) of a CodeableConcept's codings, as recorded."""
    if not isinstance(concept, dict):
        return ()
    return tuple(
        (_str(c.get("system")), c["code"])
        for c in _as_list(concept.get("coding"))
        if isinstance(c, dict) and isinstance(c.get("code"), str)
    )


def _codes_of(concept: Any) -> set[str]:
    if not isinstance(concept, dict):
        return set()
    return {
        code for c in _as_list(concept.get("coding")) if isinstance(c, dict) and isinstance(code := c.get("code"), str)
    }


def iter_resources(value: Any, limit: int) -> Iterator[Any]:
    """Resources of a prefetch value (a resource or a Bundle), at most ``limit`` entries."""
    if not isinstance(value, dict):
        return
    if value.get("resourceType") == "Bundle":
        for i, entry in enumerate(_as_list(value.get("entry"))):
            if i >= limit:
                log.warning("bundle entry cap reached", extra={"cap": limit})
                return
            yield entry.get("resource") if isinstance(entry, dict) else None
    else:
        yield value
