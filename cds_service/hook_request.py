"""Validating a hook call: the request JSON Schema (a 400 naming the field), then the parts the pipeline reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .body import HookBody
from .prefetch import bare_id
from .schemas import Validators


@dataclass(frozen=True)
class HookRequest:
    """A valid CDS Hooks 2.0 request for one service's hook."""

    body: HookBody  # the parsed JSON and the bytes that determine its prefetch
    hook: str
    hook_instance: str
    context: dict[str, Any]  # ``patientId`` as a bare id (some EHRs send ``Patient/123``)
    fhir_server: str | None
    access_token: str | None  # never logged nor stored

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.body.data
        return data

    def focus(self, draft_refs: Sequence[str]) -> frozenset[str]:
        """The draft orders the advice is about: the selections on order-select, every draft on order-sign, none
        else."""
        if self.hook == "order-select":
            selections = self.context.get("selections")
            return (
                frozenset(s for s in selections if isinstance(s, str)) if isinstance(selections, list) else frozenset()
            )
        if self.hook == "order-sign":
            return frozenset(draft_refs)
        return frozenset()


def validate_hook_request(body: HookBody, hook: str, validators: Validators) -> HookRequest:
    data = body.data
    validators.request(data, hook)
    context = dict(data["context"])
    context["patientId"] = bare_id(context["patientId"])
    token = (data.get("fhirAuthorization") or {}).get("access_token")
    return HookRequest(body, data["hook"], data["hookInstance"], context, data.get("fhirServer"), token)
