"""The structure checkers: each a function of a source tree, read with ``ast`` (nothing imported), listing offenders."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import setuptools

PROJECT = ("cds_service", "hooks", "sandbox", "bench")  # the project's packages (tests and scripts use them)
PROTOCOL, NOT_IN_PROTOCOL = "cds_service", ("hooks", "bench", "sandbox")
SOURCE_DIRS = (*PROJECT, "scripts", "tests")  # where the length rule applies: every Python file we write
MAX_LINES = 400
LENGTH_MARKER = "Length:"  # a line of the module docstring starting with this says why the module is longer
TOOL_EXTRAS = ("tools", "test")  # the extras the tools and tests install; every other extra is the service's
KNOWN_TOOL_ONLY = {"markdown", "rich", "playwright", "hypothesis", "responses", "pytest"}
SKIP_DIRS = {"__pycache__", "node_modules", ".venv", ".git"}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # the absolute dotted name after ``import`` or ``from`` ("" when a relative import leaves the tree)
    names: tuple[str, ...]  # what a ``from`` import takes from it (empty for ``import x``)
    line: int
    path: Path


def python_files(root: Path, top: str) -> Iterator[Path]:
    for path in sorted((root / top).rglob("*.py")):
        if not SKIP_DIRS & set(path.relative_to(root).parts):
            yield path


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    return {module_name(root, path): path for top in packages for path in python_files(root, top)}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _dynamic_target(node: ast.Call) -> str | None:
    """``importlib.import_module("x")`` / ``__import__("x")`` with a literal name."""
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if (
        name in ("import_module", "__import__")
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and not node.args[0].value.startswith(".")
    ):
        return node.args[0].value
    return None


def imports(root: Path, path: Path, *, module_level: bool = False) -> list[Import]:
    """Every import in a file (functions, ``if TYPE_CHECKING:`` blocks and literal dynamic imports included), or with
    ``module_level`` only those that run when the module is imported (no function bodies, no TYPE_CHECKING block)."""
    importer = module_name(root, path)
    package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    found: list[Import] = []

    def visit(node: ast.AST) -> None:
        if module_level and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return
        if module_level and isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.orelse:
                visit(stmt)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(importer, alias.name, (), node.lineno, path) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level - 1 <= len(package) else None
                target = "" if not base else ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.append(Import(importer, target, tuple(a.name for a in node.names), node.lineno, path))
        elif isinstance(node, ast.Call) and not module_level and (dynamic := _dynamic_target(node)):
            found.append(Import(importer, dynamic, (), node.lineno, path))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def _where(imp: Import, root: Path) -> str:
    return f"{imp.path.relative_to(root)}:{imp.line}"


# --- (a) the protocol package imports no content and no tools -------------------------------------------------------


def protocol_violations(root: Path) -> list[str]:
    """Imports in cds_service/ of hooks, bench or sandbox (anywhere in a module), or relative imports leaving it."""
    bad = []
    for path in python_files(root, PROTOCOL):
        for imp in imports(root, path):
            if not imp.target:
                bad.append(f"{_where(imp, root)}: relative import beyond the top-level package")
            elif imp.target.split(".")[0] in NOT_IN_PROTOCOL:
                bad.append(f"{_where(imp, root)}: imports {imp.target}")
    return bad


# --- (b) no import circle among the project's modules --------------------------------------------------------------


def import_graph(root: Path, packages: tuple[str, ...] = PROJECT) -> dict[str, dict[str, int]]:
    """module → {module it imports at import time: line}. ``from a import b`` is an edge to a.b when that is a module,
    else to a; ``import a.b`` an edge to a.b (its parents are packages already being imported, not a circle)."""
    known = modules(root, packages)
    graph: dict[str, dict[str, int]] = {name: {} for name in known}
    for name, path in known.items():
        for imp in imports(root, path, module_level=True):
            targets = [f"{imp.target}.{n}" if f"{imp.target}.{n}" in known else imp.target for n in imp.names] or [
                imp.target
            ]
            for target in targets:
                while target and target not in known:  # `import a.b.attr`-like names: the module that holds them
                    target = target.rpartition(".")[0]
                if target and target != name:  # a package's __init__ taking names from itself is no circle
                    graph[name].setdefault(target, imp.line)
    return graph


# Complexity: Tarjan's strongly connected components, iterative, then the shortest circle in each.
def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:  # noqa: C901
    """One circle (first module repeated at the end) per strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while (member := stack.pop()) != node:
                group.append(member)
            groups.append([node, *group])

    for node in sorted(graph):
        if node not in index:
            connect(node)
    found = []
    for group in groups:
        if len(group) == 1 and group[0] not in graph[group[0]]:
            continue
        members, start = set(group), min(group)
        paths, seen = {start: [start]}, {start}
        queue = [start]
        while queue:  # breadth first: the shortest way back to the start
            node = queue.pop(0)
            for nxt in sorted(graph[node]):
                if nxt == start:
                    found.append([*paths[node], start])
                    queue = []
                    break
                if nxt in members and nxt not in seen:
                    seen.add(nxt)
                    paths[nxt] = [*paths[node], nxt]
                    queue.append(nxt)
    return sorted(found)


def describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    return " → ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)) + f" → {cycle[-1]}"


# --- (c) no module over 400 lines unless it says why ----------------------------------------------------------------


def long_modules(root: Path, dirs: tuple[str, ...] = SOURCE_DIRS, limit: int = MAX_LINES) -> list[str]:
    """Files over the limit whose module docstring has no line starting ``Length:`` followed by a reason."""
    offenders = []
    for top in dirs:
        for path in python_files(root, top):
            text = path.read_text()
            count = len(text.splitlines())
            if count <= limit:
                continue
            doc = ast.get_docstring(ast.parse(text)) or ""
            if not any(
                line.strip().startswith(LENGTH_MARKER) and line.strip()[len(LENGTH_MARKER) :].strip()
                for line in doc.splitlines()
            ):
                offenders.append(f"{path.relative_to(root)}: {count} lines")
    return offenders


# --- (d) the production wheel needs no tool's dependency -----------------------------------------------------------


def _dist(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def tool_only_modules(pyproject: dict) -> set[str]:
    """Top-level modules of the distributions only the tools' extras install (not the service's dependencies or its
    other extras), plus the tools' dependencies we know of."""
    project = pyproject["project"]
    extras = project.get("optional-dependencies", {})
    service = {_dist(r) for r in project.get("dependencies", [])} | {
        _dist(r) for name, reqs in extras.items() if name not in TOOL_EXTRAS for r in reqs
    }
    tools = {_dist(r) for name in TOOL_EXTRAS for r in extras.get(name, [])} - service
    provides: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            provides.setdefault(_dist(dist), set()).add(module)
    return KNOWN_TOOL_ONLY | {m for dist in tools for m in provides.get(dist, {dist.replace("-", "_")})}


def wheel_packages(root: Path, pyproject: dict) -> list[str]:
    """The packages ``[tool.setuptools.packages.find]`` puts in the wheel, found as setuptools finds them."""
    find = pyproject["tool"]["setuptools"]["packages"]["find"]
    finder = setuptools.find_namespace_packages if find.get("namespaces", True) else setuptools.find_packages
    where = root / find.get("where", ["."])[0]
    return sorted(finder(where=str(where), include=find.get("include", ["*"]), exclude=find.get("exclude", [])))


def wheel_tool_imports(root: Path) -> list[str]:
    """Imports, anywhere in the wheel's modules, of a module only the tools' extras install."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    forbidden = tool_only_modules(pyproject)
    bad = []
    for package in wheel_packages(root, pyproject):
        for path in sorted((root / package.replace(".", "/")).glob("*.py")):
            bad += [
                f"{_where(imp, root)}: imports {imp.target}"
                for imp in imports(root, path)
                if imp.target.split(".")[0] in forbidden
            ]
    return sorted(bad)
