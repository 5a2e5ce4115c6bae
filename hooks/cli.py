"""``backpain-cds``: the service's command line (``cds_service.cli``) with this product's app, plus the testing tools
(``replay``, ``load-patients``) and benchmark tools (``bench``, ``load-test``, ``serve-floor``) where they are
installed (a development checkout; not the production image)."""

from __future__ import annotations

import importlib
from typing import Any

from cds_service import cli

from .wsgi import create_app

TOOLS = ("sandbox.cli", "bench.bench", "bench.wrk", "bench.decode")  # modules with a register(subparsers) of their own


def _plugins() -> list[Any]:
    found = []
    for name in TOOLS:
        try:
            found.append(importlib.import_module(name).register)
        except ModuleNotFoundError as exc:
            if exc.name != name.split(".")[0]:
                raise  # the tool is there but broken: say so
            # not installed: its commands are simply not offered
    return found


def main(argv: list[str] | None = None) -> int:
    return cli.main(
        argv, app_factory=create_app, plugins=_plugins(), description="CDS Hooks 2.0 service for low back pain care"
    )


if __name__ == "__main__":
    raise SystemExit(main())
