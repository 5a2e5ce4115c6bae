"""One hook call, as a fixed pipeline of named steps (each a function in its own module, typed in and out):

    authenticate (auth) → read body (body) → validate (hook_request) → resolve prefetch (prefetch, fhir_client)
      → snapshot (snapshot) → evaluate (the service's rules) → render (render) → respond (here)

Every failure is a typed ``CDSError`` that the app's one error handler turns into an OperationOutcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import requests
from flask import Request, Response

from .auth import Authenticator, authenticate
from .body import parse_hook_body, read_body
from .caches import PrefetchParses
from .cards import CardRenderer, version_card
from .config import Settings
from .errors import FHIRAccessError, PrefetchUnavailable
from .fhir_client import Outbound, Resolver
from .hook_request import HookRequest, validate_hook_request
from .ledger import CardLedger
from .metrics import Metrics
from .prefetch import ResolvedPrefetch, resolve, resource_count
from .registry import Registry, RuleInput, ServiceDefinition
from .render import Rendered, render
from .schemas import Validators
from .snapshot import PatientSnapshot

log = logging.getLogger("backpain_cds.request")
UNKNOWN_TYPE_STATUSES = {400, 404, 405, 501}  # how servers reject a resource type they do not have (e.g. DSTU2)


@dataclass(frozen=True)
class Components:
    """What every call uses, built once by ``create_app``."""

    settings: Settings
    registry: Registry
    validators: Validators
    auth: Authenticator
    parses: PrefetchParses
    renderer: CardRenderer
    ledger: CardLedger
    now: Callable[[], datetime]  # the clinical clock ("today"; pinned in replays and tests)
    resolver: Resolver
    fhir_session: requests.Session | None = None
    metrics: Metrics = field(default_factory=Metrics)  # create_app's: every service and topic it serves


def hook_call(env: Components, service: ServiceDefinition, request: Request) -> Response:
    started = time.perf_counter()
    authenticate(env.auth, request, env.settings.public_base_url)
    call = validate_hook_request(
        parse_hook_body(read_body(request, env.settings.max_body_bytes), env.parses), service.hook, env.validators
    )
    with Outbound(
        call.fhir_server, call.access_token, env.settings, session=env.fhir_session, resolver=env.resolver
    ) as outbound:
        try:
            resolved = resolve(list(service.prefetch), call.data, outbound.client, env.metrics.fetched)
        except PrefetchUnavailable as exc:
            return _unsupported_fhir_version(env, service, call, exc, outbound)
    snapshot = _snapshot(service, call, resolved, env.now())
    findings = service.evaluate(RuleInput(snapshot, call.hook, call.focus(snapshot.draft_refs)))
    return respond(env, service, call, resolved, snapshot, render(findings, snapshot, env.renderer), started)


def _snapshot(
    service: ServiceDefinition, call: HookRequest, resolved: ResolvedPrefetch, now: datetime
) -> PatientSnapshot:
    # Nothing fetched: the prefetch is what the request carried, and its bytes can identify it for the facts cache.
    key = call.body.prefetch_key if not resolved.fetched else None
    return service.reader.read(
        context=call.context,
        prefetch=resolved.data,
        today=now.date(),
        unavailable=frozenset(resolved.unavailable),
        prefetch_key=key,
    )


def respond(
    env: Components,
    service: ServiceDefinition,
    call: HookRequest,
    resolved: ResolvedPrefetch,
    snapshot: PatientSnapshot,
    rendered: Rendered,
    started: float,
) -> Response:
    """The cards (validated against the response schema when configured), recorded in the ledger and the request log;
    what can wait — storing this call's parse and facts for the next call — runs once the response has been sent."""
    response = {"cards": rendered.cards}
    if env.settings.validate_responses:
        env.validators.response(response)
    env.ledger.record(service.id, rendered.cards, rendered.covers)
    env.metrics.issued(service.id, rendered.cards)
    log.info(
        "hook call",
        extra={
            "hookInstance": call.hook_instance,
            "service": service.id,
            "status": 200,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "fetched": resolved.fetched,
            "unavailable": sorted(resolved.unavailable),
            "prefetch_reused": call.body.reused,
            "prefetch_resources": resource_count(resolved.data),  # as sent or fetched (a Bundle: its entries)
            "fact_resources": snapshot.resource_count,  # the records facts were read from, and the drafts
            "skipped": sum(snapshot.skipped.values()),
            "prefetch_cached": snapshot.from_cache,
            "unread_types": sorted(snapshot.unsupported),
            "invalid_driving": rendered.invalid_driving,
            "unread_drafts": len(snapshot.unread_drafts),
            "cards": len(rendered.cards),
        },
    )
    resp = json_response(response)
    if snapshot.after_response is not None:
        resp.call_on_close(after_response(snapshot.after_response))
    resp.call_on_close(after_response(lambda: env.parses.remember(call.body)))  # it keeps only what it should
    return resp


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, mimetype="application/json")


def after_response(work: Callable[[], None]) -> Callable[[], None]:
    """Bookkeeping run by the WSGI server once the response has been sent; it never fails the call."""

    def run() -> None:
        try:
            work()
        except Exception as exc:
            log.warning("after-response work failed", extra={"error": type(exc).__name__})

    return run


def _unsupported_fhir_version(
    env: Components, service: ServiceDefinition, call: HookRequest, exc: PrefetchUnavailable, outbound: Outbound
) -> Response:
    """A required key could not be fetched: if the FHIR server is pre-R4, say so in one info card instead of 412."""
    card = None
    if exc.fhir_status in UNKNOWN_TYPE_STATUSES:
        try:
            fhir = outbound.client()
            metadata = fhir.get_json(fhir.url_for("metadata")) if fhir is not None else {}
            version = metadata.get("fhirVersion")
            if fhir is not None and isinstance(version, str) and not version.startswith("4."):
                card = env.renderer.render(version_card(version, exc.key, fhir.base_url))
        except FHIRAccessError:
            card = None
    if card is None:
        raise exc
    env.metrics.issued(service.id, [card])
    log.info(
        "hook call",
        extra={
            "hookInstance": call.hook_instance,
            "service": service.id,
            "status": 200,
            "unsupported_fhir_version": True,
        },
    )
    return json_response({"cards": [card]})
