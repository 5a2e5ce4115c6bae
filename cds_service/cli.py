"""The service's command line: serve (gunicorn), feedback summary, configuration reference.

Generic: the product supplies its app factory and any further commands (``main(app_factory=…, plugins=…)``); the
product's entry point (``hooks.cli``) does, registering the testing and benchmark tools only where they are installed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import ipaddress
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .build_info import build_description
from .config import load_settings, reference

log = logging.getLogger("backpain_cds.cli")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind_safety(settings: Any, host: str) -> None:
    """Auth may be off only on loopback in development; elsewhere refuse unless --insecure (never in production)."""
    has_clients = bool(settings.load_trusted_clients())
    if has_clients:
        return
    if settings.is_production:  # loopback is no boundary in production: a sidecar or reverse proxy makes it reachable
        raise SystemExit("refusing to start in production without trusted JWT clients; configure trusted_clients")
    if _is_loopback(host):
        return
    if settings.insecure and not settings.is_production:
        log.warning("binding a non-loopback address with client authentication OFF (--insecure)")
        return
    raise SystemExit(
        f"refusing to bind {host} without trusted JWT clients; configure trusted_clients "
        "(or pass --insecure in development)"
    )


# A hook call parses its body into ~30,000 containers (typical chart) that all die when the call ends. At Python's
# default first threshold (700) the collector runs dozens of times inside each call, promotes the live body to the
# oldest generation and so triggers full collections: ~10 ms pauses every ~15 calls (the p99). At 50,000 a typical
# call completes without a collection; cyclic garbage is still collected, in larger, rarer batches. The benchmark's
# floor (``serve-floor``) runs with the same settings (``run_server``), so its ratios compare like with like.
GC_THRESHOLDS = (50_000, 20, 20)


def gunicorn_options(settings: Any) -> dict[str, Any]:
    """The gunicorn configuration ``serve`` runs with: with metrics on, the master marks a dead worker's metrics
    (``child_exit``) and, with ``metrics_port``, serves every worker's metrics on that port itself (``when_ready``)."""
    options: dict[str, Any] = {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.workers,
        "preload_app": True,
        "timeout": 30,
        "accesslog": None,  # our JSON request log says what matters, never bodies or tokens
        "limit_request_field_size": 16384,
        # gunicorn's own default believes X-Forwarded-Proto from 127.0.0.1: only the configured proxies now
        "forwarded_allow_ips": ",".join(settings.forwarded_allow_ips),
    }
    if settings.metrics_enabled:
        options["child_exit"] = _child_exit
        if settings.metrics_port:
            options["when_ready"] = lambda server: start_metrics_listener(settings)
    return options


def _child_exit(server: Any, worker: Any) -> None:
    from .metrics import mark_process_dead

    mark_process_dead(worker.pid)


def start_metrics_listener(settings: Any) -> None:
    """In the gunicorn master, once it is ready: prometheus_client's own HTTP server on metrics_host:metrics_port (a
    thread), answering with every worker's values from the multiprocess directory."""
    from prometheus_client import start_http_server

    from .metrics import multiprocess_registry

    start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=multiprocess_registry())
    print(f"backpain-cds metrics on http://{settings.metrics_host}:{settings.metrics_port}/metrics", file=sys.stderr)


@contextlib.contextmanager
def metrics_directory(settings: Any) -> Iterator[None]:
    """The workers' shared metrics directory (PROMETHEUS_MULTIPROC_DIR) for the life of the server: ``metrics_dir``
    emptied of an earlier run's files (they would be summed in), or a new directory under the system temp dir. At exit
    the master removes what it made; a worker (forked inside this block, leaving through it too) touches nothing."""
    if not settings.metrics_enabled:
        yield
        return
    from .metrics import enable_multiprocess

    master = os.getpid()
    made = not settings.metrics_dir
    path = Path(tempfile.mkdtemp(prefix="backpain-cds-metrics-") if made else settings.metrics_dir)
    path.mkdir(parents=True, exist_ok=True)
    _remove_metric_files(path)
    enable_multiprocess(str(path))
    try:
        yield
    finally:
        if os.getpid() == master:
            if made:
                shutil.rmtree(path, ignore_errors=True)
            else:
                _remove_metric_files(path)


def _remove_metric_files(path: Path) -> None:
    for db in path.glob("*.db"):
        db.unlink(missing_ok=True)


AppFactory = Callable[[Any], Any]  # Settings → WSGI app


def add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback bind without JWT clients (development)"
    )


def server_settings(args: argparse.Namespace) -> Any:
    """The configuration with the command line's --host/--port/--workers/--insecure on top; a refused configuration
    exits with its reason, without a traceback."""
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.workers:
        overrides["workers"] = args.workers
    if args.insecure:
        overrides["insecure"] = True
    try:
        return load_settings(args.config, overrides)
    except ValueError as exc:
        raise SystemExit(f"backpain-cds: refusing to start: {exc}") from None


def run_server(settings: Any, load_app: Callable[[], Any]) -> int:
    """Serve ``load_app()`` under gunicorn with the production options (``gunicorn_options``), preloaded, with the
    garbage collector frozen after start-up and sized for hook calls (``GC_THRESHOLDS``)."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options(settings).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            app = load_app()
            print(f"backpain-cds build: {build_description()}", file=sys.stderr)  # once its modules are loaded
            gc.collect()
            gc.freeze()  # keep start-up objects out of every later collection (and shared after fork)
            gc.set_threshold(*GC_THRESHOLDS)
            return app

    print(f"backpain-cds serving on http://{settings.host}:{settings.port}/cds-services", file=sys.stderr)
    Server().run()
    return 0


def serve(args: argparse.Namespace, app_factory: AppFactory) -> int:
    settings = server_settings(args)
    check_bind_safety(settings, settings.host)
    if settings.load_trusted_clients() and settings.workers > 1 and settings.replay_scope() == "process":
        print(
            f"WARNING: replay_cache is per process with {settings.workers} workers: each worker accepts a token once "
            "(development only; production refuses this)",
            file=sys.stderr,
        )
    with metrics_directory(settings):  # before the app is built: its metrics then count in the shared directory
        return run_server(settings, lambda: app_factory(settings))


def feedback_summary(args: argparse.Namespace) -> int:
    from .feedback import open_store

    settings = load_settings(args.config)
    store = open_store(settings.database_url)
    print(json.dumps(store.summary(args.service), indent=2))
    return 0


def config_reference(_: argparse.Namespace) -> int:
    print("| key | default | why |\n|---|---|---|")
    for key, default, reason in reference():
        print(f"| `{key}` | `{json.dumps(default)}` | {reason.replace('|', chr(92) + '|')} |")  # | escaped for Markdown
    return 0


Plugin = Callable[[Any], None]  # registers further subcommands on the argparse sub-parsers


def main(
    argv: list[str] | None = None,
    *,
    app_factory: AppFactory,
    plugins: Sequence[Plugin] = (),
    prog: str = "backpain-cds",
    description: str = "",
) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", help="TOML configuration file (default: $BPCDS_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the service under gunicorn")
    add_server_options(p)
    p.set_defaults(func=lambda args: serve(args, app_factory))
    p = sub.add_parser("feedback-summary", help="accepted/overridden counts per card topic and override reason")
    p.add_argument("--service")
    p.set_defaults(func=feedback_summary)
    p = sub.add_parser("config-reference", help="print every configuration key with its default and reason")
    p.set_defaults(func=config_reference)
    for register in plugins:
        register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))
