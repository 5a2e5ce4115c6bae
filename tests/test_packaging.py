"""The package as the Dockerfile installs it: built from only what the Dockerfile copies, installed (not editable)
into a fresh environment, and served from there — every module and data file present, a hook call answered."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import requests
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.loadgen import ServerProcess, free_port
from tests.cds_service.auth_support import ISS, JWKS
from tests.conftest import ROOT, bundle, hook_request
from tests.factories import LBP, condition

pytestmark = pytest.mark.slow


def _check_compiled() -> Any:
    """scripts/check_compiled.py, the one reader of what setup.py compiles."""
    spec = importlib.util.spec_from_file_location("check_compiled", ROOT / "scripts" / "check_compiled.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The image always builds the compiled wheel; a machine without a C compiler or Python's headers builds the pure one
# here, and the tests of what compiling adds skip with the reason.
_CHECK = _check_compiled()
CANNOT_BUILD = _CHECK.cannot_build()
COMPILED = [] if CANNOT_BUILD else _CHECK.expected_modules()


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (keyword, arguments): comments dropped, continuation lines joined."""
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")]
    out = []
    for line in "\n".join(lines).replace("\\\n", " ").splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (a FROM starts one)."""
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def _run(stage: list[tuple[str, str]], command: str) -> tuple[list[str], dict[str, str]]:
    """The one ``RUN`` of a stage holding ``command`` (a step of an ``&&`` chain): its words and its bind mounts
    (target → source, or → ``from=<stage>``)."""
    (run,) = [rest for keyword, rest in stage if keyword == "RUN" and command in rest]
    mounts: dict[str, str] = {}
    words = shlex.split(run)
    while words[0].startswith("--mount="):
        options = dict(item.split("=", 1) for item in words.pop(0)[len("--mount=") :].split(","))
        assert options["type"] == "bind", options
        mounts[options["target"]] = f"from={options['from']}" if "from" in options else options["source"]
    steps: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            steps.append([])
        else:
            steps[-1].append(word)
    (step,) = [s for s in steps if " ".join(s).startswith(command)]
    return step, mounts


def _stage_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    """The variables a stage's ENV instructions set."""
    return dict(item.split("=", 1) for keyword, rest in stage if keyword == "ENV" for item in shlex.split(rest))


# .dockerignore's patterns for any directory ("**/…"): what the copy of each tree leaves out, as docker's context does
DOCKERIGNORED = [p[3:] for p in (ROOT / ".dockerignore").read_text().split() if p.startswith("**/")]


def _dockerfile_copies() -> list[str]:
    """What the Dockerfile takes from the build context: its COPY sources and its bind mounts' sources."""
    paths: list[str] = []
    for keyword, rest in _instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            paths += rest.split()[:-1]
        if keyword == "RUN":
            paths += [
                m.split("source=", 1)[1].split(",")[0]
                for m in shlex.split(rest)
                if m.startswith("--mount=") and "from=" not in m and "source=" in m
            ]
    return paths


def _source_files() -> set[str]:
    """What the running service needs from the tree: modules, schemas, pages, value sets (wheel paths)."""
    wanted = set()
    for package in ("cds_service", "hooks"):
        for path in (ROOT / package).rglob("*"):
            if (
                path.is_file()
                and "__pycache__" not in path.parts
                and path.suffix in (".py", ".json", ".html", ".css", ".js")
            ):
                wanted.add(path.relative_to(ROOT).as_posix())
    return wanted


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    context = tmp_path_factory.mktemp("docker-context")
    copies = _dockerfile_copies()
    assert {"pyproject.toml", "cds_service", "hooks", "cards_templates", "requirements/constraints.txt"} <= set(copies)
    for name in copies:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns(*DOCKERIGNORED))
        else:
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / name)
    out = tmp_path_factory.mktemp("wheel")
    build, _ = _run(_stages()[0], "pip wheel")
    assert build[:2] == ["pip", "wheel"] and build[-1] == "." and "--no-build-isolation" in build
    build = [str(out) if w == "/wheels" else w for w in build]  # the stage's --wheel-dir
    stage_env = _stage_env(_stages()[0])
    assert stage_env == {"BPCDS_MYPYC": "1"}  # the compiled build (setup.py)
    env = {k: v for k, v in os.environ.items() if k != "BPCDS_MYPYC"} | ({} if CANNOT_BUILD else stage_env)
    # the build stage's exact command in its environment; offline here (no build isolation: the pinned setuptools and
    # mypy are this environment's)
    done = subprocess.run(
        [sys.executable, "-m", *build, "--no-index", "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=context,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob("backpain_cds-*.whl")
    return built


def test_the_wheel_holds_every_module_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_source_files() - names)
    assert missing == []
    templates = {p.name for p in (ROOT / "cards_templates").glob("*.json")}
    data = {Path(n).name for n in names if "/data/share/backpain-cds/cards_templates/" in n}
    assert templates and data == templates


@pytest.mark.skipif(bool(CANNOT_BUILD), reason=f"the compiled build needs what this machine lacks: {CANNOT_BUILD}")
def test_the_image_s_wheel_is_compiled_for_its_platform(wheel):
    assert re.fullmatch(r"backpain_cds-0\.1\.0-cp311-cp311-linux_\w+\.whl", wheel.name), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    extensions = sorted(n.split(".cpython-")[0].replace("/", ".") for n in names if n.endswith(".so"))
    assert extensions == COMPILED  # and nothing else: the rest of the package is Python source


def test_the_docker_context_leaves_out_builds_and_caches():
    """An in-place build in the checkout (extensions beside the source) or bytecode must not reach the image."""
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"**/*.so", "**/__pycache__", "build", ".venv", ".git"} <= set(ignored)


def test_the_wheel_carries_no_tools_no_dev_page_and_no_markdown(wheel):
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    assert {n.split("/")[0] for n in names if not n.startswith("backpain_cds-")} == {"cds_service", "hooks"}
    assert not [n for n in names if n.endswith((".html", ".css", ".js"))]  # the review page is a development tool
    metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert [r for r in requires if "markdown" in r.lower() and "extra ==" not in r] == []
    assert [
        r for r in requires if re.match(r"Requires-Dist: rich\b", r) and "extra ==" not in r
    ] == []  # the replay CLI's


def _installed(wheel: Path, where: Path) -> Path:
    """A fresh virtualenv with the package installed by the image's own command (the last stage's ``pip install``),
    its bind mounts mapped to the built wheel and requirements/constraints.txt; offline and without dependencies, which
    come from this environment (test_the_environment_runs_the_versions_the_image_pins: the same versions)."""
    env = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=120)
    python = str(env / "bin" / "python")
    install, mounts = _run(_stages()[-1], "pip install")
    assert mounts == {"/wheels": "from=wheel", "/constraints.txt": "requirements/constraints.txt"}
    assert install[:2] == ["pip", "install"] and install[install.index("--constraint") + 1] == "/constraints.txt"
    # The wheel by the pattern of its name (the version, any platform tag), bound to $1 by the step before.
    pattern, target = _run(_stages()[-1], "set --")[0][2:], install[-1]
    assert len(pattern) == 1 and (CANNOT_BUILD or fnmatch.fnmatch(f"/wheels/{wheel.name}", pattern[0])), pattern
    assert pattern[0].startswith("/wheels/backpain_cds-0.1.0-") and target == "$1[postgres,redis]", target
    mapped = [str(ROOT / mounts[w]) if w == "/constraints.txt" else w for w in install[:-1]]
    mapped.append(f"{wheel}[postgres,redis]")
    done = subprocess.run(
        [python, "-m", *mapped, "--no-deps", "--no-index", "--quiet"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Dependencies come from the test environment's site-packages as a plain path (not a site directory, so its
    # editable-install hook is not run): the package itself can only be the installed copy.
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    found = subprocess.run(
        [python, "-c", "import cds_service, hooks; print(cds_service.__file__); print(hooks.__file__)"],
        capture_output=True,
        text=True,
        cwd=where,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr[-2000:]
    assert all(line.startswith(site) for line in found.stdout.split()), found.stdout
    return env


def test_the_installed_package_serves_a_hook_call(wheel, tmp_path):
    env = _installed(wheel, tmp_path)
    python = str(env / "bin" / "python")
    with ServerProcess(workers=1, python=python) as server:
        discovery = requests.get(f"{server.url}/cds-services", timeout=5)
        assert discovery.status_code == 200
        assert len(discovery.json()["services"]) == 3
        body = hook_request(
            "patient-view",
            prefetch={
                "conditions": bundle(
                    condition("lbp", *LBP, onset="2026-11-02"), condition("ce", "192970008", "Cauda equina syndrome")
                )
            },
        )
        resp = requests.post(f"{server.url}/cds-services/backpain-patient-view", json=body, timeout=10)
        assert resp.status_code == 200, resp.text
        cards = resp.json()["cards"]
        assert [(c["source"]["topic"]["code"], c["indicator"]) for c in cards] == [("imaging-red-flags", "critical")]
        assert cards[0]["suggestions"][0]["actions"][0]["resource"]["code"]["coding"][0]["code"] == "72148"
        assert requests.get(f"{server.url}/sandbox", timeout=5).status_code == 404  # no review page without the tools
        build = f"chart reading compiled ({len(COMPILED)} modules)" if COMPILED else "pure Python"
        assert f"backpain-cds build: {build}" in server.log_text()
    code = "import hooks.wsgi, cds_service.build_info as b; print(b.compiled_modules())"
    compiled = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert compiled.returncode == 0, compiled.stderr[-2000:]
    assert ast.literal_eval(compiled.stdout) == COMPILED  # what setup.py compiles, as the image runs it
    commands = subprocess.run(
        [str(env / "bin" / "backpain-cds"), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert commands.returncode == 0, commands.stderr[-2000:]
    assert "{serve,feedback-summary,config-reference}" in commands.stdout  # the tools' commands only where installed


def _pins(name: str) -> dict[str, str]:
    """requirements/<name>: distribution (normalised) → its exact version; every line an ``==`` pin."""
    pins = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            dist, sep, version = line.partition("==")
            assert sep and version.strip() and not set(version) & set("<>=!~*, "), f"not an exact pin: {line!r}"
            pins[canonicalize_name(dist)] = version.strip()
    return pins


def _runtime_closure() -> set[str]:
    """Every distribution ``backpain-cds[postgres,redis]`` needs on this interpreter, from the installed metadata."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [("backpain-cds", frozenset({"postgres", "redis"}))]
    names: set[str] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for text in importlib.metadata.distribution(name).requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
                names.add(canonicalize_name(req.name))
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return names


def test_the_environment_runs_the_versions_the_image_pins():
    """The image installs with --constraint requirements/constraints.txt; `make` installs this environment with the same
    file, so the versions tested are the versions shipped, and every dependency of the image is pinned there."""
    pins = _pins("constraints.txt")
    assert _runtime_closure() <= set(pins), sorted(_runtime_closure() - set(pins))  # else: make constraints
    installed = {name: importlib.metadata.version(name) for name in pins}
    assert {n: v for n, v in installed.items() if v != pins[n]} == {}
    build = _pins("build.txt")
    assert {"setuptools", "mypy"} <= set(build)  # the build backend; mypyc for the compiled build
    assert {n: importlib.metadata.version(n) for n in build if importlib.metadata.version(n) != build[n]} == {}
    needs = [Requirement(r) for r in importlib.metadata.requires("mypy") or []]
    needs_here = {canonicalize_name(r.name) for r in needs if r.marker is None or r.marker.evaluate({"extra": ""})}
    assert needs_here <= set(build), sorted(needs_here - set(build))  # mypy's own dependencies pinned too
    # The base image by an exact tag: the same Python and Debian release in both stages, the build stage's the full
    # image (a C compiler for the compiled build), the service's the slim one.
    assert [r for k, r in _instructions() if k == "FROM"] == ["python:3.11.14-bookworm AS wheel"] + [
        "python:3.11.14-slim-bookworm"
    ]


def _exec_form(arguments: str) -> list[str]:
    words: list[str] = json.loads(arguments)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words)
    return words


def test_the_image_start_command_and_healthcheck_as_the_fixed_non_root_user(wheel, tmp_path):
    """The image's CMD (its host and port moved to a free loopback port) in the image's environment, configured
    only through environment variables and a mounted file, in a working directory standing for the image's data
    volume; then the image's HEALTHCHECK command against it."""
    instructions = dict(_stages()[-1])
    assert instructions["USER"] == "10001:10001"
    assert "--uid 10001 --gid 10001" in instructions["RUN"] and "--gid 10001 backpain" in instructions["RUN"]
    assert json.loads(instructions["VOLUME"]) == ["/tmp", instructions["WORKDIR"]]
    command = _exec_form(instructions["CMD"])
    assert command == ["backpain-cds", "serve", "--host", "0.0.0.0", "--port", "8080"]
    check = re.fullmatch(r"(--\S+\s+)*CMD\s+(\[.*\])", instructions["HEALTHCHECK"])
    assert check, instructions["HEALTHCHECK"]
    probe = _exec_form(check.group(2))
    env_dir = _installed(wheel, tmp_path)
    image_env = dict(
        item.split("=", 1) for item in shlex.split(instructions["ENV"])
    )  # PYTHONDONTWRITEBYTECODE, TMPDIR, BPCDS_ENVIRONMENT
    assert image_env["BPCDS_ENVIRONMENT"] == "production" and image_env["TMPDIR"] == "/tmp"
    workdir, tmp = tmp_path / "data", tmp_path / "tmp"
    workdir.mkdir()
    tmp.mkdir()
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps([{"iss": ISS, "jwks": JWKS}]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BPCDS_", "PYTHON"))} | image_env
    env |= {
        "PATH": f"{env_dir / 'bin'}:{os.environ['PATH']}",
        "TMPDIR": str(tmp),
        "BPCDS_PUBLIC_BASE_URL": "https://cds.hospital.example",
        "BPCDS_TRUSTED_CLIENTS_FILE": str(clients),
        "BPCDS_FHIR_ALLOWED_ORIGINS": "https://fhir.hospital.example",
        "BPCDS_CORS_ORIGINS": "https://ehr.hospital.example",
        "BPCDS_LOG_LEVEL": "WARNING",
        "BPCDS_METRICS_PORT": str(free_port()),  # as the Kubernetes ConfigMap does: metrics never on the hook port
        "BPCDS_METRICS_DIR": str(tmp / "metrics"),
    }
    port = free_port()
    argv = [str(env_dir / "bin" / command[0]), *command[1:]]
    argv[argv.index("0.0.0.0")], argv[argv.index("8080")] = "127.0.0.1", str(port)
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen(
            argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 30
        healthy = None
        while time.monotonic() < deadline and server.poll() is None:
            healthy = subprocess.run(
                [str(env_dir / "bin" / probe[0]), *[a.replace(":8080/", f":{port}/") for a in probe[1:]]],
                env=env,
                capture_output=True,
                timeout=10,
            )
            if healthy.returncode == 0:
                break
            time.sleep(0.2)
        assert healthy is not None and healthy.returncode == 0, (tmp_path / "server.log").read_text()[-2000:]
        assert requests.get(f"http://127.0.0.1:{port}/sandbox", timeout=5).status_code == 404  # production
        # the default SQLite feedback store is in the working directory (the image's data volume), nowhere else
        assert (workdir / "var" / "feedback.sqlite3").is_file()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
