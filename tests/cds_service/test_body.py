"""Reading a hook request: the split parse at its first "prefetch" is exactly a whole parse."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.body import read_hook_body
from cds_service.caches import PrefetchParses


def _same(a, b) -> bool:
    """Equal as parsed JSON, member order included."""
    return orjson.dumps(a) == orjson.dumps(b)


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


@st.composite
def _requests(draw):
    members = draw(st.lists(st.tuples(_names, _values, _spaces), max_size=5))
    raw = b"{" + b",".join(s + n + s + b":" + s + v + s for n, v, s in members) + b"}" + draw(_spaces)
    if draw(st.booleans()) and len(raw) > 2:  # damage it: one byte dropped or doubled, often just before the split
        split = raw.find(b'"prefetch"')
        i = (
            max(0, split - draw(st.integers(0, 3)))
            if split > 0 and draw(st.booleans())
            else draw(st.integers(0, len(raw) - 1))
        )
        raw = (
            raw[:i] + raw[i + draw(st.integers(0, 1)) * 2 - 1 :]
            if draw(st.booleans())
            else raw[:i] + raw[i : i + 1] + raw[i:]
        )
    return raw


@pytest.mark.parametrize(
    "raw, key",
    [
        (b'{"hook":"patient-view","prefetch":{"p":{"id":"1"}}}', b'"prefetch":{"p":{"id":"1"}}}'),
        (b'{ "hook" : "x" ,\n  "prefetch" :\t{"p": null} }\n', b'"prefetch" :\t{"p": null} }\n'),
        (b'{"hook":"x\\/y","note":"a\\"prefetch\\"","prefetch":{}}', b'"prefetch":{}}'),  # escapes before it: fine
        (b'{"prefetch":{"p":"\\u00e9"}}', b'"prefetch":{"p":"\\u00e9"}}'),
        (
            b'{"pre\\u0066etch":1,"hook":"x","prefetch":{"p":1}}',
            b'"prefetch":{"p":1}}',
        ),  # an escaped twin earlier: last wins
        (
            b'{"hook":"x","context":{"a":{"prefetch":1}},"prefetch":{}}',
            None,
        ),  # first "prefetch" is nested: parsed whole
        (b'{"prefetch":{"p":1},"hook":"x"}', None),  # another member after it
        (b'{"hook":"x","pre\\u0066etch":{"a":1},"context":{"prefetch":{}}}', None),
        (b'{"hook":"prefetch","prefetch":{}}', None),  # first "prefetch" is a value
        (b'{"hook":"x"}', None),
        (b'[{"prefetch":{}}]', None),
    ],
)
def test_a_request_splits_at_its_prefetch_only_where_that_is_exact(raw, key):
    body = read_hook_body(raw)
    assert body.prefetch_key == key and body.reused is False
    assert _same(body.data, orjson.loads(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b'{,"prefetch":{}}',
        b'{"a":,"prefetch":{}}',
        b'{"a":1,,"prefetch":{}}',
        b'{"a":1 "prefetch":{}}',
        b'{"a":1,"prefetch":{}',
        b'{"a":1,"prefetch":{}}}',
        b'{"a":1,"prefetch":{}} x',
        b'{"a":["prefetch":{}}',
    ],
)
def test_invalid_json_is_refused_as_the_whole_parse_refuses_it(raw):
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)
    parses = PrefetchParses()
    parses.put(b'"prefetch":{}}', {})  # even when the tail is a known one
    with pytest.raises(orjson.JSONDecodeError):
        read_hook_body(raw, parses)


@settings(max_examples=400, deadline=None)
@given(raws=st.lists(_requests(), min_size=1, max_size=6))
def test_split_parse_is_the_parse(raws):
    """Generated to trip the split: "prefetch" as nested keys, values, escaped names and strings, duplicates, any
    order."""
    parses = PrefetchParses()
    for raw in raws * 2:  # the second time round, known tails come from the cache
        try:
            expected = orjson.loads(raw)
        except orjson.JSONDecodeError:
            with pytest.raises(orjson.JSONDecodeError):
                read_hook_body(raw, parses)
            continue
        body = read_hook_body(raw, parses)
        assert _same(body.data, expected)
        if body.prefetch_key is not None:  # the key determines the prefetch exactly
            assert _same(orjson.loads(b"{" + body.prefetch_key)["prefetch"], expected["prefetch"])
            parses.remember(body)
