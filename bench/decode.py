"""``backpain-cds bench-decode``: what reading a first-look chart costs in one process, step by step, and what a typed
decoder would change.

For each synthetic chart (small, typical, large) it times, best of several batches: the JSON parse of the prefetch
(orjson, what the floor pays too); the snapshot's walk over that parse (facts, and the observations a rule reads); a
compiled typed decode of the same bytes into the shapes of the fields the snapshot reads (msgspec Structs), per Bundle
entry (so that one bad entry only fails itself, as the reader skips one entry at a time, and each record's bytes are
kept for the suggestions that send it back whole) and in one pass (faster, but one bad entry fails the lot); and,
per record behind a card, the readability check the service runs (``snapshot.shapes.readable``) beside validating it
with its fhir.resources model (what the service ran before). Nothing is asserted: the figures are printed and written
as JSON, with the ratios of the same run.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Union

import msgspec
import orjson

from cds_service.fhir_models import is_valid_r4
from cds_service.prefetch import resource_count
from cds_service.snapshot.shapes import SHAPES, readable
from hooks.engine import Knowledge

from .charts import synthetic_prefetch
from .loadgen import write_rows


def _tagged_union() -> Any:
    """The shapes as one union tagged by ``resourceType`` (an entry of another type fails its own decode only)."""
    return Union[tuple(SHAPES.values())]  # noqa: UP007 - built at run time from a tuple of classes


class _Entry(msgspec.Struct):
    resource: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))


class _Bundle(msgspec.Struct):
    entry: list[_Entry] = []


_RESOURCE = _tagged_union()


class _TypedEntry(msgspec.Struct):
    resource: _RESOURCE | None = None  # type: ignore[valid-type]


class _TypedBundle(msgspec.Struct):
    entry: list[_TypedEntry] = []


_FRESH = itertools.count()  # a new id for every record validated: fhir_models caches validity by content


def _best_ms(fn: Callable[[], object], batches: int, per_batch: int) -> float:
    """Best of ``batches`` of ``per_batch`` calls, the garbage collector off (the service sizes it so that a call
    triggers no collection; here a collection would land on whichever step allocated last)."""
    fn()
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(batches):
            start = time.perf_counter()
            for _ in range(per_batch):
                fn()
            best = min(best, (time.perf_counter() - start) / per_batch)
    finally:
        gc.enable()
    return best * 1000


def measure(size: str, batches: int = 5, per_batch: int = 20) -> dict[str, Any]:
    prefetch = synthetic_prefetch(size, pid="bench-decode")
    raw = orjson.dumps(prefetch)
    reader = Knowledge.load().reader()
    today = datetime.now(UTC).date()
    context = {"patientId": "bench-decode"}
    values = orjson.loads(raw)
    skeleton = msgspec.json.Decoder(dict[str, _Bundle | None])
    resource = msgspec.json.Decoder(_RESOURCE)
    one_pass = msgspec.json.Decoder(dict[str, _TypedBundle | None])
    failed = 0

    def typed() -> None:
        nonlocal failed
        failed = 0
        for value in skeleton.decode(raw).values():
            for entry in value.entry if value is not None else ():
                try:
                    resource.decode(entry.resource)
                except msgspec.ValidationError:
                    failed += 1  # a type the snapshot does not read, or a read field in another shape

    def walk() -> None:
        reader.read(context=context, prefetch=values, today=today).observations  # noqa: B018 - read on first use

    records = [e["resource"] for key in ("conditions", "medications") for e in values[key]["entry"][:5]]
    parse_ms = _best_ms(lambda: orjson.loads(raw), batches, per_batch)
    walk_ms = _best_ms(walk, batches, per_batch)
    typed_ms = _best_ms(typed, batches, per_batch)
    one_pass_ms = _best_ms(lambda: one_pass.decode(raw), batches, per_batch)
    readable_us = _best_ms(lambda: [readable(r) for r in records], batches, per_batch) * 1000 / len(records)
    pydantic_us = _best_ms(lambda: [is_valid_r4(dict(r, id=f"x{next(_FRESH)}")) for r in records], 3, 3)
    return {
        "size": size,
        "resources": resource_count(values),
        "kb": round(len(raw) / 1024),
        "orjson_parse_ms": round(parse_ms, 3),
        "walk_ms": round(walk_ms, 3),
        "typed_decode_ms": round(typed_ms, 3),
        "typed_entries_not_decoded": failed,
        "typed_one_pass_ms": round(one_pass_ms, 3),
        "typed_vs_parse": round(typed_ms / parse_ms, 2),
        "typed_vs_parse_and_walk": round(typed_ms / (parse_ms + walk_ms), 2),
        "readable_us_per_record": round(readable_us, 1),
        "fhir_resources_us_per_record": round(pydantic_us * 1000 / len(records), 1),
    }


def bench_decode(args: argparse.Namespace) -> int:
    rows = [measure(size, args.batches, args.per_batch) for size in args.sizes.split(",")]
    header = (
        "| chart | orjson parse ms | snapshot walk ms | typed decode, per entry ms | typed ÷ parse "
        "| typed ÷ (parse + walk) | typed decode, one pass ms | readable µs/record | fhir.resources µs/record |"
    )
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['size']} ({r['resources']} res., {r['kb']} KB) | {r['orjson_parse_ms']} | {r['walk_ms']} | "
            f"{r['typed_decode_ms']} | {r['typed_vs_parse']} | {r['typed_vs_parse_and_walk']} | "
            f"{r['typed_one_pass_ms']} | {r['readable_us_per_record']} | {r['fhir_resources_us_per_record']} |"
        )
    out = write_rows(args.out, rows)
    print("\n".join(lines) + f"\n\nwritten: {out}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("bench-decode", help="in one process: parse, snapshot walk, typed decode, record checks")
    p.add_argument("--sizes", default="small,typical,large")
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--per-batch", type=int, default=20)
    p.add_argument("--out", default="bench/results/decode-latest.json")
    p.set_defaults(func=bench_decode)
