"""The rules as functions: a request's cards computed in process, without HTTP — the pipeline's own steps (validate,
resolve the given prefetch, read the snapshot, evaluate, render), so the cards are exactly those the service sends."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.body import HookBody
from cds_service.cards import CardRenderer
from cds_service.hook_request import validate_hook_request
from cds_service.prefetch import resolve
from cds_service.registry import RuleInput
from cds_service.render import render
from cds_service.schemas import Validators
from hooks.engine import Engine, Knowledge
from hooks.services import PREFETCH
from tests.conftest import NOW, sequential_uuids


class Evaluated:
    """What a test reads of an answer: its status and its JSON (the cards)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.status_code, self._data = 200, data

    def get_json(self) -> dict[str, Any]:
        return self._data


class InProcess:
    """The product's rules over hook requests, with a pinned clock and sequential uuids; ``thresholds``: a site's
    overrides. No FHIR server: the request's prefetch is all there is (missing optional keys are unavailable)."""

    def __init__(self, thresholds: dict[str, Any] | None = None) -> None:
        knowledge = Knowledge.load(thresholds)
        self.engine, self.reader = Engine(knowledge), knowledge.reader()
        self.renderer = CardRenderer(uuid_factory=sequential_uuids())
        self.validators = Validators()

    def evaluate(self, body: dict[str, Any]) -> Evaluated:
        call = validate_hook_request(HookBody(body, None, False), body["hook"], self.validators)
        resolved = resolve(list(PREFETCH), call.data, lambda: None)
        snapshot = self.reader.read(
            context=call.context, prefetch=resolved.data, today=NOW.date(), unavailable=frozenset(resolved.unavailable)
        )
        findings = self.engine.evaluate(RuleInput(snapshot, call.hook, call.focus(snapshot.draft_refs)))
        response = {"cards": render(findings, snapshot, self.renderer).cards}
        self.validators.response(response)  # strict in what is sent, as the service in tests
        return Evaluated(response)


@pytest.fixture
def client() -> InProcess:
    return InProcess()
