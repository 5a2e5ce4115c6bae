"""The HTTP surface (a Blueprint): discovery, hook calls, feedback and its summary, health. Each route reads its
components (``pipeline.Components``) from the app and hands over to a named step; a hook call is
``pipeline.hook_call``."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request

from .auth import authenticate
from .body import parse_json, read_body
from .errors import NotFound
from .feedback import FeedbackStore
from .pipeline import Components, hook_call, json_response
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
    return json_response({})


@routes.get("/cds-services/<service_id>/feedback/summary")
def feedback_summary(service_id: str) -> Response:
    env, service = _env(), _service(service_id)
    authenticate(env.auth, request, env.settings.public_base_url)
    return json_response({"service": service.id, "summary": _store().summary(service.id)})
