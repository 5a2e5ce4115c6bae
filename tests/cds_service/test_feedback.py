"""Feedback: validation, append-only storage, per-topic summary, durability across processes, PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from cds_service.feedback import PostgresFeedbackStore, open_store
from tests.conftest import call, hook_request, sample
from tests.factories import KETOROLAC_INJ, KETOROLAC_ORAL, draft


def _feedback(card_uuid, outcome="accepted", **extra):
    item = {"card": card_uuid, "outcome": outcome, "outcomeTimestamp": "2026-11-22T03:32:27.155Z"}
    item.update(extra)
    return {"feedback": [item]}


@pytest.mark.parametrize("name", ["feedback-accepted", "feedback-2"])
def test_captured_sandbox_feedback_is_accepted(client, name):
    resp = client.post("/cds-services/backpain-order-select/feedback", json=sample(name))
    assert resp.status_code == 200
    assert resp.get_json() == {}


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "feedback"),
        ({"feedback": []}, "feedback"),
        ({"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2026-11-22T03:32:27Z"}]}, "feedback.0.card"),
        (
            {"feedback": [{"card": "x", "outcome": "maybe", "outcomeTimestamp": "2026-11-22T03:32:27Z"}]},
            "feedback.0.outcome",
        ),
        (
            {"feedback": [{"card": "x", "outcome": "accepted", "outcomeTimestamp": "yesterday"}]},
            "feedback.0.outcomeTimestamp",
        ),
        (
            {
                "feedback": [
                    {
                        "card": "x",
                        "outcome": "overridden",
                        "outcomeTimestamp": "2026-11-22T03:32:27Z",
                        "overrideReason": {"reason": {"system": "s"}},
                    }
                ]
            },
            "feedback.0.overrideReason.reason.code",
        ),
    ],
)
def test_invalid_feedback_gets_400(client, body, field):
    resp = client.post("/cds-services/backpain-order-select/feedback", json=body)
    assert resp.status_code == 400
    assert resp.get_json()["issue"][0]["expression"] == [field]


def test_feedback_for_unknown_service_is_404(client):
    assert client.post("/cds-services/nope/feedback", json=sample("feedback-2")).status_code == 404


def test_round_trip_summary_counts_by_topic_and_override_reason(app, client):
    resp = call(client, hook_request("order-select", drafts=[draft("k", *KETOROLAC_ORAL, supply_days=10)]))
    card = resp.get_json()["cards"][0]
    assert card["source"]["topic"]["code"] == "ketorolac-duration"
    app.extensions["backpain"]["ledger"].flush()
    fb = "/cds-services/backpain-order-select/feedback"
    assert (
        client.post(
            fb, json=_feedback(card["uuid"], acceptedSuggestions=[{"id": card["suggestions"][0]["uuid"]}])
        ).status_code
        == 200
    )
    reason = {
        "reason": {
            "system": "https://backpain-cds.example.org/CodeSystem/override-reason",
            "code": "benefit-outweighs-risk",
            "display": "Benefit outweighs risk for this patient",
        },
        "userComment": "short course only",
    }
    assert client.post(fb, json=_feedback(card["uuid"], "overridden", overrideReason=reason)).status_code == 200
    assert (
        client.post(fb, json=_feedback(card["uuid"], "overridden", overrideReason=reason)).status_code == 200
    )  # again: append
    assert client.post(fb, json=_feedback(str(uuid.uuid4()))).status_code == 200  # a card we never issued
    summary = client.get("/cds-services/backpain-order-select/feedback/summary").get_json()["summary"]
    assert summary == [
        {"topic": "ketorolac-duration", "outcome": "accepted", "overrideReason": None, "count": 1},
        {
            "topic": "ketorolac-duration",
            "outcome": "overridden",
            "overrideReason": "benefit-outweighs-risk",
            "count": 2,
        },
        {"topic": "unknown", "outcome": "accepted", "overrideReason": None, "count": 1},
        # the duration card carried the oral-start fact (no IV/IM before): its feedback counts there too, marked
        {
            "topic": "ketorolac-oral-start",
            "outcome": "accepted",
            "overrideReason": None,
            "count": 1,
            "via": "ketorolac-duration",
        },
        {
            "topic": "ketorolac-oral-start",
            "outcome": "overridden",
            "overrideReason": "benefit-outweighs-risk",
            "count": 2,
            "via": "ketorolac-duration",
        },
    ]


def test_issued_cards_of_many_calls_are_written_in_one_transaction(app, monkeypatch):
    from cds_service.ledger import CardLedger

    ext = app.extensions["backpain"]
    store, ledger = ext["store"], ext["ledger"]
    writes: list[int] = []
    original = store._execute_many
    monkeypatch.setattr(store, "_execute_many", lambda sql, rows: (writes.append(len(rows)), original(sql, rows))[1])
    monkeypatch.setattr(CardLedger, "LINGER_SECONDS", 0.3)
    for i in range(20):  # twenty hook calls' worth of cards, queued well within the linger
        ledger.record(
            "backpain-order-select",
            [{"uuid": f"u{i}", "indicator": "warning", "source": {"topic": {"code": "imaging-early"}}}],
        )
    ledger.flush()
    assert writes == [20]
    assert store._query("SELECT COUNT(*) FROM issued_cards WHERE topic = 'imaging-early'", ())[0][0] == 20


def test_acknowledged_feedback_is_readable_by_another_process(client, settings):
    for i in range(3):
        assert (
            client.post("/cds-services/backpain-patient-view/feedback", json=_feedback(f"card-{i}")).status_code == 200
        )
    code = (
        "import json,sys; from cds_service.feedback import open_store; "
        f"print(json.dumps(open_store({settings['database_url']!r}).card_uuids()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["card-0", "card-1", "card-2"]


def test_sqlite_is_in_wal_mode(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/f.db")
    assert store._query("PRAGMA journal_mode", ())[0][0] == "wal"


def test_cli_feedback_summary(tmp_path, client, settings):
    client.post("/cds-services/backpain-patient-view/feedback", json=_feedback("c1", "overridden"))
    config = tmp_path / "c.toml"
    config.write_text(f'database_url = "{settings["database_url"]}"\n')
    out = subprocess.run(
        [sys.executable, "-m", "hooks.cli", "--config", str(config), "feedback-summary"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == [{"topic": "unknown", "outcome": "overridden", "overrideReason": None, "count": 1}]


PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_store():
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("DROP TABLE IF EXISTS feedback, issued_cards, card_covers")
    except Exception as exc:  # no server here: say so
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(exc).__name__}: {exc})")
    store = PostgresFeedbackStore(PG_URL)
    yield store
    store.close()


@pytest.mark.postgres
def test_postgres_store_round_trip_and_summary(pg_store):
    card = {"uuid": "u1", "indicator": "critical", "source": {"topic": {"code": "ketorolac-duration"}}}
    pg_store.record_cards([("svc", [card]), ("svc", [card])])  # one batch; the repeat is ignored, not an error
    pg_store.record_cards([("svc", [card])])
    assert (
        pg_store.append("svc", [{"card": "u1", "outcome": "accepted", "outcomeTimestamp": "2026-11-22T03:32:27Z"}]) == 1
    )
    assert pg_store.summary("svc") == [
        {"topic": "ketorolac-duration", "outcome": "accepted", "overrideReason": None, "count": 1}
    ]


@pytest.mark.postgres
def test_postgres_feedback_through_the_api(pg_store, tmp_path):
    from hooks.wsgi import create_app

    app = create_app({"database_url": PG_URL})
    resp = app.test_client().post("/cds-services/backpain-patient-view/feedback", json=sample("feedback-accepted"))
    assert resp.status_code == 200
    assert pg_store.card_uuids() == ["4857628c-05bb-4dcb-9fd2-1e6e1479334a"]


def test_a_forked_worker_opens_its_own_connection(tmp_path):
    import os

    store = open_store(f"sqlite:///{tmp_path}/f.db")
    parent_conn = store._conn()
    pid = os.fork()
    if pid == 0:  # child: like a gunicorn worker after preload
        ok = store._conn() is not parent_conn
        store.append("svc", [{"card": "from-child", "outcome": "accepted", "outcomeTimestamp": "2026-11-22T03:32:27Z"}])
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store._conn() is parent_conn
    assert store.card_uuids() == ["from-child"]


# --- bounded storage: retention, pruning, the SQLite log; text both stores refuse alike -----------------------------


T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request, tmp_path):
    if request.param == "postgres":
        yield request.getfixturevalue("pg_store"), PG_URL
        return
    url = f"sqlite:///{tmp_path}/f.db"
    yield open_store(url), url


def _at(store, moment):
    store.clock = lambda: moment


def _card(card_uuid, topic="imaging-early"):
    return {"uuid": card_uuid, "indicator": "warning", "source": {"topic": {"code": topic}}}


def test_prune_never_removes_feedback_younger_than_its_retention(any_store):
    store, _ = any_store
    days = timedelta(days=1)
    for name, age in [("young", 399 * days), ("just-young", 400 * days - timedelta(seconds=1)), ("old", 401 * days)]:
        _at(store, T0 - age)
        store.append("svc", [{"card": name, "outcome": "accepted", "outcomeTimestamp": "2026-11-22T03:32:27Z"}])
    for name, age in [
        ("fresh", 29 * days),
        ("stale", 31 * days),
        ("with-feedback", 300 * days),
        ("old-feedback", 402 * days),
    ]:
        _at(store, T0 - age)
        store.record_cards([("svc", [_card(name)])])
    _at(store, T0 - 299 * days)
    store.append(
        "svc", [{"card": "with-feedback", "outcome": "overridden", "outcomeTimestamp": "2026-11-22T03:32:27Z"}]
    )
    _at(store, T0 - 401 * days)
    store.append("svc", [{"card": "old-feedback", "outcome": "accepted", "outcomeTimestamp": "2026-11-22T03:32:27Z"}])

    assert store.prune(T0, feedback_days=400, issued_cards_days=30) == (2, 2)
    assert store.card_uuids() == ["young", "just-young", "with-feedback"]
    cards = sorted(r[0] for r in store._query("SELECT card_uuid FROM issued_cards", ()))
    assert cards == ["fresh", "with-feedback"]  # a card stays while feedback refers to it; its topic still counts
    assert {"topic": "imaging-early", "outcome": "overridden", "overrideReason": None, "count": 1} in store.summary(
        "svc"
    )
    assert store.prune(T0, feedback_days=400, issued_cards_days=30) == (0, 0)


def test_the_app_prunes_at_start_up_and_then_hourly(tmp_path, monkeypatch):
    from cds_service.ledger import CardLedger
    from hooks.wsgi import create_app

    url = f"sqlite:///{tmp_path}/f.db"
    store = open_store(url)
    _at(store, T0 - timedelta(days=500))
    store.append("svc", [{"card": "ancient", "outcome": "accepted", "outcomeTimestamp": "2026-11-22T03:32:27Z"}])
    monkeypatch.setattr(CardLedger, "PRUNE_INTERVAL", 0.2)
    app = create_app({"database_url": url, "feedback_retention_days": 400}, storage_clock=lambda: T0)
    assert store.count() == 0  # pruned at start-up
    store.append("svc", [{"card": "ancient-2", "outcome": "accepted", "outcomeTimestamp": "2026-11-22T03:32:27Z"}])
    app.extensions["backpain"]["ledger"].ensure_running()  # a worker's ledger thread: it prunes when due
    end = time.monotonic() + 10
    while store.count() and time.monotonic() < end:
        time.sleep(0.05)
    assert store.count() == 0


def test_sqlite_log_is_checkpointed_and_storage_stays_bounded(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/f.db")
    assert store._query("PRAGMA wal_autocheckpoint", ())[0][0] == 1000  # SQLite's automatic checkpoints stay on
    assert store._query("PRAGMA journal_size_limit", ())[0][0] == 4 * 1024 * 1024
    db = tmp_path / "f.db"
    sizes, now = [], T0
    for cycle in range(3):  # a month of cards, then the prune that removes them; three times over
        _at(store, now)
        for batch in range(20):
            store.record_cards([("svc", [_card(f"{cycle}-{batch}-{i}") for i in range(1000)])])
        assert store.wal_bytes() > 1024 * 1024  # the log did grow
        now += timedelta(days=31)
        assert store.prune(now, feedback_days=400, issued_cards_days=30) == (0, 20_000)
        assert store.wal_bytes() == 0  # checkpointed and truncated
        sizes.append(db.stat().st_size)
    assert sizes[2] <= sizes[0] * 1.1  # freed pages are reused: the file does not grow cycle after cycle


@pytest.mark.parametrize(
    "where, item",
    [
        ("feedback.0.card", {"card": "c\x00"}),
        ("feedback.0.acceptedSuggestions.0.id", {"acceptedSuggestions": [{"id": "s\x001"}]}),
        (
            "feedback.0.overrideReason.reason.system",
            {"overrideReason": {"reason": {"system": "urn:\x00", "code": "x"}}},
        ),
        ("feedback.0.overrideReason.reason.code", {"overrideReason": {"reason": {"code": "\x00"}}}),
        (
            "feedback.0.overrideReason.reason.display",
            {"overrideReason": {"reason": {"code": "x", "display": "a\x00b"}}},
        ),
        ("feedback.0.overrideReason.userComment", {"overrideReason": {"userComment": "see\x00note"}}),
    ],
)
def test_a_nul_character_is_refused_alike_by_both_stores(any_store, where, item):
    from hooks.wsgi import create_app

    store, url = any_store
    body = {"feedback": [{"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-11-22T03:32:27Z", **item}]}
    resp = (
        create_app({"database_url": url}).test_client().post("/cds-services/backpain-order-select/feedback", json=body)
    )
    assert resp.status_code == 400
    issue = resp.get_json()["issue"][0]
    assert issue["expression"] == [where]
    assert issue["diagnostics"] == f"{where} must not contain a NUL character"
    assert store.count() == 0
    with pytest.raises(ValueError, match="NUL"):  # the store itself refuses it too, whoever calls it
        store.append("svc", body["feedback"])
    assert store.count() == 0


@pytest.mark.postgres
def test_postgres_counts_feedback_under_the_topics_a_card_covers(pg_store):
    card = {"uuid": "u1", "indicator": "critical", "source": {"topic": {"code": "ketorolac-contraindication"}}}
    pg_store.record_cards([("svc", [card])], {"u1": ("ketorolac-duration",)})
    pg_store.record_cards([("svc", [card])], {"u1": ("ketorolac-duration",)})  # again: ignored
    pg_store.append("svc", [{"card": "u1", "outcome": "accepted", "outcomeTimestamp": "2026-11-22T03:32:27Z"}])
    assert pg_store.summary("svc") == [
        {"topic": "ketorolac-contraindication", "outcome": "accepted", "overrideReason": None, "count": 1},
        {
            "topic": "ketorolac-duration",
            "outcome": "accepted",
            "overrideReason": None,
            "count": 1,
            "via": "ketorolac-contraindication",
        },
    ]


def test_a_card_that_carries_no_other_topic_is_counted_once(app, client):
    resp = call(client, hook_request("order-select", drafts=[draft("k", *KETOROLAC_INJ, route="im", supply_days=10)]))
    card = resp.get_json()["cards"][0]  # IM: no oral-start fact in it
    app.extensions["backpain"]["ledger"].flush()
    assert client.post("/cds-services/backpain-order-select/feedback", json=_feedback(card["uuid"])).status_code == 200
    summary = client.get("/cds-services/backpain-order-select/feedback/summary").get_json()["summary"]
    assert summary == [{"topic": "ketorolac-duration", "outcome": "accepted", "overrideReason": None, "count": 1}]


def test_covered_topics_go_with_their_issued_card_when_it_is_pruned(tmp_path):
    from datetime import UTC, datetime, timedelta

    store = open_store(f"sqlite:///{tmp_path}/f.db")
    card = {"uuid": "u1", "indicator": "critical", "source": {"topic": {"code": "ketorolac-duration"}}}
    store.record_cards([("svc", [card])], {"u1": ("ketorolac-oral-start",)})
    assert store._query("SELECT COUNT(*) FROM card_covers", ())[0][0] == 1
    store.prune(datetime.now(UTC) + timedelta(days=31), 400, 30)  # no feedback refers to it: the card and its covers go
    assert store._query("SELECT COUNT(*) FROM card_covers", ())[0][0] == 0
