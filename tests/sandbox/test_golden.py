"""Whole-card goldens: every synthetic patient's cards, field by field, as recorded and reviewed (sandbox/golden.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from sandbox import golden
from sandbox.cli import _services, local_sender
from sandbox.replay import find_cases
from tests.conftest import ROOT

PATIENTS = ROOT / "sandbox" / "patients"
CASES = find_cases([str(PATIENTS)])
DAY = golden.golden_day(CASES)


@pytest.fixture(scope="module")
def service():
    ids = golden.PinnedIds()
    send, discovery = local_sender(golden.pinned_now(DAY), uuid_factory=ids)
    return send, ids, _services(discovery)


def test_every_patient_has_a_golden():
    assert [c.name for c in CASES if not golden.golden_path(c).exists()] == []
    assert {p.name.removesuffix(golden.SUFFIX) for p in PATIENTS.glob("*" + golden.SUFFIX)} == {c.name for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cards_match_the_golden_whole(service, case):
    send, ids, services = service
    (run,) = golden.replay([case], send, ids, services, DAY)
    assert run.problems == []
    assert run.differences == [], "\n\n".join(run.differences)


def test_ids_restart_for_each_call(service):
    send, ids, services = service
    case = next(c for c in CASES if c.name.startswith("01-seed"))
    (run,) = golden.replay([case], send, ids, services, DAY)
    firsts = [o.full_cards[0]["uuid"] for o in run.outcomes if o.full_cards]
    assert len(firsts) >= 2 and set(firsts) == {"00000000-0000-0000-0000-000000000001"}


def _copy(tmp_path, name):
    for suffix in (".bundle.json", ".expected.json", golden.SUFFIX):
        shutil.copy(PATIENTS / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return find_cases([str(tmp_path)])


def test_a_changed_word_fails_with_a_diff_of_that_word(service, tmp_path):
    send, ids, services = service
    (case,) = _copy(tmp_path, "01-seed-spondylosis-ketorolac")
    doc = json.loads(golden.golden_path(case).read_text())
    original = doc["calls"][0]["cards"][0]["summary"]
    doc["calls"][0]["cards"][0]["summary"] = original.replace("Ketorolac", "Ibuprofen", 1)
    golden.golden_path(case).write_text(json.dumps(doc))
    (run,) = golden.replay([case], send, ids, services, DAY)
    assert run.problems == []
    (diff,) = run.differences
    assert diff.startswith("chart opened (patient-view): HTTP 200, cards differ")
    assert any(line.startswith("-") and "Ibuprofen" in line for line in diff.splitlines())
    assert any(line.startswith("+") and original in line for line in diff.splitlines())


def test_record_rewrites_a_stale_golden_and_refuses_a_contradicted_one(service, tmp_path):
    send, ids, services = service
    (case,) = _copy(tmp_path, "01-seed-spondylosis-ketorolac")
    golden.golden_path(case).write_text(json.dumps({"today": DAY.isoformat(), "calls": []}))
    runs = golden.replay([case], send, ids, services, DAY)
    written, refused = golden.record(runs, DAY)
    assert (written, refused) == ([golden.golden_path(case)], [])
    assert golden.replay([case], send, ids, services, DAY)[0].differences == []

    spec = json.loads(case.bundle_path.with_name(case.name + ".expected.json").read_text())
    spec["calls"][0]["expect"] = [{"topic": "referral-spine", "indicator": "critical"}]
    case.bundle_path.with_name(case.name + ".expected.json").write_text(json.dumps(spec))
    (case,) = find_cases([str(tmp_path)])
    before = golden.golden_path(case).read_text()
    written, refused = golden.record(golden.replay([case], send, ids, services, DAY), DAY)
    assert written == [] and len(refused) == 1
    assert refused[0].startswith("01-seed-spondylosis-ketorolac: not recorded, its cards contradict")
    assert "missing referral-spine (critical)" in refused[0]
    assert golden.golden_path(case).read_text() == before


def test_goldens_recorded_against_two_days_are_refused(tmp_path):
    cases = []
    for case, day in zip(CASES[:2], ("2026-11-22", "2026-11-23"), strict=True):
        (tmp_path / day).mkdir()
        (copy,) = _copy(tmp_path / day, case.name)
        golden.golden_path(copy).write_text(json.dumps({"today": day, "calls": []}))
        cases.append(copy)
    with pytest.raises(ValueError, match="several days"):
        golden.golden_day(cases)
