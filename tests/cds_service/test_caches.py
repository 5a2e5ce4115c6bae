"""What a worker keeps between calls: parses and facts, exact, bounded, expiring, and never changing the cards."""

from __future__ import annotations

import logging

import orjson
from hypothesis import strategies as st

from cds_service.body import read_hook_body
from cds_service.caches import PrefetchParses, SnapshotCache
from hooks.wsgi import create_app
from tests.conftest import NOW, bundle, call, fake_resolver, hook_request, sequential_uuids, topics
from tests.factories import KETOROLAC_ORAL, LBP, condition, draft, med_request, observation

_names = st.sampled_from([b'"hook"', b'"context"', b'"prefetch"', b'"pre\\u0066etch"', b'"x"'])


_values = st.recursive(
    st.sampled_from([b"1", b"null", b'"prefetch"', b'"a\\"prefetch\\""', b'"\\\\"', b'"p\\u0072efetch"', b"{}", b"[]"]),
    lambda inner: st.one_of(
        st.lists(st.tuples(_names, inner), max_size=3).map(
            lambda ms: b"{" + b",".join(n + b":" + v for n, v in ms) + b"}"
        ),
        st.lists(inner, max_size=3).map(lambda vs: b"[" + b",".join(vs) + b"]"),
    ),
    max_leaves=6,
)


_spaces = st.sampled_from([b"", b" ", b"\n\t"])


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _chart() -> dict:
    return {
        "conditions": bundle(condition("c1", *LBP, onset="2026-11-01")),
        "medications": bundle(
            med_request("m1", *KETOROLAC_ORAL, status="completed", authored="2026-11-20", supply_days=2)
        ),
        "labs": bundle(observation("o1", "98979-8", "eGFR", 25, "mL/min/{1.73_m2}", "2026-11-10")),
    }


def _stream_app(tmp_path, entries: int, admission: int = 1):
    """The mechanism tests keep a chart from its first sighting; the default (2) is tested on its own below."""
    return create_app(
        {
            "database_url": f"sqlite:///{tmp_path}/fb-{entries}-{admission}.sqlite3",
            "validate_responses": True,
            "snapshot_cache_entries": entries,
            "snapshot_cache_admission": admission,
        },
        clock=lambda: NOW,
        resolver=fake_resolver,
        uuid_factory=sequential_uuids(),
    )


def _keystrokes():
    """What an EHR sends while a ketorolac order is edited: the same chart each time, the draft changing."""
    return [
        hook_request("patient-view", prefetch=_chart()),
        hook_request("order-select", prefetch=_chart(), drafts=[draft("d1", *KETOROLAC_ORAL, supply_days=10)]),
        hook_request("order-select", prefetch=_chart(), drafts=[draft("d1", *KETOROLAC_ORAL, supply_days=2)]),
        hook_request("order-sign", prefetch=_chart(), drafts=[draft("d1", *KETOROLAC_ORAL, supply_days=2)]),
        hook_request(
            "order-select", prefetch={**_chart(), "labs": None}, drafts=[draft("d1", *KETOROLAC_ORAL, supply_days=2)]
        ),
    ]


def test_parsed_prefetches_are_reused_only_for_the_same_bytes_bounded_and_expiring():
    clock = Clock()
    parses = PrefetchParses(entries=2, seconds=60, max_resources=3, max_bytes=64, clock=clock)
    first = read_hook_body(b'{"hook":"a","prefetch":{"p":{"resourceType":"Patient","id":"1"}}}', parses)
    parses.remember(first)
    again = read_hook_body(
        b'{"hook":"b","context":{"x":"\\n"},"prefetch":{"p":{"resourceType":"Patient","id":"1"}}}', parses
    )
    assert again.reused and again.data["prefetch"] is first.data["prefetch"] and again.data["hook"] == "b"
    assert not read_hook_body(b'{"hook":"b","prefetch":{"p":{"resourceType":"Patient","id":"2"}}}', parses).reused
    big = read_hook_body(b'{"prefetch":{"b":{"resourceType":"Bundle","entry":[{},{},{},{}]}}}', parses)
    parses.remember(big)  # more resources than max_resources: not kept
    assert not read_hook_body(b'{"prefetch":{"b":{"resourceType":"Bundle","entry":[{},{},{},{}]}}}', parses).reused
    heavy = b'{"prefetch":{"p":{"resourceType":"Patient","id":"1","text":"%s"}}}' % (b"x" * 20)
    parses.remember(read_hook_body(heavy, parses))  # one resource, but over max_bytes of prefetch: not kept
    assert not read_hook_body(heavy, parses).reused
    for pid in "234":
        parses.remember(read_hook_body(b'{"prefetch":{"p":{"id":"%s"}}}' % pid.encode(), parses))
    assert len(parses) == 2 and not read_hook_body(b'{"prefetch":{"p":{"id":"2"}}}', parses).reused  # least recent out
    clock.now = 61
    assert not read_hook_body(b'{"prefetch":{"p":{"id":"4"}}}', parses).reused  # too old


def test_cache_is_exact_bounded_and_expires():
    clock = Clock()
    cache = SnapshotCache(entries=2, seconds=60, max_resources=3, max_bytes=40, clock=clock)
    reads: list[str] = []

    def get(scope, prefetch, name):
        """One call: look up or read, then (as after the response) store a new reading."""
        value, cached, store = cache.get_or_read(scope, prefetch, lambda: reads.append(name) or name)
        assert (store is None) == cached or store is None
        if store is not None:
            store()
        return value, cached

    a, b, c = {"k": {"id": "a"}}, {"k": {"id": "b"}}, {"k": {"id": "c"}}
    assert get(("p1",), a, "a") == ("a", False)
    assert get(("p1",), {"k": {"id": "a"}}, "a2") == ("a", True)  # equal content, new objects
    assert get(("p2",), a, "a-p2") == ("a-p2", False)  # another scope (patient) never shares
    assert get(("p1",), b, "b") == ("b", False)  # two entries: the least recently used (a, p1) goes
    assert get(("p2",), a, "x") == ("a-p2", True)
    assert get(("p1",), a, "a again") == ("a again", False)  # evicted, so read again (b goes)
    assert get(("p2",), a, "y") == ("a-p2", True)
    clock.now = 61
    assert get(("p1",), a, "a fresh") == ("a fresh", False)  # too old: read again
    big = {"k": {"resourceType": "Bundle", "entry": [{"resource": {"id": "x"}}] * 3}, "p": {"id": "p1"}}  # 4 resources
    assert get(("p1",), big, "big") == ("big", False)
    assert get(("p1",), big, "big again") == ("big again", False)  # over max_resources: not kept
    assert get(("p1",), c, "c") == ("c", False)
    heavy = {"k": {"id": "h", "text": "x" * 40}}  # one resource, but over max_bytes serialised: not kept
    assert get(("p1",), heavy, "heavy") == ("heavy", False)
    assert get(("p1",), heavy, "heavy again") == ("heavy again", False)
    assert cache.get_or_read(("p1",), heavy, lambda: "by bytes", b"x" * 41)[1:] == (
        False,
        None,
    )  # a long key: never stored
    off = SnapshotCache(entries=0)
    assert off.get_or_read(("p1",), a, lambda: "1")[:2] == ("1", False)
    assert off.get_or_read(("p1",), a, lambda: "2")[:2] == ("2", False)
    assert reads == ["a", "a-p2", "b", "a again", "a fresh", "big", "big again", "c", "heavy", "heavy again"]


def test_first_look_at_a_chart_is_not_serialised_and_unstored_readings_are_not_reused(monkeypatch):
    import cds_service.caches as snapshot_module

    serialised = []
    real = snapshot_module.orjson.dumps
    monkeypatch.setattr(snapshot_module.orjson, "dumps", lambda v, *a: serialised.append(1) or real(v, *a))
    cache = SnapshotCache()
    value, cached, store = cache.get_or_read(("p1",), {"k": {"id": "a"}}, lambda: "first")
    assert (value, cached, serialised) == ("first", False, [])  # nothing to compare with: no serialising
    value, cached, _ = cache.get_or_read(("p1",), {"k": {"id": "a"}}, lambda: "second")
    assert (value, cached) == ("second", False)  # the first reading was never stored (no response sent)
    store()
    assert serialised == [1]  # stored after the response: serialised then
    assert cache.get_or_read(("p1",), {"k": {"id": "a"}}, lambda: "third")[:2] == ("first", True)


def test_a_keystroke_stream_gets_the_same_cards_with_and_without_the_cache(tmp_path, caplog):
    cached, uncached = _stream_app(tmp_path, 16), _stream_app(tmp_path, 0)
    caplog.set_level(logging.INFO, logger="backpain_cds.request")
    with_cache = [call(cached.test_client(), body).get_json() for body in _keystrokes()]
    logged = [r for r in caplog.records if getattr(r, "msg", "") == "hook call"]
    flags = [r.prefetch_cached for r in logged]
    without = [call(uncached.test_client(), body).get_json() for body in _keystrokes()]
    assert with_cache == without  # same cards, same uuids (same sequence), same everything
    # the parsed prefetch too is taken from the first request that carried the same bytes (each is sent serialised
    # alike)
    assert [r.prefetch_reused for r in logged] == [False, True, True, True, False]
    # chart open: nothing cached; then the same chart (observations first read from the cached reading, for the
    # contraindication), a new draft each time (the 10-day draft never leaks into the next call); a changed chart: read
    assert flags == [False, True, True, True, False]
    assert [[(c["source"]["topic"]["code"], c["indicator"]) for c in r["cards"]] for r in with_cache] == [
        [],
        [("ketorolac-contraindication", "critical")],  # one problem, one card: it carries the 10-day duration
        [("ketorolac-contraindication", "critical")],
        [("ketorolac-contraindication", "critical")],
        [("ketorolac-oral-start", "warning")],  # catalogue: warning
    ]


def test_another_patient_with_identical_records_is_read_afresh(tmp_path):
    app = _stream_app(tmp_path, 16)
    client = app.test_client()
    first = hook_request("order-select", prefetch=_chart(), drafts=[draft("d1", *KETOROLAC_ORAL, supply_days=2)])
    assert ("ketorolac-contraindication", "critical") in topics(call(client, first))
    other = hook_request(
        "order-select", pid="p2", prefetch=_chart(), drafts=[draft("d1", *KETOROLAC_ORAL, supply_days=2, pid="p2")]
    )
    # the chart's records name Patient/p1: for patient p2 they are another patient's and are not read
    assert topics(call(client, other)) == [("ketorolac-oral-start", "warning")]


def test_bodies_with_escapes_reuse_their_prefetch_and_other_orders_are_keyed_by_serialising(tmp_path, caplog):
    app = _stream_app(tmp_path, 16)
    client = app.test_client()
    caplog.set_level(logging.INFO, logger="backpain_cds.request")
    body = hook_request("order-select", prefetch=_chart(), drafts=[draft("d1", *KETOROLAC_ORAL, supply_days=2)])
    chart = orjson.dumps(body["prefetch"])
    for note in ("first\\nkeystroke", "second\\nkeystroke"):  # escapes before the prefetch: its bytes still identify it
        raw = orjson.dumps(body).replace(b'"userId"', b'"note":"' + note.encode() + b'","userId"', 1)
        assert b"\\" in raw and raw.endswith(b'"prefetch":' + chart + b"}")
        resp = client.post(
            "/cds-services/backpain-order-select", data=raw, content_type="application/json", buffered=True
        )
        assert topics(resp) == [("ketorolac-contraindication", "critical")]
    first_last = orjson.dumps({"prefetch": body["prefetch"], **{k: v for k, v in body.items() if k != "prefetch"}})
    for _ in range(2):  # parsed whole; its facts are kept under its serialised prefetch (a key of another kind)
        resp = client.post(
            "/cds-services/backpain-order-select", data=first_last, content_type="application/json", buffered=True
        )
        assert topics(resp) == [("ketorolac-contraindication", "critical")]
    logged = [r for r in caplog.records if getattr(r, "msg", "") == "hook call"]
    assert [(r.prefetch_reused, r.prefetch_cached) for r in logged] == [
        (False, False),
        (True, True),
        (False, False),
        (False, True),
    ]
    # what the calls read was never changed by them: the kept parse is still the chart as sent
    kept = app.extensions["backpain"]["parses"].get(b'"prefetch":' + chart + b"}")
    assert kept is not None and orjson.dumps(kept) == chart


def test_by_default_a_chart_is_kept_from_its_second_sighting(tmp_path, caplog):
    """snapshot_cache_admission = 2: a first look keeps nothing (neither the parse nor the facts), a keystroke stream
    is kept from its second call and read from the cache from its third — with the same cards as without a cache."""
    app, uncached = _stream_app(tmp_path, 16, admission=2), _stream_app(tmp_path, 0)
    caplog.set_level(logging.INFO, logger="backpain_cds.request")
    with_cache = [call(app.test_client(), body).get_json() for body in _keystrokes()]
    logged = [r for r in caplog.records if getattr(r, "msg", "") == "hook call"]
    assert [r.prefetch_reused for r in logged] == [False, False, True, True, False]
    assert [r.prefetch_cached for r in logged] == [False, False, True, True, False]
    assert with_cache == [call(uncached.test_client(), body).get_json() for body in _keystrokes()]


class _CountedBytes(bytes):
    hashed = 0

    def __hash__(self) -> int:
        type(self).hashed += 1
        return super().__hash__()


def test_a_prefetch_no_kept_parse_could_match_is_not_hashed():
    """A first look pays nothing to ask: bytes whose length and ends no kept key shares are answered without hashing
    them (~0.2 ms for a typical chart); equal bytes are still found, and an evicted key's fingerprint goes with it."""
    clock = Clock()
    parses = PrefetchParses(entries=1, seconds=60, clock=clock)
    kept = b'"prefetch":{"p":{"resourceType":"Patient","id":"1"}}}'
    parses.put(kept, {"p": {"id": "1"}})
    _CountedBytes.hashed = 0
    assert parses.get(_CountedBytes(kept.replace(b'"1"', b'"2"'))) is None
    assert _CountedBytes.hashed == 0
    assert parses.get(_CountedBytes(kept)) == {"p": {"id": "1"}} and _CountedBytes.hashed > 0
    parses.put(b'"prefetch":{"q":null}}', {"q": None})  # evicts the first (one entry)
    _CountedBytes.hashed = 0
    assert parses.get(_CountedBytes(kept)) is None and _CountedBytes.hashed == 0


def test_first_looks_at_distinct_charts_keep_nothing():
    clock = Clock()
    parses = PrefetchParses(entries=4, seconds=60, clock=clock, admit_on_sight=2)
    cache = SnapshotCache(entries=4, seconds=60, clock=clock, admit_on_sight=2)
    for pid in "abcdefgh":
        body = read_hook_body(
            b'{"hook":"a","prefetch":{"p":{"resourceType":"Patient","id":"%s"}}}' % pid.encode(), parses
        )
        parses.remember(body)
        _, cached, store = cache.get_or_read((pid,), body.data["prefetch"], lambda pid=pid: pid)
        assert not cached and store is None
    assert len(parses) == 0 and len(cache) == 0
    again = read_hook_body(b'{"hook":"b","prefetch":{"p":{"resourceType":"Patient","id":"h"}}}', parses)
    parses.remember(again)  # its second sighting: kept now
    assert read_hook_body(b'{"hook":"c","prefetch":{"p":{"resourceType":"Patient","id":"h"}}}', parses).reused
    clock.now = 61  # a sighting older than snapshot_cache_seconds is forgotten
    late = read_hook_body(b'{"hook":"a","prefetch":{"p":{"resourceType":"Patient","id":"a"}}}', parses)
    parses.remember(late)
    assert not read_hook_body(b'{"hook":"a","prefetch":{"p":{"resourceType":"Patient","id":"a"}}}', parses).reused


def test_a_sighting_counts_for_one_patients_chart_even_when_charts_begin_and_end_alike():
    """Charts of two patients can share their length and their first and last 512 bytes (the id only in the middle):
    the second is a first look all the same, and is not kept (keeping every first look is what admission avoids)."""
    parses = PrefetchParses(entries=4, seconds=60, clock=Clock(), admit_on_sight=2)
    pad = b'{"resourceType":"Bundle","entry":[]' + b" " * 600

    def body(pid: str):
        prefetch = b'{"a":%s},"p":{"resourceType":"Patient","id":"%s"},"z":%s}}' % (pad, pid.encode(), pad)
        return read_hook_body(b'{"context":{"patientId":"%s"},"prefetch":%s}' % (pid.encode(), prefetch), parses)

    first, other = body("pa"), body("pb")
    assert (
        first.prefetch_key[:512] == other.prefetch_key[:512] and first.prefetch_key[-512:] == other.prefetch_key[-512:]
    )
    parses.remember(first)
    parses.remember(other)  # another patient: its first sighting
    assert len(parses) == 0
    parses.remember(body("pb"))  # that patient again: kept now
    assert len(parses) == 1 and body("pb").reused and not body("pa").reused


def test_the_request_log_counts_prefetch_resources_and_fact_resources_apart(tmp_path, caplog):
    # a server that ignored the search's type: an Immunization among the conditions (not read, but sent)
    conditions = bundle(condition("lbp", *LBP, onset="2026-11-12"), {"resourceType": "Immunization", "id": "i1"})
    request = hook_request("patient-view", prefetch={"conditions": conditions})
    caplog.set_level(logging.INFO, logger="backpain_cds.request")
    call(_stream_app(tmp_path, 0).test_client(), request)
    (logged,) = [r for r in caplog.records if getattr(r, "msg", "") == "hook call"]
    assert logged.prefetch_resources == 3  # as sent: the Patient and every entry of the Bundle
    assert logged.fact_resources == 1  # the one record a fact was read from (the Immunization is not read)
