"""Whole-card goldens: every card of every replayed call, as the service returned it, compared field by field.

The hand-written ``<name>.expected.json`` stays the clinical oracle (which cards, which topics never); the golden
``<name>.cards.json`` beside it locks the rest of each card — summary, detail, facts, links, suggestions and their
FHIR resources, override reasons — so a change to any word a clinician reads shows up as a failing diff.

Goldens are deterministic: the clinical clock is pinned to the day written in the golden and card/suggestion uuids
restart at ``00000000-0000-0000-0000-000000000001`` for each call. They are written only by ``backpain-cds replay
--record``, which refuses to write a golden for a case whose cards contradict its hand-written expectations; a
recorded change is reviewed in ``git diff`` like code (sandbox/README.md, "Whole-card goldens").
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from .replay import CallOutcome, Case, Send, run_cases

SUFFIX = ".cards.json"
DEFAULT_DAY = date(2026, 11, 22)  # the day the goldens were recorded against (the test suite's pinned day)


class PinnedIds:
    """A uuid factory that restarts for each call, so one call's cards never shift another's ids."""

    def __init__(self) -> None:
        self._n = 0

    def __call__(self) -> str:
        self._n += 1
        return f"00000000-0000-0000-0000-{self._n:012d}"

    def restart(self) -> None:
        self._n = 0


def golden_path(case: Case) -> Path:
    return case.bundle_path.with_name(case.name + SUFFIX)


def pinned_now(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 15, 0, tzinfo=UTC)


def load(case: Case) -> dict[str, Any] | None:
    path = golden_path(case)
    return json.loads(path.read_text()) if path.exists() else None


def golden_day(cases: Iterable[Case]) -> date:
    """The one day the cases' goldens were recorded against (default: DEFAULT_DAY)."""
    days = {g["today"] for g in map(load, cases) if g}
    if len(days) > 1:
        raise ValueError(f"goldens recorded against several days: {sorted(days)}; record them again together")
    return date.fromisoformat(days.pop()) if days else DEFAULT_DAY


def document(outcomes: list[CallOutcome], day: date) -> dict[str, Any]:
    return {
        "today": day.isoformat(),
        "calls": [{"label": o.label, "hook": o.hook, "status": o.status, "cards": o.full_cards} for o in outcomes],
    }


def _text(value: Any) -> list[str]:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).splitlines()


def differences(expected: dict[str, Any], outcomes: list[CallOutcome]) -> list[str]:
    """A readable diff per call whose cards differ from the golden's (empty: identical)."""
    got = {(o.label, o.hook): o for o in outcomes}
    problems = []
    for call in expected["calls"]:
        outcome = got.pop((call["label"], call["hook"]), None)
        if outcome is None:
            problems.append(f"{call['label']} ({call['hook']}): in the golden, not replayed")
            continue
        if outcome.status != call["status"] or outcome.full_cards != call["cards"]:
            diff = difflib.unified_diff(
                _text(call["cards"]), _text(outcome.full_cards), "golden", "now", lineterm="", n=2
            )
            problems.append(
                f"{call['label']} ({call['hook']}): HTTP {outcome.status}, cards differ\n" + "\n".join(diff)
            )
    problems.extend(f"{label} ({hook}): replayed, not in the golden (record it)" for label, hook in got)
    return problems


@dataclass
class GoldenRun:
    case: Case
    outcomes: list[CallOutcome]
    problems: list[str]  # the hand-written expectations' mismatches
    differences: list[str]  # against the golden (missing golden: one line saying so)


def replay(cases: list[Case], send: Send, ids: PinnedIds, services: dict[str, Any], day: date) -> list[GoldenRun]:
    """Replay each case with the clock pinned to ``day`` and ids restarted per call; compare with its golden."""

    def send_pinned(service_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        ids.restart()
        return send(service_id, body)

    runs = []
    for case in cases:
        outcomes = run_cases([case], send_pinned, services, now=pinned_now(day))
        expected = load(case)
        diffs = (
            [f"no golden ({golden_path(case).name}): record it"]
            if expected is None
            else differences(expected, outcomes)
        )
        runs.append(GoldenRun(case, outcomes, [p for o in outcomes for p in o.problems], diffs))
    return runs


def record(runs: list[GoldenRun], day: date) -> tuple[list[Path], list[str]]:
    """Write the goldens of the runs whose cards meet their hand-written expectations; refuse the others."""
    written, refused = [], []
    for run in runs:
        if run.problems:
            refused.append(
                f"{run.case.name}: not recorded, its cards contradict {run.case.name}.expected.json: "
                + "; ".join(run.problems)
            )
            continue
        if run.differences:
            path = golden_path(run.case)
            path.write_text(json.dumps(document(run.outcomes, day), indent=1, ensure_ascii=False) + "\n")
            written.append(path)
    return written, refused
