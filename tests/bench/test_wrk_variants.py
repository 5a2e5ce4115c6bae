"""bench-wrk's servers: the floor, the service, its configuration variants and the compiled build from its copy — and
a "compiled" figure is never taken from a server running the Python source."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from bench.wrk import _server, _variants


def _args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**({"admission": [], "compiled": ""} | kw))


def test_the_compiled_variant_runs_its_copy_first_on_the_path(tmp_path: Path) -> None:
    variants, envs = _variants(_args(admission=[1], compiled=str(tmp_path)))
    assert variants == {
        "floor": None,
        "service": "",
        "service (admission 1)": "snapshot_cache_admission = 1\n",
        "service (compiled)": "",
    }
    assert list(envs) == ["service (compiled)"]
    assert envs["service (compiled)"]["PYTHONPATH"] == str(tmp_path.resolve())
    assert envs["service (compiled)"]["PATH"] == os.environ["PATH"]  # the rest of this environment


def test_without_a_copy_there_is_no_compiled_variant() -> None:
    assert _variants(_args()) == ({"floor": None, "service": ""}, {})


def test_a_server_that_is_not_the_compiled_build_is_refused() -> None:
    """The checkout is pure Python: told it is the compiled copy, the bench stops instead of printing its figures."""
    with pytest.raises(SystemExit, match="not running the compiled build"), _server(1, "", dict(os.environ)):
        pass
