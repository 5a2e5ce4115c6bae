"""Flask app factory: discovery, service calls, feedback, health — one pipeline, one error handler.

    POST /cds-services/{id}
      → authenticate client (JWT) → read body (size cap, JSON only, strict JSON) → validate (JSON Schema)
      → resolve prefetch (given / null / OperationOutcome / fetch, bounded; 412 if impossible)
      → service.evaluate (snapshot → rules → cards) → response (validated in debug mode)
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import requests
from flask import Flask, Response, g, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException

from .auth import Authenticator, TrustedClient
from .cards import CardRenderer, version_card
from .config import Settings, load_settings
from .cors import compile_origins
from .errors import (
    BadRequest,
    CDSError,
    FHIRAccessError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PrefetchUnavailable,
    ReplayCacheUnavailable,
    Unauthorized,
    UnsupportedMediaType,
)
from .feedback import FeedbackStore, open_store
from .fhir_client import Deadline, FHIRClient, Resolver, system_resolver
from .logs import configure_logging
from .prefetch import HookBody, PrefetchParses, bare_id, read_hook_body, resolve
from .registry import HookCall, Registry, ServiceDefinition
from .schemas import Validators

log = logging.getLogger("backpain_cds.request")
_JSON_TYPES = ("application/json", "application/fhir+json")
UNKNOWN_TYPE_STATUSES = {400, 404, 405, 501}  # how servers reject a resource type they do not have (e.g. DSTU2)


class CardLedger:
    """Records issued cards (uuid → topic) for the feedback summary, in a background thread per process, and keeps the
    feedback store within its retention.

    Off the clinical path: a call only queues its cards. The thread writes whatever has queued in one transaction
    (after a short linger), so a busy worker commits a few times a second instead of once per hook call. A crash can
    lose the last moments of issued-card records (the summary then counts that feedback under "unknown"), never
    feedback itself, which is written before it is acknowledged.

    The same thread prunes the store (``FeedbackStore.prune``) at most once per ``PRUNE_INTERVAL`` per process — the
    app prunes once at start-up too — deleting only what is older than the retention settings.
    """

    LINGER_SECONDS = 0.05
    MAX_BATCH = 500
    PRUNE_INTERVAL = 3600.0  # seconds: a retention counted in days needs no finer grain

    def __init__(self, store: FeedbackStore, *, feedback_days: int = 400, issued_cards_days: int = 30,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._queue: queue.Queue[tuple[str, list[dict[str, Any]], dict[str, tuple[str, ...]]]] = queue.Queue(maxsize=10_000)
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._retention = (feedback_days, issued_cards_days)
        self._clock = clock
        self._next_prune = time.monotonic() + self.PRUNE_INTERVAL

    def ensure_running(self) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    threading.Thread(target=self._run, name="card-ledger", daemon=True).start()

    def record(self, service_id: str, cards: list[dict[str, Any]], covers: dict[str, tuple[str, ...]] | None = None) -> None:
        """Queue a call's cards; ``covers``: card uuid → other topics whose facts the card carries."""
        self.ensure_running()
        if not cards:
            return
        try:
            self._queue.put_nowait((service_id, cards, covers or {}))
        except queue.Full:
            log.warning("card ledger queue full; issued-card records dropped")

    def prune(self) -> None:
        """Delete what is older than the retention settings; never fails the caller."""
        self._next_prune = time.monotonic() + self.PRUNE_INTERVAL
        try:
            feedback, cards = self._store.prune(self._clock(), *self._retention)
        except Exception as exc:
            log.warning("feedback store prune failed", extra={"error": type(exc).__name__})
            return
        if feedback or cards:
            log.info("feedback store pruned", extra={"feedback_deleted": feedback, "issued_cards_deleted": cards})

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=max(0.0, self._next_prune - time.monotonic()))
            except queue.Empty:
                self.prune()
                continue
            batch = [first]
            time.sleep(self.LINGER_SECONDS)
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._store.record_cards([(service, cards) for service, cards, _ in batch],
                                         {uuid: topics for _, _, covers in batch for uuid, topics in covers.items()})
            except Exception as exc:  # the ledger must never take the service down
                log.warning("card ledger write failed", extra={"error": type(exc).__name__})
            finally:
                for _ in batch:
                    self._queue.task_done()
                del batch, first  # not held while waiting for the next call's cards
            if time.monotonic() >= self._next_prune:
                self.prune()

    def flush(self, timeout: float = 5.0) -> None:
        end = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.01)


def _outcome_response(err: CDSError) -> Response:
    if isinstance(err, Unauthorized):
        return Response(b"", status=401, headers={"WWW-Authenticate": "Bearer"})
    return Response(orjson.dumps(err.outcome()), status=err.status, mimetype="application/json")


def create_app(settings: Settings | dict[str, Any] | None = None, *, services: list[ServiceDefinition],
               renderer: CardRenderer | None = None, clock: Callable[[], datetime] | None = None,
               resolver: Resolver = system_resolver, fhir_session: requests.Session | None = None,
               auth_session: requests.Session | None = None, uuid_factory: Callable[[], str] | None = None,
               storage_clock: Callable[[], datetime] | None = None) -> Flask:
    """The CDS Hooks service for ``services`` (their content is the product's: see ``hooks.wsgi``, the composition root).
    ``renderer``: the card renderer the services share (default: one over ``cards_templates/``)."""
    if not isinstance(settings, Settings):
        settings = load_settings(overrides=settings or {})
    configure_logging(settings.log_level)
    renderer = renderer or CardRenderer(uuid_factory=uuid_factory)
    registry = Registry(services)
    parses = PrefetchParses.from_settings(settings)
    validators = Validators()
    tz = ZoneInfo(settings.site_timezone)
    now = clock or (lambda: datetime.now(tz))  # the clinical "today" (pinned in replays and tests)
    # Storage time is the real time, never the clinical clock: a replay pinned to another day must not date records
    # by it, nor prune by it.
    store_now = storage_clock or (lambda: datetime.now(UTC))
    store = open_store(settings.database_url, clock=store_now)
    ledger = CardLedger(store, feedback_days=settings.feedback_retention_days,
                        issued_cards_days=settings.issued_cards_retention_days, clock=store_now)
    ledger.prune()  # at start-up (before gunicorn forks), then hourly from each worker's ledger thread
    auth = Authenticator(settings, [TrustedClient.from_config(c) for c in settings.load_trusted_clients()],
                         session=auth_session)

    app = Flask("backpain_cds")
    app.config["SETTINGS"] = settings
    app.extensions["backpain"] = {"registry": registry, "store": store, "ledger": ledger, "auth": auth, "parses": parses}
    origins = compile_origins(settings.cors_origins)  # anchored patterns (cors.py), never flask-cors's regex guessing
    CORS(app, resources={r"/cds-services*": {"origins": origins}, r"/health": {"origins": origins}},
         methods=["GET", "POST", "OPTIONS"], allow_headers=["Content-Type", "Authorization"],
         allow_private_network=True, max_age=600)
    if not auth.enabled:
        log.warning("client JWT authentication is OFF (no trusted clients configured); development only")

    def audience() -> str:
        base = settings.public_base_url.rstrip("/")
        return f"{base}{request.path}" if base else request.base_url

    def authenticate(required: bool = True) -> None:
        if not (auth.enabled and required):
            return
        try:
            claims = auth.verify(request.headers.get("Authorization"), audience())
            g.client = claims.get("iss")
        except Unauthorized as exc:
            log.info("client authentication failed", extra={"reason": exc.reason, "iss": exc.iss, "jti": exc.jti,
                                                             "path": request.path})
            raise
        except ReplayCacheUnavailable as exc:  # fail closed: 503, and loud in the log
            log.error("replay cache unavailable; call refused", extra={"reason": exc.reason, "path": request.path})
            raise

    def read_json() -> Any:
        return parse_json(read_body())

    def read_body() -> bytes:
        ctype = (request.mimetype or "").lower()
        if ctype not in _JSON_TYPES:
            raise UnsupportedMediaType("Content-Type must be application/json")
        length = request.content_length
        if length is not None and length > settings.max_body_bytes:
            raise PayloadTooLarge(f"request body over {settings.max_body_bytes} bytes")
        body = request.stream.read(settings.max_body_bytes + 1)
        if len(body) > settings.max_body_bytes:
            raise PayloadTooLarge(f"request body over {settings.max_body_bytes} bytes")
        return body

    def parse_json(body: bytes, parse: Callable[[bytes], Any] = orjson.loads) -> Any:
        try:
            return parse(body)  # strict: no NaN/Infinity; nesting bounded (1024) by the parser itself
        except orjson.JSONDecodeError as exc:
            if "depth limit" in str(exc):
                raise BadRequest("JSON nested too deeply") from None
            raise BadRequest(f"body is not valid JSON ({str(exc).split(':')[0]})") from None

    def json_response(data: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(data), status=status, mimetype="application/json")

    @app.errorhandler(CDSError)
    def handle_cds_error(err: CDSError) -> Response:
        if not isinstance(err, Unauthorized):  # auth failures are logged where they happen, with iss/jti
            log.info("request rejected", extra={"status": err.status, "error": err.error_id, "path": request.path,
                                                "field": err.expression})
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

    @app.get("/health")
    def health() -> Response:
        return json_response({"status": "ok", "services": len(registry.discovery()["services"])})

    @app.get("/cds-services")
    def discovery() -> Response:
        authenticate(settings.auth_discovery)
        return json_response(registry.discovery())

    def service_or_404(service_id: str) -> ServiceDefinition:
        service = registry.get(service_id)
        if service is None:
            raise NotFound(f"no CDS service {service_id!r}")
        return service

    @app.post("/cds-services/<service_id>")
    def call(service_id: str) -> Response:
        started = time.perf_counter()
        service = service_or_404(service_id)
        authenticate()
        hook_body: HookBody = parse_json(read_body(), lambda raw: read_hook_body(raw, parses))
        body = hook_body.data
        validators.request(body, service.hook)
        context = dict(body["context"])
        context["patientId"] = bare_id(context["patientId"])
        fhir_server = body.get("fhirServer")
        token = (body.get("fhirAuthorization") or {}).get("access_token")
        deadline = Deadline(settings.fhir_call_deadline)
        opened: list[FHIRClient] = []

        def client() -> FHIRClient | None:
            if not fhir_server:
                return None
            fhir = FHIRClient(fhir_server, settings, access_token=token, deadline=deadline, session=fhir_session,
                              resolver=resolver)
            opened.append(fhir)
            return fhir

        try:
            resolved = resolve(list(service.prefetch), body, client)
        except PrefetchUnavailable as exc:
            card = unsupported_version_card(client, exc.key) if exc.fhir_status in UNKNOWN_TYPE_STATUSES else None
            if card is None:
                raise
            log.info("hook call", extra={"hookInstance": body.get("hookInstance"), "service": service.id, "status": 200,
                                         "unsupported_fhir_version": True})
            return json_response({"cards": [card]})
        finally:  # outbound work is over: stop the deadline's watchdog, close the connections
            deadline.close()
            for fhir in opened:
                fhir.close()
        today: date = now().date()
        # Nothing fetched: the prefetch is what the request carried, and its bytes can identify it for the facts cache.
        prefetch_key = hook_body.prefetch_key if not resolved.fetched else None
        result = service.evaluate(HookCall(service.id, service.hook, context, resolved.data,
                                           frozenset(resolved.unavailable), today, prefetch_key))
        response = {"cards": result.cards}
        if settings.validate_responses:
            validators.response(response)
        ledger.record(service.id, result.cards, result.covers)
        log.info("hook call", extra={"hookInstance": body.get("hookInstance"), "service": service.id, "status": 200,
                                     "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                                     "fetched": resolved.fetched, "unavailable": sorted(resolved.unavailable),
                                     "prefetch_reused": hook_body.reused,
                                     **{k: v for k, v in result.stats.items() if k != "topics"}})
        resp = json_response(response)
        if result.after_response is not None:
            resp.call_on_close(after_response(result.after_response))
        resp.call_on_close(after_response(lambda: parses.remember(hook_body)))  # it keeps only what it should
        return resp

    def after_response(work: Callable[[], None]) -> Callable[[], None]:
        """Bookkeeping run by the WSGI server once the response has been sent; it never fails the call."""
        def run() -> None:
            try:
                work()
            except Exception as exc:
                log.warning("after-response work failed", extra={"error": type(exc).__name__})
        return run

    def unsupported_version_card(client: Callable[[], FHIRClient | None], key: str) -> dict[str, Any] | None:
        """A required key could not be fetched: if the FHIR server is pre-R4, say so in one info card instead of 412."""
        try:
            fhir = client()
            if fhir is None:
                return None
            metadata = fhir.get_json(fhir.url_for("metadata"))
        except FHIRAccessError:
            return None
        version = metadata.get("fhirVersion")
        if not isinstance(version, str) or version.startswith("4."):
            return None
        return renderer.render(version_card(version, key, fhir.base_url))

    @app.post("/cds-services/<service_id>/feedback")
    def feedback(service_id: str) -> Response:
        service = service_or_404(service_id)
        authenticate()
        body = read_json()
        validators.feedback(body)
        ledger.ensure_running()  # its thread also prunes: a worker that only takes feedback runs it too
        stored = store.append(service.id, body["feedback"])
        log.info("feedback", extra={"service": service.id, "status": 200, "records": stored})
        return json_response({})

    @app.get("/cds-services/<service_id>/feedback/summary")
    def feedback_summary(service_id: str) -> Response:
        service = service_or_404(service_id)
        authenticate()
        return json_response({"service": service.id, "summary": store.summary(service.id)})

    return app
