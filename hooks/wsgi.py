"""The composition root: backpain-cds is the generic CDS Hooks service (``cds_service``) serving this package's clinical
content. ``cds_service`` never imports ``hooks``; this module wires them together (and, in development, the review page
of the testing tools, when they are installed).

    gunicorn 'hooks.wsgi:create_app()'      # or: backpain-cds serve
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests
from flask import Flask

from cds_service import Settings, load_settings
from cds_service import create_app as create_service_app
from cds_service.caches import SnapshotCache
from cds_service.cards import CardRenderer
from cds_service.fhir_client import Resolver, system_resolver
from cds_service.fhir_models import warm_up

from . import catalogue
from .engine import Knowledge
from .services import build_services

log = logging.getLogger("backpain_cds.wsgi")


def create_app(
    settings: Settings | dict[str, Any] | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    resolver: Resolver = system_resolver,
    fhir_session: requests.Session | None = None,
    auth_session: requests.Session | None = None,
    uuid_factory: Callable[[], str] | None = None,
    storage_clock: Callable[[], datetime] | None = None,
) -> Flask:
    """The backpain-cds service: its three CDS services over the protocol layer, configured by ``settings`` (a
    ``Settings``, or overrides of the layered configuration)."""
    if not isinstance(settings, Settings):
        settings = load_settings(overrides=settings or {})
    renderer = CardRenderer(uuid_factory=uuid_factory)
    knowledge = Knowledge.load(settings.thresholds, settings.max_bundle_entries, SnapshotCache.from_settings(settings))
    catalogue.check(
        renderer, knowledge.terminology
    )  # every rule's template, labels, thresholds, value sets: else no start
    services = build_services(knowledge)
    warm_up()  # FHIR models built now, not in the first hook call (before gunicorn forks its workers)
    app = create_service_app(
        settings,
        services=services,
        renderer=renderer,
        clock=clock,
        resolver=resolver,
        fhir_session=fhir_session,
        auth_session=auth_session,
        storage_clock=storage_clock,
    )
    if settings.dev_pages and not settings.is_production:
        _register_review_page(app)
    return app


def _register_review_page(app: Flask) -> None:
    """The development review page (``/sandbox``), when the testing tools are installed (never in the production
    image)."""
    try:
        from sandbox.review import register_review_page
    except ModuleNotFoundError as exc:
        if exc.name != "sandbox":
            raise  # the tools are there but broken: say so
        log.info("review page not available: the testing tools (sandbox package) are not installed")
        return
    register_review_page(app, app.extensions["backpain"]["registry"])
