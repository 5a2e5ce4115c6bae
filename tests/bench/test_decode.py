"""bench-decode: a tiny run prints its table and writes its figures; the typed decode it measures decodes every entry of
a synthetic chart into the shapes the snapshot reads, and an entry of another type fails only itself."""

from __future__ import annotations

import argparse
import json

import msgspec
import orjson
import pytest

from bench.decode import _tagged_union, bench_decode


def test_a_tiny_run_prints_the_table_and_writes_the_figures(tmp_path, capsys):
    out = tmp_path / "decode.json"
    args = argparse.Namespace(sizes="small", batches=1, per_batch=1, out=str(out))
    assert bench_decode(args) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["size"] == "small" and row["resources"] > 0
    assert row["typed_entries_not_decoded"] == 0  # every resource of the chart has a shape the snapshot reads
    assert all(row[k] > 0 for k in ("orjson_parse_ms", "walk_ms", "typed_decode_ms", "readable_us_per_record"))
    assert f"| small ({row['resources']} res." in capsys.readouterr().out


def test_the_tagged_union_decodes_by_resource_type_and_refuses_other_types():
    decoder = msgspec.json.Decoder(_tagged_union())
    condition = decoder.decode(orjson.dumps({"resourceType": "Condition", "id": "c1", "onsetDateTime": "2026-11-01"}))
    assert type(condition).__name__ == "Condition" and condition.onsetDateTime == "2026-11-01"
    with pytest.raises(msgspec.ValidationError):
        decoder.decode(b'{"resourceType": "Encounter", "id": "e1"}')
