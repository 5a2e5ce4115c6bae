"""Configuration: one place, layered.

Defaults (below, each with the reason for its value) → a TOML file (``--config`` or ``BPCDS_CONFIG``)
→ environment variables ``BPCDS_<KEY>`` (converted to the field's annotated type by pydantic: :func:`from_env`)
→ explicit overrides (tests, ``create_app(config=...)``).

Clinical thresholds live in :mod:`hooks.thresholds` with their guideline source beside each default;
a site overrides them in the ``[thresholds]`` table of the TOML file or with ``BPCDS_THRESHOLD_<NAME>``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import tomllib
import typing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config_env import from_env
from .cors import compile_origins

ENV_PREFIX = "BPCDS_"


def _setting(default: Any, reason: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=partial(copy.deepcopy, default), metadata={"reason": reason}, **kw)
    return field(default=default, metadata={"reason": reason}, **kw)


@dataclass
class Settings:
    # --- serving -------------------------------------------------------------------------------
    environment: str = _setting(
        "development",
        "development relaxes CORS/HTTPS rules for local work; 'production' for real data "
        "(the README's 'What production changes' table says what it changes)",
    )
    host: str = _setting("127.0.0.1", "loopback by default: nothing is exposed until you choose to")
    port: int = _setting(8080, "the port the README and the sandbox guide use")
    workers: int = _setting(2, "gunicorn sync workers; one per core on the 2-core reference machine")
    replicas: int = _setting(
        1,
        "copies of the service behind one address, declared (a process cannot count them): more than "
        "one needs a replay cache shared across hosts (redis_url or a PostgreSQL database_url)",
    )
    public_base_url: str = _setting(
        "",
        "external https URL of the service (what EHRs call) that JWT `aud` must name; required in "
        "production; empty (development only) = the URL the request came to, Host header included",
    )
    forwarded_allow_ips: list[str] = _setting(
        [],
        "proxy addresses whose X-Forwarded-Proto gunicorn believes ('*' = any); empty = "
        "none: no forwarded header changes what a request says, and the JWT `aud` of "
        "production never depends on one (public_base_url)",
    )
    insecure: bool = _setting(
        False, "allow binding a non-loopback address with no trusted JWT clients (never in production)"
    )
    dev_pages: bool = _setting(True, "serve the /sandbox review page (development aid)")
    validate_responses: bool = _setting(
        False, "validate every response against the response schema (tests and debugging; costs time)"
    )
    site_timezone: str = _setting("UTC", "calendar day used for 'today' in day arithmetic")
    log_level: str = _setting("INFO", "structured JSON request log at INFO")

    # --- request limits ----------------------------------------------------------------------
    max_body_bytes: int = _setting(5 * 1024 * 1024, "reliability.md: body limit 5 MB → 413")
    max_bundle_entries: int = _setting(10_000, "bounded work per prefetch Bundle / draftOrders")

    # --- prefetch kept between calls (per worker, memory only) -----------------------------------
    snapshot_cache_entries: int = _setting(
        16,
        "order-select re-sends the same prefetch on every keystroke: its parse and the facts "
        "read from it are reused, keyed by its exact bytes or content; 0 = off (no patient "
        "data kept between calls)",
    )
    snapshot_cache_seconds: float = _setting(
        120.0, "how long a prefetch's parse and facts stay in worker memory (a keystroke stream lasts seconds)"
    )
    snapshot_cache_max_resources: int = _setting(
        2_000, "charts with more resources are read every call (bounds the memory the cache holds)"
    )
    snapshot_cache_max_bytes: int = _setting(
        2 * 1024 * 1024,
        "charts whose prefetch JSON is larger are read every call (a few large "
        "resources can be as heavy as many small ones; typical ≈ 0.3 MB)",
    )
    snapshot_cache_admission: int = _setting(
        2,
        "a chart is kept from its n-th sighting, each within snapshot_cache_seconds of the last (1 = its first): "
        "first looks at charts that "
        "never come back are most traffic, and keeping each (then freeing the one it evicts) costs more than the "
        "cache saves; a keystroke stream is kept from its second call (README 'Performance')",
    )

    # --- CORS --------------------------------------------------------------------------------
    cors_origins: list[str] = _setting(
        ["https://sandbox.cds-hooks.org", "http://localhost:8080", "http://127.0.0.1:8080"],
        "browser origins allowed to call the service: exact scheme://host[:port] or scheme://*.domain[:port] (one or "
        "more "
        "subdomain labels, anchored); '*' only in development",
    )

    # --- outbound FHIR access ----------------------------------------------------------------
    fhir_allowed_origins: list[str] = _setting(
        ["https://*", "http://127.0.0.1:*", "http://localhost:*"],
        "fhirServer allowlist (scheme://host[:port], '*' wildcards); production requires https entries",
    )
    fhir_allow_loopback: bool | None = _setting(
        None,
        "FHIR servers on loopback addresses (127.0.0.1, ::1): unset = allowed in "
        "development (local test servers), refused in production (a sidecar on "
        "this host is reachable only if set true explicitly)",
    )
    fhir_allow_private_networks: bool = _setting(
        False, "refuse RFC1918/link-local/metadata targets (SSRF) unless a site opts in"
    )
    fhir_connect_timeout: float = _setting(2.0, "fail fast on unreachable FHIR servers")
    fhir_read_timeout: float = _setting(2.5, "a single slow response must not eat the whole call budget")
    fhir_call_deadline: float = _setting(3.0, "reliability.md: hard per-call deadline across all outbound requests")
    fhir_max_response_bytes: int = _setting(10 * 1024 * 1024, "cap on one FHIR response body")
    fhir_max_pages: int = _setting(10, "cap on `next` pages followed per prefetch key")
    fhir_max_entries: int = _setting(5_000, "cap on entries gathered per prefetch key")

    # --- client authentication (JWT) ---------------------------------------------------------
    trusted_clients: list[dict[str, Any]] = _setting(
        [],
        "CDS clients allowed to call: [{iss, jku and/or pinned jwks | jwks_file, tenants?}]; empty = auth off "
        "(loopback only)",
    )
    trusted_clients_file: str = _setting("", "JSON file holding trusted_clients (alternative to inline)")
    auth_discovery: bool = _setting(False, "require a JWT on GET /cds-services too (spec: SHOULD)")
    jwt_algorithms: list[str] = _setting(["ES384", "RS384"], "CDS Hooks 2.0: ES384 and RS384; never none or HMAC")
    jwt_clock_skew: int = _setting(5, "the sandbox rounds iat (~0.5 s early); a few seconds of skew")
    jwt_max_lifetime: int = _setting(900, "longest token lifetime accepted (one EHR issues 900 s tokens)")
    jwks_cache_max_age: int = _setting(3600, "cap on JWKS caching even if Cache-Control allows longer")
    jwks_min_refresh_interval: int = _setting(60, "rate limit on JWKS refetch for an unknown kid")
    jwks_max_bytes: int = _setting(256 * 1024, "a JWKS larger than this is refused (fail closed)")
    replay_cache: str = _setting(
        "auto",
        "where client JWT (iss, jti) pairs are remembered so a token is accepted once: auto = "
        "Redis if redis_url is set, else the database (database_url: SQLite is shared by "
        "this host's workers, PostgreSQL by every replica); database; redis; memory = this "
        "process only (explicit opt-in; refused in production with several workers or replicas)",
    )
    redis_url: str = _setting(
        "",
        "Redis for the jti replay cache, shared by every worker and replica "
        "(redis://cache.internal:6379/0); with replay_cache auto it takes precedence over the database",
    )

    # --- feedback ----------------------------------------------------------------------------
    database_url: str = _setting(
        "sqlite:///var/feedback.sqlite3", "append-only feedback store; postgresql://… for PostgreSQL"
    )
    feedback_retention_days: int = _setting(
        400,
        "feedback is deleted this long after it was received: a year of quality-review "
        "statistics (the summary) plus a month's margin for the yearly review",
    )
    issued_cards_retention_days: int = _setting(
        30,
        "issued-card records no feedback refers to are deleted after this: they only "
        "join feedback (sent when a clinician acts on a card, minutes to days later) to "
        "its topic, and most cards never get any (the ledger grew 24 MB per ~90k calls)",
    )

    # --- health and metrics ------------------------------------------------------------------
    ready_timeout: float = _setting(
        1.0,
        "seconds each /ready check (feedback store query, Redis PING) may take; the checks run at once, so a probe "
        "is answered in about this time whatever a dependency does",
    )
    metrics_enabled: bool = _setting(
        True, "serve Prometheus metrics (GET /metrics, or on metrics_port); false = no metrics endpoint"
    )
    metrics_port: int = _setting(
        0,
        "0 = /metrics on the main port; N = a separate listener on metrics_host:N serving only the metrics (started "
        "in the gunicorn master, summing every worker), and none on the main port",
    )
    metrics_host: str = _setting(
        "127.0.0.1",
        "address of the separate metrics listener (metrics_port): loopback by default; 0.0.0.0 for a Prometheus "
        "scraping the pod's address (reachable by whoever reaches that port: restrict it on the network)",
    )
    metrics_bearer_token_file: str = _setting(
        "",
        "file holding a bearer token that /metrics on the main port requires (Authorization: Bearer …, compared in "
        "constant time); production requires this or metrics_port, so metrics are not public on the hook port",
    )
    metrics_dir: str = _setting(
        "",
        "PROMETHEUS_MULTIPROC_DIR for the gunicorn workers' metrics (serve empties it at start); empty = a new "
        "directory under the system temp dir, removed at exit",
    )

    # --- clinical thresholds (see hooks.thresholds for defaults and sources) ------------------
    thresholds: dict[str, Any] = _setting(
        {}, "site overrides of clinical thresholds; defaults and sources in hooks/thresholds.py"
    )

    def __post_init__(self) -> None:
        if self.fhir_allow_loopback is None:  # not set anywhere: the environment decides
            self.fhir_allow_loopback = not self.is_production

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    def validate(self) -> None:
        if self.environment not in {"development", "production"}:
            raise ValueError("environment must be 'development' or 'production'")
        if self.is_production and "*" in self.cors_origins:
            raise ValueError("cors_origins '*' is only acceptable in development")
        compile_origins(self.cors_origins)  # a malformed entry is refused here, at start-up
        if self.public_base_url:
            parts = urlsplit(self.public_base_url)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.query
                or parts.fragment
                or parts.username
            ):
                raise ValueError(
                    "public_base_url must be an absolute URL such as https://cds.hospital.example/backpain"
                )
        if self.is_production:
            self._validate_production()
        self._validate_replay()
        if self.feedback_retention_days < 1 or self.issued_cards_retention_days < 1:
            raise ValueError("feedback_retention_days and issued_cards_retention_days must be at least 1")
        if self.fhir_read_timeout > self.fhir_call_deadline:
            raise ValueError("fhir_read_timeout must not exceed fhir_call_deadline")
        if any(a.upper().startswith(("HS", "NONE")) for a in self.jwt_algorithms):
            raise ValueError("jwt_algorithms may not contain 'none' or HMAC algorithms")
        self._validate_metrics()

    def _validate_metrics(self) -> None:
        if not 0 < self.ready_timeout <= 10:
            raise ValueError("ready_timeout must be more than 0 and at most 10 seconds")
        if not 0 <= self.metrics_port <= 65535:
            raise ValueError("metrics_port must be 0 (the main port) or a TCP port")
        if self.metrics_port and self.metrics_port == self.port:
            raise ValueError("metrics_port must differ from port (0 serves /metrics on the main port)")
        if self.is_production and self.metrics_enabled and not (self.metrics_port or self.metrics_bearer_token_file):
            raise ValueError(
                "production does not serve /metrics openly on the hook port: set metrics_port (a separate listener), "
                "metrics_bearer_token_file (a token /metrics requires), or metrics_enabled = false"
            )

    def load_metrics_token(self) -> bytes | None:
        """The bearer token /metrics on the main port requires (None: none configured). An empty file is refused."""
        if not self.metrics_bearer_token_file:
            return None
        token = Path(self.metrics_bearer_token_file).read_bytes().strip()
        if not token:
            raise ValueError("metrics_bearer_token_file is empty")
        return token

    def replay_backend(self) -> str:
        """redis | database | memory: what ``replay_cache`` resolves to."""
        if self.replay_cache == "auto":
            return "redis" if self.redis_url else "database"
        return self.replay_cache

    def replay_scope(self) -> str:
        """Who shares the replay cache: process (memory), host (an SQLite file) or replicas (PostgreSQL, Redis)."""
        backend = self.replay_backend()
        if backend == "redis":
            return "replicas"
        if backend == "memory":
            return "process"
        if urlsplit(self.database_url).scheme in ("postgresql", "postgres"):
            return "replicas"
        return "process" if sqlite_path(self.database_url) == ":memory:" else "host"

    def _validate_replay(self) -> None:
        if self.replay_cache not in ("auto", "database", "redis", "memory"):
            raise ValueError("replay_cache must be auto, database, redis or memory")
        if self.replay_cache == "redis" and not self.redis_url:
            raise ValueError("replay_cache 'redis' needs redis_url")
        if self.workers < 1 or self.replicas < 1:
            raise ValueError("workers and replicas must be at least 1")
        if not self.is_production:
            return
        scope = self.replay_scope()
        if self.replicas > 1 and scope != "replicas":
            raise ValueError(
                f"production with replicas = {self.replicas} needs a replay cache every replica shares: set "
                "redis_url or a PostgreSQL database_url (an SQLite file is one host's; memory one process's)"
            )
        if self.workers > 1 and scope == "process":
            raise ValueError(
                f"production with workers = {self.workers} needs a replay cache the workers share: replay_cache "
                "'memory' (or an in-memory database) lets each worker accept the same token once; use auto"
            )

    def _validate_production(self) -> None:
        """What ``environment = "production"`` requires (the README's "What production changes" table)."""
        for origin in self.fhir_allowed_origins:
            if not origin.startswith("https://"):
                raise ValueError(f"production requires https FHIR origins, got {origin!r}")
        for origin in self.cors_origins:
            if not origin.startswith("https://"):
                raise ValueError(f"production requires https cors_origins, got {origin!r} (set cors_origins)")
        if not self.public_base_url.startswith("https://"):
            raise ValueError(
                "production requires public_base_url, the https URL EHRs call (JWT aud must name it; "
                "without it the audience would come from the request's Host header)"
            )
        if not (self.trusted_clients or self.trusted_clients_file):
            raise ValueError(
                "production requires trusted_clients: client authentication cannot be off in production, "
                "whatever the bind address (a sidecar or proxy makes loopback reachable)"
            )
        if self.insecure:
            raise ValueError("insecure is never allowed in production")

    def load_trusted_clients(self) -> list[dict[str, Any]]:
        clients = list(self.trusted_clients)
        if self.trusted_clients_file:
            clients.extend(json.loads(Path(self.trusted_clients_file).read_text()))
        return clients


def sqlite_path(database_url: str) -> str:
    """The file of an ``sqlite:///path`` (or ``sqlite://``) URL; ``:memory:`` when it names none."""
    path = (
        database_url[len("sqlite:///") :] if database_url.startswith("sqlite:///") else database_url[len("sqlite://") :]
    )
    return path or ":memory:"


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build Settings from defaults, then file, then environment, then overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        with open(path, "rb") as fh:
            values.update(tomllib.load(fh))
    names = {f.name: f for f in dataclasses.fields(Settings)}
    types = typing.get_type_hints(Settings)  # each field's annotation, resolved (this module's are strings)
    for name in names:
        key = ENV_PREFIX + name.upper()
        if key in env and name != "thresholds":
            values[name] = from_env(key, env[key], types[name])
    thresholds = dict(values.get("thresholds", {}))
    for key, raw in env.items():
        if key.startswith(ENV_PREFIX + "THRESHOLD_"):
            thresholds[key[len(ENV_PREFIX + "THRESHOLD_") :].lower()] = from_env(key, raw, float)
    values["thresholds"] = thresholds
    for name, value in (overrides or {}).items():
        if name == "thresholds":
            values["thresholds"] = {**values["thresholds"], **value}
        else:
            values[name] = value
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"unknown configuration keys: {sorted(unknown)}")
    settings = Settings(**values)
    settings.validate()
    return settings


def reference() -> list[tuple[str, Any, str]]:
    """(key, default, reason) for every setting — the README's configuration table is built from this. A default of
    None means "unset": the environment decides (the reason says how)."""

    def default(f: dataclasses.Field[Any]) -> Any:
        return (
            f.default_factory()
            if f.default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING
            else f.default
        )

    return [(f.name, default(f), f.metadata["reason"]) for f in dataclasses.fields(Settings)]
