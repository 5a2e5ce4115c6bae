"""The HTTP surface (a Blueprint): discovery, hook calls, feedback and its summary, health, readiness, metrics. Each
route reads its
components (``pipeline.Components``) from the app and hands over to a named step; a hook call is
``pipeline.hook_call``."""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, current_app, request

from .auth import authenticate
from .body import parse_json, read_body
from .errors import NotFound
from .feedback import FeedbackStore
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .pipeline import Components, hook_call, json_response
from .readiness import run_checks
from .registry import ServiceDefinition

log = logging.getLogger("backpain_cds.request")
routes = Blueprint("cds_hooks", __name__)


def _env() -> Components:
    env: Components = current_app.extensions["backpain"]["components"]
    return env


def _store() -> FeedbackStore:
    store: FeedbackStore = current_app.extensions["backpain"]["store"]
    return store


def _service(service_id: str) -> ServiceDefinition:
    service = _env().registry.get(service_id)
    if service is None:
        raise NotFound(f"no CDS service {service_id!r}")
    return service


@routes.get("/health")
def health() -> Response:
    return json_response({"status": "ok", "services": len(_env().registry.discovery()["services"])})


@routes.get("/ready")
def ready() -> Response:
    """200 when this process can answer hook calls; 503 naming each failing check and why (never a URL or secret)."""
    ext = current_app.extensions["backpain"]
    failing = run_checks(ext["ready_checks"], _env().settings.ready_timeout)
    if failing:
        log.warning("not ready", extra={"failing": sorted(failing)})
        return json_response({"status": "not ready", "failing": failing}, status=503)
    return json_response({"status": "ready"})


@routes.get("/metrics")
def metrics() -> Response:
    """Prometheus text format: every worker's values under gunicorn. Not here when metrics are off or served on their
    own port (metrics_port); behind a bearer token when metrics_bearer_token_file is set."""
    settings, ext = _env().settings, current_app.extensions["backpain"]
    if not settings.metrics_enabled or settings.metrics_port:
        raise NotFound("not found")
    expected: bytes | None = ext["metrics_token"]
    if expected is not None:
        given = request.headers.get("Authorization", "")
        presented = given[len("Bearer ") :].strip().encode() if given.startswith("Bearer ") else b""
        if not hmac.compare_digest(presented, expected):
            return Response(b"", status=401, headers={"WWW-Authenticate": "Bearer"})
    return Response(_metrics().exposition(), mimetype=None, content_type=CONTENT_TYPE_LATEST)


def _metrics() -> Metrics:
    found: Metrics = current_app.extensions["backpain"]["metrics"]
    return found


@routes.get("/cds-services")
def discovery() -> Response:
    env = _env()
    authenticate(env.auth, request, env.settings.public_base_url, required=env.settings.auth_discovery)
    return json_response(env.registry.discovery())


@routes.post("/cds-services/<service_id>")
def call(service_id: str) -> Response:
    return hook_call(_env(), _service(service_id), request)


@routes.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    env, service = _env(), _service(service_id)
    authenticate(env.auth, request, env.settings.public_base_url)
    body = parse_json(read_body(request, env.settings.max_body_bytes))
    env.validators.feedback(body)
    env.ledger.ensure_running()  # its thread also prunes: a worker that only takes feedback runs it too
    stored = _store().append(service.id, body["feedback"])
    log.info("feedback", extra={"service": service.id, "status": 200, "records": stored})
    _count_feedback(service.id, body["feedback"])
    return json_response({})


def _count_feedback(service_id: str, items: list[dict[str, object]]) -> None:
    """Feedback outcomes by the topic the card was issued with (the ledger's record: "unknown" if it has none yet)."""
    if not _env().settings.metrics_enabled:
        return
    try:
        topics = _store().topics([str(item["card"]) for item in items])
    except Exception as exc:  # the feedback is stored and acknowledged: counting it never fails the call
        log.warning("feedback topics unavailable for metrics", extra={"error": type(exc).__name__})
        topics = {}
    _metrics().feedback_outcomes(service_id, [(topics.get(str(item["card"])), item["outcome"]) for item in items])


@routes.get("/cds-services/<service_id>/feedback/summary")
def feedback_summary(service_id: str) -> Response:
    env, service = _env(), _service(service_id)
    authenticate(env.auth, request, env.settings.public_base_url)
    return json_response({"service": service.id, "summary": _store().summary(service.id)})
