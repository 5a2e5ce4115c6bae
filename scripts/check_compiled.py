#!/usr/bin/env python3
"""Check that this tree runs the compiled build: every module setup.py's ``COMPILED`` lists, and mypyc's shared
runtime module, loaded as a C extension once the service is built (``make test-compiled`` runs it in its copy).

    python scripts/check_compiled.py              # exit 1, naming the modules that run as Python source
    python scripts/check_compiled.py --can-build  # exit 1, saying why, when this machine cannot compile them
"""

from __future__ import annotations

import ast
import shutil
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_MODULE = "cds_service._compiled__mypyc"  # setup.py's group_name + mypyc's suffix


def expected_modules(root: Path = ROOT) -> list[str]:
    """setup.py's ``COMPILED`` as module names (read from its source: running it would build), and the runtime."""
    tree = ast.parse((root / "setup.py").read_text())
    (value,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "COMPILED"]
    return sorted([p.removesuffix(".py").replace("/", ".") for p in ast.literal_eval(value)] + [RUNTIME_MODULE])


def cannot_build() -> str:
    """Why this interpreter cannot build C extensions here ("" when it can): a C compiler and Python's headers."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return f"no Python headers ({sysconfig.get_paths()['include']}/Python.h)"
    return ""


def main() -> int:
    if sys.argv[1:] == ["--can-build"]:
        reason = cannot_build()
        print(reason or "can build")
        return 1 if reason else 0
    sys.path.insert(0, str(ROOT))
    import hooks.wsgi  # noqa: F401 - loads the service, so every module it runs is imported
    from cds_service.build_info import compiled_modules

    missing = sorted(set(expected_modules()) - set(compiled_modules()))
    if missing:
        print(f"not compiled: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"compiled: {len(compiled_modules())} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
