"""``backpain-cds`` command line: serve (gunicorn), feedback summary, configuration reference."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import logging
import sys
from typing import Any

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
    raise SystemExit(f"refusing to bind {host} without trusted JWT clients; configure trusted_clients "
                     "(or pass --insecure in development)")


# A hook call parses its body into ~30,000 containers (typical chart) that all die when the call ends. At Python's
# default first threshold (700) the collector runs dozens of times inside each call, promotes the live body to the
# oldest generation and so triggers full collections: ~10 ms pauses every ~15 calls (the p99). At 50,000 a typical
# call completes without a collection; cyclic garbage is still collected, in larger, rarer batches. The floor
# (serve --floor) runs with the same settings, so benchmark ratios compare like with like.
GC_THRESHOLDS = (50_000, 20, 20)


def gunicorn_options(settings: Any) -> dict[str, Any]:
    """The gunicorn configuration ``serve`` runs with."""
    return {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.workers,
        "preload_app": True,
        "timeout": 30,
        "accesslog": None,  # our JSON request log says what matters, never bodies or tokens
        "limit_request_field_size": 16384,
        # gunicorn's own default believes X-Forwarded-Proto from 127.0.0.1: only the configured proxies now
        "forwarded_allow_ips": ",".join(settings.forwarded_allow_ips),
    }


def serve(args: argparse.Namespace) -> int:
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
        settings = load_settings(args.config, overrides)
    except ValueError as exc:  # a configuration that is refused: say why, without a traceback
        raise SystemExit(f"backpain-cds: refusing to start: {exc}") from None
    check_bind_safety(settings, settings.host)
    if settings.load_trusted_clients() and settings.workers > 1 and settings.replay_scope() == "process":
        print(f"WARNING: replay_cache is per process with {settings.workers} workers: each worker accepts a token once "
              "(development only; production refuses this)", file=sys.stderr)

    from gunicorn.app.base import BaseApplication

    from .app import create_app
    from .floor import floor_app

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options(settings).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            app = floor_app() if args.floor else create_app(settings)
            gc.collect()
            gc.freeze()  # keep start-up objects out of every later collection (and shared after fork)
            gc.set_threshold(*GC_THRESHOLDS)
            return app

    print(f"backpain-cds serving on http://{settings.host}:{settings.port}/cds-services", file=sys.stderr)
    Server().run()
    return 0


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backpain-cds", description="CDS Hooks 2.0 service for low back pain care")
    parser.add_argument("--config", help="TOML configuration file (default: $BPCDS_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the service under gunicorn")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without JWT clients (development)")
    p.add_argument("--floor", action="store_true", help="benchmark floor: a no-op endpoint that reads the body, same server config")
    p.set_defaults(func=serve)
    p = sub.add_parser("feedback-summary", help="accepted/overridden counts per card topic and override reason")
    p.add_argument("--service")
    p.set_defaults(func=feedback_summary)
    p = sub.add_parser("config-reference", help="print every configuration key with its default and reason")
    p.set_defaults(func=config_reference)
    _register_extra(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def _register_extra(sub: Any) -> None:
    """Commands living in their own modules: replay/load-patients and bench/load-test."""
    from . import bench, sandbox_tools

    sandbox_tools.register(sub)
    bench.register(sub)


if __name__ == "__main__":
    raise SystemExit(main())
