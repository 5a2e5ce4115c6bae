"""The checkout: protocol imports no content or tools, no import circle, no unexplained long module, lean wheel."""

from __future__ import annotations

import tomllib

from tests.architecture import (
    KNOWN_TOOL_ONLY,
    PROTOCOL,
    cycles,
    describe,
    import_graph,
    long_modules,
    modules,
    protocol_violations,
    tool_only_modules,
    wheel_packages,
    wheel_tool_imports,
)
from tests.conftest import ROOT


def test_the_protocol_package_imports_no_content_and_no_tools():
    assert len(modules(ROOT, (PROTOCOL,))) > 20  # the walk found the package
    assert protocol_violations(ROOT) == []


def test_no_import_circle_among_the_projects_modules():
    graph = import_graph(ROOT)
    assert {"cds_service.app", "hooks.wsgi", "sandbox.replay", "bench.bench"} <= set(graph)
    assert graph["hooks.wsgi"]  # edges were found
    assert [describe(c, graph) for c in cycles(graph)] == []


def test_no_module_over_400_lines_without_a_reason():
    assert long_modules(ROOT) == []


def test_the_wheel_imports_no_tool_only_dependency():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert {"cds_service", "cds_service.snapshot", "hooks", "hooks.rules"} <= set(wheel_packages(ROOT, pyproject))
    assert not {p for p in wheel_packages(ROOT, pyproject) if p.split(".")[0] in ("sandbox", "bench", "tests")}
    assert KNOWN_TOOL_ONLY <= tool_only_modules(pyproject)
    assert wheel_tool_imports(ROOT) == []
