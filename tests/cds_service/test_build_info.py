"""What the server says of its build: the package's modules loaded as C extensions (the compiled build) or none."""

from __future__ import annotations

import sys
import types
from importlib.machinery import EXTENSION_SUFFIXES

from cds_service.build_info import build_description, compiled_modules


def _module(name: str, file: str | None) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = file
    return module


def test_the_package_s_extension_modules_are_named_and_counted(monkeypatch):
    before = compiled_modules()
    monkeypatch.setitem(
        sys.modules, "cds_service._probe_c", _module("cds_service._probe_c", f"/x/p{EXTENSION_SUFFIXES[0]}")
    )
    monkeypatch.setitem(sys.modules, "cds_service._probe_py", _module("cds_service._probe_py", "/x/p.py"))
    monkeypatch.setitem(sys.modules, "othertool._c", _module("othertool._c", f"/x/o{EXTENSION_SUFFIXES[0]}"))
    monkeypatch.setitem(sys.modules, "cds_service._probe_none", _module("cds_service._probe_none", None))
    assert compiled_modules() == sorted([*before, "cds_service._probe_c"])
    assert build_description() == f"chart reading compiled ({len(before) + 1} modules)"


def test_a_pure_installation_says_so(monkeypatch):
    for name in compiled_modules():  # none in the checkout; the compiled copy's (make test-compiled) hidden here
        monkeypatch.setitem(sys.modules, name, _module(name, f"/x/{name}.py"))
    assert compiled_modules() == []
    assert build_description() == "pure Python"
