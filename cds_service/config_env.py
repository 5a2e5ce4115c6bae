"""A ``BPCDS_<KEY>`` environment variable read as its setting's type (pydantic): :func:`from_env`, used by
:func:`cds_service.config.load_settings`."""

from __future__ import annotations

import functools
import typing
from typing import Any

from pydantic import TypeAdapter, ValidationError


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _problem(exc: ValidationError) -> str:
    return "; ".join(
        f"item {'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
        for e in exc.errors(include_url=False)
    )


def from_env(key: str, raw: str, annotation: Any) -> Any:
    """One environment variable's string as a value of its setting's type (pydantic): a scalar as pydantic reads
    strings (booleans true/false, on/off, yes/no, 1/0, any case; integers; floats), a list or table as JSON, a list
    of strings also comma-separated. A value that does not convert is refused naming the variable."""
    adapter = _adapter(annotation)
    origin = typing.get_origin(annotation)
    container = origin in (list, dict)
    text = raw.strip()
    try:
        if not container:
            return adapter.validate_strings(raw if annotation is str else text)
        if text.startswith(("[", "{")):
            return adapter.validate_json(text)
        if annotation == list[str]:
            return adapter.validate_python([v.strip() for v in text.split(",") if v.strip()])
    except ValidationError as exc:
        shown = f" {raw!r}" if not container else ""  # a list or table may carry keys: not echoed
        raise ValueError(f"environment variable {key}{shown}: {_problem(exc)}") from None
    raise ValueError(f"environment variable {key}: expected a JSON {'list' if origin is list else 'object'}")
