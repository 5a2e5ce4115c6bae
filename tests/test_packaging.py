"""The package as the Dockerfile installs it: built from only what the Dockerfile copies, installed (not editable)
into a fresh environment, and served from there — every module and data file present, a hook call answered."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import requests

from bench.loadgen import ServerProcess
from tests.conftest import ROOT, bundle, hook_request
from tests.factories import LBP, condition

pytestmark = pytest.mark.slow


def _dockerfile_copies() -> list[str]:
    """The source paths of the Dockerfile's COPY lines."""
    paths: list[str] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if m := re.match(r"COPY\s+(.+)\s+\S+$", line.strip()):
            paths += m.group(1).split()
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
    assert {"pyproject.toml", "cds_service", "hooks", "cards_templates"} <= set(copies)
    for name in copies:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, context / name)
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "-w",
            str(out),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (built,) = out.glob("backpain_cds-*.whl")
    return built


def test_the_wheel_holds_every_module_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_source_files() - names)
    assert missing == []
    templates = {p.name for p in (ROOT / "cards_templates").glob("*.json")}
    data = {Path(n).name for n in names if "/data/share/backpain-cds/cards_templates/" in n}
    assert templates and data == templates


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


def test_the_installed_package_serves_a_hook_call(wheel, tmp_path):
    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=120)
    python = str(env / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    # Dependencies come from the test environment's site-packages as a plain path (not a site directory, so its
    # editable-install hook is not run): the package itself can only be the installed copy.
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run(
        [python, "-c", "import cds_service, hooks; print(cds_service.__file__); print(hooks.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr[-2000:]
    assert all(line.startswith(site) for line in where.stdout.split()), where.stdout

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
    commands = subprocess.run(
        [str(env / "bin" / "backpain-cds"), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert commands.returncode == 0, commands.stderr[-2000:]
    assert "{serve,feedback-summary,config-reference}" in commands.stdout  # the tools' commands only where installed
