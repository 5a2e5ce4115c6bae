"""Each structure checker (tests/architecture.py) on a synthetic tree that breaks its rule finds what it is for."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.architecture import (
    cycles,
    describe,
    import_graph,
    long_modules,
    protocol_violations,
    tool_only_modules,
    wheel_packages,
    wheel_tool_imports,
)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_protocol_check_finds_absolute_relative_and_function_level_imports(tmp_path):
    root = _tree(
        tmp_path,
        {
            "cds_service/__init__.py": "",
            "cds_service/ok.py": "from . import other\nfrom .snapshot import reader\nimport cds_service.app\n",
            "cds_service/top.py": "import hooks.engine\n",
            "cds_service/sub/__init__.py": "from sandbox import replay\n",
            "cds_service/sub/inner.py": "def f():\n    from bench.bench import run\n    return run\n",
            "cds_service/dyn.py": "import importlib\n\ndef f():\n    return importlib.import_module('hooks.wsgi')\n",
            "cds_service/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hooks import x\n",
            "cds_service/escape.py": "from ... import hooks\n",
            "hooks/__init__.py": "import cds_service\n",  # the other way round is the design
        },
    )
    assert protocol_violations(root) == [
        "cds_service/dyn.py:4: imports hooks.wsgi",
        "cds_service/escape.py:1: relative import beyond the top-level package",
        "cds_service/sub/__init__.py:1: imports sandbox",
        "cds_service/sub/inner.py:2: imports bench.bench",
        "cds_service/top.py:1: imports hooks.engine",
        "cds_service/typed.py:3: imports hooks",
    ]


def test_the_circle_check_reports_the_circle_and_ignores_deferred_imports(tmp_path):
    root = _tree(
        tmp_path,
        {
            "hooks/__init__.py": "",
            "hooks/a.py": "from .b import thing\n",
            "hooks/b.py": "from hooks import c\n",
            "hooks/c.py": "import hooks.a\n",
            "hooks/d.py": (
                "from typing import TYPE_CHECKING\nimport hooks.e\nif TYPE_CHECKING:\n    from hooks.a import x\n"
            ),
            "hooks/e.py": "def f():\n    from hooks import d\n    return d\n",  # deferred: no circle with d
            "hooks/f.py": "from . import g\n",
            "hooks/g.py": "class G:\n    from hooks.f import y\n",  # a class body runs at import
            "cds_service/__init__.py": "from cds_service import app\n",
            "cds_service/app.py": "from cds_service import VERSION\n",  # the package's __init__ and back
        },
    )
    graph = import_graph(root)
    assert (
        graph["hooks.a"] == {"hooks.b": 1} and graph["hooks.c"] == {"hooks.a": 1} and graph["hooks.d"] == {"hooks.e": 2}
    )
    assert cycles(graph) == [
        ["cds_service", "cds_service.app", "cds_service"],
        ["hooks.a", "hooks.b", "hooks.c", "hooks.a"],
        ["hooks.f", "hooks.g", "hooks.f"],
    ]
    assert describe(cycles(graph)[1], graph) == "hooks.a (line 1) → hooks.b (line 1) → hooks.c (line 1) → hooks.a"
    assert cycles({"x": {"x": 1}}) == [["x", "x"]]


def test_the_length_check_lists_long_modules_without_a_reason(tmp_path):
    body = "x = 1\n" * 400
    root = _tree(
        tmp_path,
        {
            "hooks/short.py": '"""Short."""\n' + "x = 1\n" * 399,
            "hooks/long.py": '"""Long."""\n' + body,
            "hooks/empty_reason.py": '"""Long.\n\nLength:\n"""\n' + body,
            "hooks/elsewhere.py": '"""Long."""\n# Length: a comment is not the docstring\n' + body,
            "hooks/reasoned.py": '"""Long.\n\nLength: one table, read top to bottom.\n"""\n' + body,
            "tests/test_long.py": body + "y = 2\n",
            "hooks/node_modules/vendored.py": body * 2,
        },
    )
    assert long_modules(root, ("hooks", "tests")) == [
        "hooks/elsewhere.py: 402 lines",
        "hooks/empty_reason.py: 404 lines",
        "hooks/long.py: 401 lines",
        "tests/test_long.py: 401 lines",
    ]


def test_the_wheel_check_follows_pyproject_and_the_tools_extras(tmp_path):
    root = _tree(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "x"\ndependencies = ["flask>=3"]\n'
            '[project.optional-dependencies]\npg = ["psycopg[binary]>=3"]\n'
            'tools = ["fancytool>=1", "markdown"]\ntest = ["psycopg[binary]>=3", "pytest"]\n'
            '[tool.setuptools.packages.find]\ninclude = ["svc*"]\n',
            "svc/__init__.py": "import flask\n",
            "svc/store.py": "def connect():\n    import psycopg\n    return psycopg\n",  # a service extra: allowed
            "svc/page.py": "def render():\n    from markdown import markdown\n    return markdown\n",
            "svc/data/__init__.py": "import fancytool.core\n",
            "svc/data/more.py": "import pytest\n",
            "tools/__init__.py": "import pytest\nimport fancytool\n",  # not in the wheel
        },
    )
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert wheel_packages(root, pyproject) == ["svc", "svc.data"]
    assert "fancytool" in tool_only_modules(pyproject) and "psycopg" not in tool_only_modules(pyproject)
    assert wheel_tool_imports(root) == [
        "svc/data/__init__.py:1: imports fancytool.core",
        "svc/data/more.py:1: imports pytest",
        "svc/page.py:2: imports markdown",
    ]
