"""The prefetch facts cache: exact (keyed by content), bounded, and invisible in the cards it helps produce."""

from __future__ import annotations

import logging

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service import create_app
from cds_service.prefetch import prefetch_bytes
from cds_service.snapshot import SnapshotCache
from tests.conftest import NOW, bundle, call, fake_resolver, hook_request, sequential_uuids, topics
from tests.factories import KETOROLAC_ORAL, LBP, condition, draft, med_request, observation


@pytest.mark.parametrize("raw, expected", [
    (b'{"hook":"patient-view","prefetch":{"p":{"id":"1"}}}', b'"prefetch":{"p":{"id":"1"}}}'),
    (b'{ "hook" : "x" ,\n  "prefetch" :\t{"p": null} }\n', b'"prefetch" :\t{"p": null} }\n'),
    (b'{"hook":"x","context":{"a":{"prefetch":1}},"prefetch":{}}', b'"prefetch":1}},"prefetch":{}}'),  # starts earlier: fine
    (b'{"prefetch":{"p":1},"hook":"x"}', None),  # another member after it
    (b'{"hook":"x\\/y","prefetch":{}}', None),  # a backslash anywhere: an escape could hide a key
    (b'{"hook":"x","pre\\u0066etch":{"a":1},"context":{"prefetch":{}}}', None),
    (b'{"hook":"x"}', None),
])
def test_prefetch_bytes_only_where_they_determine_the_prefetch(raw, expected):
    assert prefetch_bytes(raw, orjson.loads(raw)) == expected


_members = st.sampled_from([b'"hook":"order-select"', b'"context":{"a":{"prefetch":1}}', b'"context":{"prefetch":{"p":1}}',
                            b'"x":[{"prefetch":{"p":1}}]', b'"x":"prefetch"', b'"y":{"z":[1,{"prefetch":[]}]}', b'"q":{}'])
_prefetches = st.sampled_from([b'{}', b'{"p":1}', b'{"p":{"prefetch":1}}', b'{"q":{"prefetch":1}}', b'{"prefetch":{"p":1}}',
                               b'{"p":1,"prefetch":1}', b'[{"prefetch":{}}]', b'[1,{"prefetch":{}}]', b'{"p":[1]}'])


@settings(max_examples=200, deadline=None)
@given(bodies=st.lists(st.tuples(st.lists(_members, max_size=3), _prefetches, st.sampled_from([b"", b" ", b"\n"])),
                       min_size=2, max_size=6))
def test_equal_prefetch_bytes_mean_equal_prefetch(bodies):
    """Bodies built to trip the argument (nested "prefetch" keys and strings before and inside the real one)."""
    seen: dict[bytes, object] = {}
    for members, value, space in bodies:
        raw = b"{" + b",".join([*members, b'"prefetch":' + space + value]) + space + b"}"
        body = orjson.loads(raw)
        key = prefetch_bytes(raw, body)
        assert key is not None
        assert seen.setdefault(key, body["prefetch"]) == body["prefetch"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cache_is_exact_bounded_and_expires():
    clock = Clock()
    cache = SnapshotCache(entries=2, seconds=60, max_resources=3, clock=clock)
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
    off = SnapshotCache(entries=0)
    assert off.get_or_read(("p1",), a, lambda: "1")[:2] == ("1", False)
    assert off.get_or_read(("p1",), a, lambda: "2")[:2] == ("2", False)
    assert reads == ["a", "a-p2", "b", "a again", "a fresh", "big", "big again", "c"]


def test_first_look_at_a_chart_is_not_serialised_and_unstored_readings_are_not_reused(monkeypatch):
    import cds_service.snapshot as snapshot_module

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


def _chart() -> dict:
    return {"conditions": bundle(condition("c1", *LBP, onset="2026-11-01")),
            "medications": bundle(med_request("m1", *KETOROLAC_ORAL, status="completed", authored="2026-11-20", supply_days=2)),
            "labs": bundle(observation("o1", "98979-8", "eGFR", 25, "mL/min/{1.73_m2}", "2026-11-10"))}


def _stream_app(tmp_path, entries: int):
    return create_app({"database_url": f"sqlite:///{tmp_path}/fb-{entries}.sqlite3", "validate_responses": True,
                       "snapshot_cache_entries": entries},
                      clock=lambda: NOW, resolver=fake_resolver, uuid_factory=sequential_uuids())


def _keystrokes():
    """What an EHR sends while a ketorolac order is edited: the same chart each time, the draft changing."""
    return [hook_request("patient-view", prefetch=_chart()),
            hook_request("order-select", prefetch=_chart(), drafts=[draft("d1", *KETOROLAC_ORAL, supply_days=10)]),
            hook_request("order-select", prefetch=_chart(), drafts=[draft("d1", *KETOROLAC_ORAL, supply_days=2)]),
            hook_request("order-sign", prefetch=_chart(), drafts=[draft("d1", *KETOROLAC_ORAL, supply_days=2)]),
            hook_request("order-select", prefetch={**_chart(), "labs": None},
                         drafts=[draft("d1", *KETOROLAC_ORAL, supply_days=2)])]


def test_a_keystroke_stream_gets_the_same_cards_with_and_without_the_cache(tmp_path, caplog):
    cached, uncached = _stream_app(tmp_path, 16), _stream_app(tmp_path, 0)
    caplog.set_level(logging.INFO, logger="backpain_cds.request")
    with_cache = [call(cached.test_client(), body).get_json() for body in _keystrokes()]
    flags = [r.prefetch_cached for r in caplog.records if getattr(r, "msg", "") == "hook call"]
    without = [call(uncached.test_client(), body).get_json() for body in _keystrokes()]
    assert with_cache == without  # same cards, same uuids (same sequence), same everything
    # chart open: nothing cached; then the same chart (observations first read from the cached reading, for the
    # contraindication), a new draft each time (the 10-day draft never leaks into the next call); a changed chart: read
    assert flags == [False, True, True, True, False]
    assert [[(c["source"]["topic"]["code"], c["indicator"]) for c in r["cards"]] for r in with_cache] == [
        [],
        [("ketorolac-duration", "critical"), ("ketorolac-contraindication", "critical")],
        [("ketorolac-contraindication", "critical")],
        [("ketorolac-contraindication", "critical")],
        [("ketorolac-oral-start", "warning")],  # catalogue: warning
    ]


def test_another_patient_with_identical_records_is_read_afresh(tmp_path):
    app = _stream_app(tmp_path, 16)
    client = app.test_client()
    first = hook_request("order-select", prefetch=_chart(), drafts=[draft("d1", *KETOROLAC_ORAL, supply_days=2)])
    assert ("ketorolac-contraindication", "critical") in topics(call(client, first))
    other = hook_request("order-select", pid="p2", prefetch=_chart(), drafts=[draft("d1", *KETOROLAC_ORAL, supply_days=2, pid="p2")])
    # the chart's records name Patient/p1: for patient p2 they are another patient's and are not read
    assert topics(call(client, other)) == [("ketorolac-oral-start", "warning")]


def test_bodies_with_escapes_are_keyed_by_their_serialised_prefetch(tmp_path, caplog):
    app = _stream_app(tmp_path, 16)
    client = app.test_client()
    caplog.set_level(logging.INFO, logger="backpain_cds.request")
    for note in ("first\\nkeystroke", "second\\nkeystroke"):  # a backslash: the request's own bytes are not used as the key
        body = hook_request("order-select", prefetch=_chart(), drafts=[draft("d1", *KETOROLAC_ORAL, supply_days=2)])
        raw = orjson.dumps(body).replace(b'"userId"', b'"note":"' + note.encode() + b'","userId"', 1)
        assert b"\\" in raw
        resp = client.post("/cds-services/backpain-order-select", data=raw, content_type="application/json", buffered=True)
        assert topics(resp) == [("ketorolac-contraindication", "critical")]
    assert [r.prefetch_cached for r in caplog.records if getattr(r, "msg", "") == "hook call"] == [False, True]
