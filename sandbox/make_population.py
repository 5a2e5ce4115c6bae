"""``backpain-cds make-population --patients N --seed S OUT_DIR``: a synthetic Bulk Data export for the audit.

Each patient is a copy of one of the synthetic patients in ``sandbox/patients/`` (chosen by a seeded random draw)
with fresh ids (``pop000001``; its resources ``pop000001-<old id>``, every reference rewritten) and its dates shifted:
half the patients are as their template is today, the other half as it was 1–365 days before ``--today`` (so their
episodes are older and fire other cards, or none, and the months spread). Written as one NDJSON file per resource
type (``Patient.ndjson``, ``Condition.ndjson``, …), one resource per line, a patient at a time (nothing held).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

from .replay import resolve_dates, resources_of, today_start

TEMPLATES = Path(__file__).resolve().parent / "patients"


def templates(directory: Path = TEMPLATES) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.bundle.json"))]


def _rewrite(value: Any, ids: dict[str, str]) -> Any:
    """Every ``reference`` to a resource of the template rewritten to its fresh id."""
    if isinstance(value, list):
        return [_rewrite(v, ids) for v in value]
    if isinstance(value, dict):
        out = {k: _rewrite(v, ids) for k, v in value.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and ref in ids:
            out["reference"] = ids[ref]
        return out
    return value


def fresh_patient(template: dict[str, Any], pid: str, day: date) -> list[dict[str, Any]]:
    """The template's resources as of ``day``, renamed for patient ``pid``."""
    resources = resources_of(resolve_dates(template, today_start(day)))
    names = {}
    for r in resources:
        new = pid if r["resourceType"] == "Patient" else f"{pid}-{r['id']}"
        names[f"{r['resourceType']}/{r['id']}"] = f"{r['resourceType']}/{new}"
    out = []
    for r in resources:
        copy = _rewrite(r, names)
        copy["id"] = names[f"{r['resourceType']}/{r['id']}"].split("/", 1)[1]
        if copy["resourceType"] == "Patient":
            for identifier in copy.get("identifier", []):
                identifier["value"] = f"MRN-{pid}"
        out.append(copy)
    return out


def population(count: int, seed: int, today: date, pool: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    rng = random.Random(seed)
    for n in range(1, count + 1):
        template = rng.choice(pool)
        shift = 0 if rng.random() < 0.5 else rng.randint(1, 365)
        yield fresh_patient(template, f"pop{n:06d}", today - timedelta(days=shift))


def write_population(out: Path, count: int, seed: int, today: date) -> dict[str, int]:
    """Write the export; returns the resources written per type."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, TextIO] = {}
    written: dict[str, int] = {}
    try:
        for resources in population(count, seed, today, templates()):
            for r in resources:
                rtype = r["resourceType"]
                fh = files.get(rtype) or files.setdefault(rtype, (out / f"{rtype}.ndjson").open("w"))
                fh.write(json.dumps(r, separators=(",", ":")) + "\n")
                written[rtype] = written.get(rtype, 0) + 1
    finally:
        for fh in files.values():
            fh.close()
    return dict(sorted(written.items()))


def make_population(args: argparse.Namespace) -> int:
    today = date.fromisoformat(args.today) if args.today else today_start(None).date()
    written = write_population(Path(args.out_dir), args.patients, args.seed, today)
    print(
        f"{args.patients} patients as of {today} → {args.out_dir}: " + ", ".join(f"{t} {n}" for t, n in written.items())
    )
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("make-population", help="write a synthetic Bulk Data NDJSON export (for the audit)")
    p.add_argument("out_dir", help="the export directory to write")
    p.add_argument("--patients", type=int, default=1000, help="how many patients (default: 1000)")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same seed writes the same export")
    p.add_argument("--today", help="the date the population is as of (YYYY-MM-DD); default: the real date")
    p.set_defaults(func=make_population)
