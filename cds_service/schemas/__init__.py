"""The project's own JSON Schemas for CDS Hooks 2.0.1 (the spec publishes none), compiled once."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from ..errors import BadRequest

_DIR = Path(__file__).parent


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
        return f"{where} is required" + (" when fhirAuthorization is present" if error.validator == "dependentRequired" else "")
    if error.validator == "type":
        return f"{where} must be of type {error.validator_value}"
    if error.validator == "pattern":
        return f"{where} is not in the expected format"
    if error.validator in ("enum", "const"):
        return f"{where} has a value that is not allowed"
    return f"{where}: {error.message[:200]}"


class Validators:
    def __init__(self) -> None:
        req = schema("request")
        self._request = Draft202012Validator(req)
        self._contexts = {hook: Draft202012Validator({**req["$defs"][hook], "$defs": req["$defs"]})
                          for hook in ("patient-view", "order-select", "order-sign")}
        self._response = Draft202012Validator(schema("response"))
        self._feedback = Draft202012Validator(schema("feedback"))
        self._discovery = Draft202012Validator(schema("discovery"))

    @staticmethod
    def _raise_first(validator: Draft202012Validator, instance: Any, prefix: str = "") -> None:
        error = best_match(validator.iter_errors(instance))
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
            raise AssertionError(f"response does not match the response schema: {errors[0].message} at {list(errors[0].absolute_path)}")

    def discovery(self, body: Any) -> None:
        errors = list(self._discovery.iter_errors(body))
        if errors:
            raise AssertionError(f"discovery does not match its schema: {errors[0].message}")
