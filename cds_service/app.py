"""Flask app factory: builds the components once, registers the routes (``routes``), CORS and the one error handler.

    POST /cds-services/{id}
      → authenticate client (JWT) → read body (size cap, JSON only, strict JSON) → validate (JSON Schema)
      → resolve prefetch (given / null / OperationOutcome / fetch, bounded; 412 if impossible)
      → snapshot → the service's rules → cards → response (validated in debug mode)

(``pipeline.hook_call`` is that sequence, step by step.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import requests
from flask import Flask, Response, g, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException

from .auth import Authenticator, TrustedClient, auth_failure_code
from .caches import PrefetchParses
from .cards import CardRenderer
from .config import Settings, load_settings
from .cors import compile_origins
from .errors import (
    BadRequest,
    CDSError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PrefetchUnavailable,
    ReplayCacheUnavailable,
    Unauthorized,
)
from .feedback import FeedbackStore, open_store
from .fhir_client import Resolver, system_resolver
from .ledger import CardLedger
from .logs import configure_logging
from .metrics import Metrics
from .pipeline import Components
from .readiness import Check, redis_check, require
from .registry import Registry, ServiceDefinition
from .routes import routes
from .schemas import Validators

log = logging.getLogger("backpain_cds.request")


def _outcome_response(err: CDSError) -> Response:
    if isinstance(err, Unauthorized):
        return Response(b"", status=401, headers={"WWW-Authenticate": "Bearer"})
    return Response(orjson.dumps(err.outcome()), status=err.status, mimetype="application/json")


def create_app(
    settings: Settings | dict[str, Any] | None = None,
    *,
    services: list[ServiceDefinition],
    renderer: CardRenderer | None = None,
    clock: Callable[[], datetime] | None = None,
    resolver: Resolver = system_resolver,
    fhir_session: requests.Session | None = None,
    auth_session: requests.Session | None = None,
    uuid_factory: Callable[[], str] | None = None,
    storage_clock: Callable[[], datetime] | None = None,
) -> Flask:
    """The CDS Hooks service for ``services`` (their content is the product's: see ``hooks.wsgi``, the composition
    root). ``renderer``: the card renderer the services share (default: one over ``cards_templates/``)."""
    if not isinstance(settings, Settings):
        settings = load_settings(overrides=settings or {})
    configure_logging(settings.log_level)
    tz = ZoneInfo(settings.site_timezone)
    # Storage time is the real time, never the clinical clock: a replay pinned to another day must not date records
    # by it, nor prune by it.
    store_now = storage_clock or (lambda: datetime.now(UTC))
    store = open_store(settings.database_url, clock=store_now)
    ledger = CardLedger(
        store,
        feedback_days=settings.feedback_retention_days,
        issued_cards_days=settings.issued_cards_retention_days,
        clock=store_now,
    )
    ledger.prune()  # at start-up (before gunicorn forks), then hourly from each worker's ledger thread
    auth = Authenticator(
        settings, [TrustedClient.from_config(c) for c in settings.load_trusted_clients()], session=auth_session
    )
    renderer = renderer or CardRenderer(uuid_factory=uuid_factory)
    metrics = Metrics(services=[s.id for s in services], topics=renderer.topics())
    components = Components(
        settings=settings,
        registry=Registry(services),
        validators=Validators(),
        auth=auth,
        parses=PrefetchParses.from_settings(settings),
        renderer=renderer,
        ledger=ledger,
        now=clock or (lambda: datetime.now(tz)),
        resolver=resolver,
        fhir_session=fhir_session,
        metrics=metrics,
    )

    app = Flask("backpain_cds")
    app.config["SETTINGS"] = settings
    app.extensions["backpain"] = {
        "components": components,
        "registry": components.registry,
        "store": store,
        "ledger": ledger,
        "auth": auth,
        "parses": components.parses,
        "metrics": metrics,
        "metrics_token": settings.load_metrics_token() if settings.metrics_enabled else None,
        "ready_checks": ready_checks(settings, components, store),
    }
    origins = compile_origins(settings.cors_origins)  # anchored patterns (cors.py), never flask-cors's regex guessing
    CORS(
        app,
        resources={r"/cds-services*": {"origins": origins}, r"/health": {"origins": origins}},
        methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization"],
        allow_private_network=True,
        max_age=600,
    )
    if not auth.enabled:
        log.warning("client JWT authentication is OFF (no trusted clients configured); development only")
    _register_error_handlers(app)
    _register_request_metrics(app, metrics)
    app.register_blueprint(routes)
    return app


def ready_checks(settings: Settings, components: Components, store: FeedbackStore) -> dict[str, Check]:
    """What ``GET /ready`` asks (readiness.run_checks): the content loaded, the feedback store and, when the replay
    cache is Redis, Redis."""
    services = list(components.registry)

    def content(_: float) -> None:
        require(bool(services), "no services registered")
        require(bool(components.renderer.templates), "no card templates loaded")
        require(all(s.reader.terminology.valuesets for s in services), "value sets not loaded")

    checks: dict[str, Check] = {"content": content, "feedback_store": store.ping}
    if settings.replay_backend() == "redis" and settings.redis_url:
        checks["redis"] = redis_check(settings.redis_url)
    return checks


# The endpoints counted in backpain_cds_requests_total (Flask endpoint name → label); health, readiness and the
# metrics themselves are not.
COUNTED_ENDPOINTS = {
    "cds_hooks.discovery": "discovery",
    "cds_hooks.call": "hook",
    "cds_hooks.feedback": "feedback",
    "cds_hooks.feedback_summary": "feedback_summary",
}


def _register_request_metrics(app: Flask, metrics: Metrics) -> None:
    @app.before_request
    def started() -> None:
        g.backpain_started = time.perf_counter()

    @app.after_request
    def counted(response: Response) -> Response:
        endpoint = COUNTED_ENDPOINTS.get(request.endpoint or "")
        if endpoint is not None:
            service = (request.view_args or {}).get("service_id")
            elapsed = time.perf_counter() - g.get("backpain_started", time.perf_counter())
            metrics.request(endpoint, service, response.status_code, elapsed)
        return response


def _count_error(metrics: Metrics, err: CDSError) -> None:
    """The refusals the metrics count by reason: client authentication (a fixed code) and 412s (the key)."""
    if isinstance(err, Unauthorized):
        metrics.auth_failure(auth_failure_code(err.reason))
    elif isinstance(err, ReplayCacheUnavailable):
        metrics.auth_failure("replay_cache_unavailable")
    elif isinstance(err, PrefetchUnavailable):
        metrics.unavailable((request.view_args or {}).get("service_id") or "", err.key)


def _register_error_handlers(app: Flask) -> None:
    """One handler: every failure leaves as an OperationOutcome (a bare 401 for authentication), never a stack trace."""

    @app.errorhandler(CDSError)
    def handle_cds_error(err: CDSError) -> Response:
        _count_error(app.extensions["backpain"]["metrics"], err)
        if not isinstance(err, Unauthorized):  # auth failures are logged where they happen, with iss/jti
            log.info(
                "request rejected",
                extra={"status": err.status, "error": err.error_id, "path": request.path, "field": err.expression},
            )
        return _outcome_response(err)

    @app.errorhandler(HTTPException)
    def handle_http(err: HTTPException) -> Response:
        mapped: CDSError
        if err.code == 405:
            mapped = MethodNotAllowed("method not allowed")
        elif err.code == 404:
            mapped = NotFound("not found")
        elif err.code == 413:
            mapped = PayloadTooLarge("request body too large")
        else:
            mapped = BadRequest(err.description or "bad request")
        return _outcome_response(mapped)

    @app.errorhandler(Exception)
    def handle_unexpected(err: Exception) -> Response:
        log.error("unexpected error", extra={"error": type(err).__name__, "path": request.path})
        return _outcome_response(CDSError("internal error"))
