"""The project's own JSON Schemas for CDS Hooks 2.0.1 (the spec publishes none), compiled once.

Each schema is compiled twice: by jsonschema-rs, which answers "valid?" in microseconds (every hook call asks),
and by jsonschema, the reference implementation, which is asked only when a body is not valid, to name the field
that failed in the 400 response. Should the two ever disagree about a body, jsonschema's verdict stands (and a
warning is logged); the test suite checks that they agree on every invalid request it knows.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from ..errors import BadRequest

_DIR = Path(__file__).parent
log = logging.getLogger("backpain_cds.schemas")


@lru_cache(maxsize=8)
def schema(name: str) -> dict[str, Any]:
    return json.loads((_DIR / f"{name}.json").read_text())


def _path(error: ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator in ("required", "dependentRequired"):
        missing = error.message.split("'")[1] if "'" in error.message else ""
        parts.append(missing)
    return ".".join(p for p in parts if p) or "(body)"


def _message(error: ValidationError, where: str) -> str:
    if error.validator in ("required", "dependentRequired"):
        return f"{where} is required" + (
            " when fhirAuthorization is present" if error.validator == "dependentRequired" else ""
        )
    if error.validator == "type":
        return f"{where} must be of type {error.validator_value}"
    if error.validator == "pattern":
        if "\\u0000" in str(error.validator_value):
            return f"{where} must not contain a NUL character"
        return f"{where} is not in the expected format"
    if error.validator in ("enum", "const"):
        return f"{where} has a value that is not allowed"
    return f"{where}: {error.message[:200]}"


class _Schema:
    """One schema: a compiled fast check and the reference validator for the error report."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.fast = jsonschema_rs.Draft202012Validator(doc)
        self.reference = Draft202012Validator(doc)

    def first_error(self, instance: Any) -> ValidationError | None:
        if self.fast.is_valid(instance):
            return None
        error = best_match(self.reference.iter_errors(instance))
        if error is None:
            log.warning("schema validators disagree; the reference validator accepted the body")
        return error


class Validators:
    def __init__(self) -> None:
        req = schema("request")
        self._request = _Schema(req)
        self._contexts = {
            hook: _Schema({**req["$defs"][hook], "$defs": req["$defs"]})
            for hook in ("patient-view", "order-select", "order-sign")
        }
        self._feedback = _Schema(schema("feedback"))
        # what the service sends: checked in tests and debugging only, so the reference validator alone
        self._response = Draft202012Validator(schema("response"))
        self._discovery = Draft202012Validator(schema("discovery"))

    @staticmethod
    def _raise_first(validator: _Schema, instance: Any, prefix: str = "") -> None:
        error = validator.first_error(instance)
        if error is not None:
            while error.context:  # oneOf/anyOf: name the deepest field that failed
                error = best_match(error.context)
            where = _path(error)
            where = f"{prefix}.{where}" if prefix and where != "(body)" else (prefix or where)
            raise BadRequest(_message(error, where), expression=where)

    def request(self, body: Any, hook: str) -> None:
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        self._raise_first(self._request, body)
        if body["hook"] != hook:
            raise BadRequest(f"hook {body['hook']!r} does not match this service ({hook})", expression="hook")
        self._raise_first(self._contexts[hook], body["context"], "context")

    def feedback(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise BadRequest("feedback body must be a JSON object")
        self._raise_first(self._feedback, body)

    def response(self, body: Any) -> None:
        errors = list(self._response.iter_errors(body))
        if errors:
            raise AssertionError(
                f"response does not match the response schema: {errors[0].message} at {list(errors[0].absolute_path)}"
            )

    def discovery(self, body: Any) -> None:
        errors = list(self._discovery.iter_errors(body))
        if errors:
            raise AssertionError(f"discovery does not match its schema: {errors[0].message}")
