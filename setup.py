"""The one build step pyproject.toml cannot declare: with ``BPCDS_MYPYC=1`` the modules that read a chart into facts
(``COMPILED``) are compiled to C extensions with mypyc, the compiler the mypy project ships (README "Compiled build");
without it the wheel is pure Python, as the editable checkout always is. Everything else about the package is in
pyproject.toml. The image's build stage sets it; ``make test`` runs the service's tests again on a compiled copy.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import setup

# The walk over a prefetch (about 1.5 ms of a typical first look in Python) and the helpers it calls per record. Each
# stays plain Python too. Calls inside compiled code are bound when it is compiled, so nothing may rely on replacing one
# of these modules' functions at run time (the suite, run on a compiled copy, shows nothing does).
COMPILED = [
    "cds_service/durations.py",
    "cds_service/terminology.py",
    "cds_service/snapshot/base.py",
    "cds_service/snapshot/conditions.py",
    "cds_service/snapshot/doses.py",
    "cds_service/snapshot/facts.py",
    "cds_service/snapshot/fields.py",
    "cds_service/snapshot/medications.py",
    "cds_service/snapshot/observations.py",
    "cds_service/snapshot/orders.py",
    "cds_service/snapshot/reader.py",
]


def compiled_extensions() -> list[Any]:
    if os.environ.get("BPCDS_MYPYC", "").strip().lower() not in ("1", "true", "yes", "on"):
        return []
    if {"editable_wheel", "develop"} & set(sys.argv):  # an editable checkout runs its source: edits take effect
        print("BPCDS_MYPYC ignored for an editable install", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify  # mypy's compiler: requirements/build.txt pins it
    except ImportError:
        raise SystemExit(
            "BPCDS_MYPYC=1 needs mypy where the wheel is built: pip install -r requirements/build.txt, then build with"
            " --no-build-isolation (as the Dockerfile does)"
        ) from None

    # group_name: mypyc's shared runtime module goes inside the package (cds_service._compiled__mypyc), not top level
    return mypycify(COMPILED, opt_level="3", group_name="cds_service._compiled")


setup(ext_modules=compiled_extensions())
