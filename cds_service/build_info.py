"""Whether this installation runs the compiled build (README "Compiled build"): the package's modules loaded as C
extensions (mypyc, ``BPCDS_MYPYC=1`` at build time) rather than Python source."""

from __future__ import annotations

import sys
from importlib.machinery import EXTENSION_SUFFIXES


def compiled_modules() -> list[str]:
    """The names of the package's loaded modules that are C extensions (empty: pure Python)."""
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.split(".")[0] in ("cds_service", "hooks")
        and str(getattr(module, "__file__", "") or "").endswith(tuple(EXTENSION_SUFFIXES))
    )


def build_description() -> str:
    """ "compiled (N modules)" or "pure Python", for the start-up line and ``/health``-adjacent diagnostics."""
    compiled = compiled_modules()
    return f"chart reading compiled ({len(compiled)} modules)" if compiled else "pure Python"
