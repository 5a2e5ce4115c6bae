"""Every synthetic patient (incl. the five seed situations) replayed through the HTTP API with a pinned clock.

Expected outcomes are the hand-written sandbox/patients/*.expected.json files.
"""

from __future__ import annotations

import pytest

from sandbox.cli import _services
from sandbox.replay import find_cases, run_cases
from tests.conftest import NOW, ROOT, assert_markdown_tables_whole

PATIENTS = ROOT / "sandbox" / "patients"
CASES = find_cases([str(PATIENTS)])


@pytest.fixture
def send(client):
    def post(service_id, body):
        resp = client.post(f"/cds-services/{service_id}", json=body)
        for card in (resp.get_json() or {}).get("cards", []):
            assert_markdown_tables_whole(card.get("detail", ""))
        return resp.status_code, resp.get_json()

    return post


def test_there_are_enough_patients():
    assert len(CASES) >= 20
    assert {c.name[:7] for c in CASES} >= {f"0{i}-seed" for i in range(1, 6)}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_patient_gets_the_expected_cards(client, send, case):
    services = _services(client.get("/cds-services").get_json())
    outcomes = run_cases([case], send, services, now=NOW)
    assert [(o.label, o.problems) for o in outcomes if o.problems] == []


def _cards(client, send, name, label):
    case = next(c for c in CASES if c.name == name)
    services = _services(client.get("/cds-services").get_json())
    captured = {}

    def spy(service_id, body):
        status, data = send(service_id, body)
        captured[body["hookInstance"]] = data
        return status, data

    call = next(c for c in case.calls if c["label"] == label)
    case = type(case)(case.name, case.bundle_path, case.description, [call])
    run_cases([case], spy, services, now=NOW)
    return next(iter(captured.values()))["cards"]


def test_seed1_card_shows_the_arithmetic(client, send):
    card = _cards(client, send, "01-seed-spondylosis-ketorolac", "chart opened")[0]
    assert card["summary"].startswith("Ketorolac is on day 10 (limit 5")
    assert "| First ketorolac dose | 2026-11-13 |" in card["detail"]
    assert "| Planned last day | 2026-11-22 |" in card["detail"]


def test_seed3_counts_the_ed_im_dose(client, send):
    card = _cards(client, send, "03-seed-ed-many-drugs", "oral ketorolac 5 d")[0]
    assert "Ketorolac would run 6 days" in card["summary"]
    assert "2026-11-21 (already given: 1 ML Ketorolac Tromethamine 30 MG/ML Injection)" in card["detail"]


def test_seed4_names_both_red_flags_and_orders_mri_with_contrast(client, send):
    card = _cards(client, send, "04-seed-red-flag-assessment", "chart opened")[0]
    assert "cancer or history of cancer" in card["detail"] and "unexplained weight loss" in card["detail"]
    codes = [a["resource"]["code"]["coding"][0]["code"] for a in card["suggestions"][0]["actions"]]
    assert codes == ["72158", "308481009"]


def test_seed5_persistent_radicular_lists_the_conservative_care(client, send):
    # one problem, one card: the referral card carries the MRI advice and the therapy tried, with one referral in it
    cards = {
        c["source"]["topic"]["code"]: c
        for c in _cards(client, send, "05-seed-failed-conservative-care", "chart opened")
    }
    assert list(cards) == ["referral-spine"]
    referral = cards["referral-spine"]
    assert "Naproxen 500 MG Oral Tablet (from 2026-08-24)" in referral["detail"]
    assert "Referral to physiotherapist (procedure)" in referral["detail"]
    assert (
        referral["summary"]
        == "Radicular pain for 14 weeks with no specialist referral: refer to an orthopaedic spine surgeon."
    )
    assert [s["label"] for s in referral["suggestions"]] == [
        "Refer to orthopaedic spine surgeon",
        "Order MRI lumbar spine and refer to orthopaedic spine surgeon",
    ]


def test_bulk_data_ndjson_directory_reports_card_counts_per_topic(tmp_path):
    import json
    import subprocess
    import sys

    from tests.factories import ICD10, LBP, condition, med_request

    people = [
        {"resourceType": "Patient", "id": pid, "birthDate": "1970-01-01", "gender": "female"}
        for pid in ("n1", "n2", "n3")
    ]
    conditions = [
        condition("c1", *LBP, onset="2026-11-01", pid="n1"),
        condition("c2", "R33.9", "Retention of urine", system=ICD10, pid="n1"),
        condition("c3", *LBP, onset="2026-11-01", pid="n2"),
        condition("c4", "64859006", "Osteoporosis", pid="n2"),
    ]
    meds = [med_request("m1", "314076", "lisinopril 10 MG Oral Tablet", authored="2026-01-01", pid="n3")]
    for name, rows in (("Patient", people), ("Condition", conditions), ("MedicationRequest", meds)):
        (tmp_path / f"{name}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run(
        [sys.executable, "-m", "hooks.cli", "replay", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == {
        "patients": 3,
        "errors": 0,
        "cards": {"imaging-red-flags (critical)": 1, "imaging-red-flags (warning)": 1},
    }


@pytest.mark.parametrize(
    "value, expected",
    [
        ("@today", "2028-03-31"),
        ("@today-1m", "2028-02-29"),
        ("@today-13m", "2027-02-28"),
        ("@today+1m", "2028-04-30"),
        ("@today-52y", "1976-03-31"),
        ("@today-2w", "2028-03-17"),
        ("@now-36h", "2028-03-30T00:00:00Z"),
        ("@tomorrow", "@tomorrow"),
    ],
)
def test_relative_dates_clamp_to_month_end(value, expected):
    from datetime import UTC, datetime

    from sandbox.replay import resolve_dates

    assert resolve_dates({"d": [value]}, datetime(2028, 3, 31, 12, tzinfo=UTC)) == {"d": [expected]}


# --- the replay command's output: rich on a terminal, plain text elsewhere -------------------------------------------


def _outcomes():
    from sandbox.replay import CallOutcome

    return [
        CallOutcome(
            "01-seed-spondylosis-ketorolac",
            "order-select",
            "renew ketorolac 5 d",
            200,
            [("ketorolac-duration", "critical", "s"), ("nsaid-duplicate", "warning", "[bold]s[/bold]")],
        ),
        CallOutcome(
            "25-no-back-pain",
            "patient-view",
            "chart opened [x]",
            200,
            [],
            ["missing imaging-red-flags (critical)", "extra card [b]x[/b] (info)"],
        ),
    ]


class _Terminal:  # what rich sees of a terminal: a stream that says it is a tty
    def __init__(self):
        import io

        self.buffer = io.StringIO()
        self.write, self.flush, self.getvalue = self.buffer.write, self.buffer.flush, self.buffer.getvalue

    def isatty(self):
        return True


def _terminal(monkeypatch):
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "200")
    return _Terminal()


def test_off_a_terminal_the_table_is_plain_text_one_line_per_row():
    import io
    import re

    from sandbox.replay import console, render_table

    stream = io.StringIO()
    render_table(_outcomes(), console(stream))
    assert "\x1b" not in stream.getvalue()
    rows = [re.split(r"\s{2,}", line.rstrip()) for line in stream.getvalue().splitlines()]  # columns: 2+ spaces apart
    assert rows == [
        ["patient", "call", "result", "cards"],
        [
            "01-seed-spondylosis-ketorolac",
            "renew ketorolac 5 d",
            "ok",
            "ketorolac-duration:critical, nsaid-duplicate:warning",
        ],
        ["25-no-back-pain", "chart opened [x]", "MISMATCH", "—"],  # text is never read as markup
        ["", "↳ missing imaging-red-flags (critical)"],
        ["", "↳ extra card [b]x[/b] (info)"],
        [""],
        ["1 passed, 1 failed"],
    ]


def test_on_a_terminal_the_table_has_colour_unless_told_not_to(monkeypatch):
    from sandbox.replay import console, render_table

    coloured = _terminal(monkeypatch)
    render_table(_outcomes(), console(coloured))
    assert "\x1b[31mketorolac-duration:critical" in coloured.getvalue() and "\x1b[32mok" in coloured.getvalue()
    plain = _terminal(monkeypatch)
    render_table(_outcomes(), console(plain, colour=False))
    assert "MISMATCH" in plain.getvalue() and "1 passed, 1 failed" in plain.getvalue()
    assert not [
        code for code in ("\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[36m", "\x1b[1;31m") if code in plain.getvalue()
    ]


def test_the_progress_bar_shows_on_a_terminal_only(monkeypatch):
    import io

    from sandbox.replay import console, progress_bar

    quiet = io.StringIO()
    with progress_bar("replaying", console(quiet)) as show:
        show(1, 2)
        show(2, 2)
    assert quiet.getvalue() == ""
    tty = _terminal(monkeypatch)
    with progress_bar("replaying", console(tty, colour=False)) as show:
        show(1, 2)
        show(2, 2)
    assert "replaying" in tty.getvalue() and "2/2" in tty.getvalue()


def test_the_replay_command_piped_prints_plain_parseable_text(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hooks.cli",
            "replay",
            "--today",
            "2026-11-22",
            str(PATIENTS / "01-seed-spondylosis-ketorolac.expected.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "\x1b" not in out.stdout + out.stderr  # not a terminal: no colour, no progress bar
    lines = [line.rstrip() for line in out.stdout.splitlines()]
    assert lines[0].split() == ["patient", "call", "result", "cards"]
    assert lines[1:-3] and [line.split()[0] for line in lines[1:-3]] == ["01-seed-spondylosis-ketorolac"] * (
        len(lines) - 4
    )
    assert lines[-2] == f"{len(lines) - 4} passed, 0 failed"
    assert lines[-1].startswith("cards by topic: ketorolac-duration (critical): ")
