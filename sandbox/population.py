"""A Bulk Data NDJSON export read a partition of patients at a time, and each patient's calls and card tallies.

The export is read twice and never held whole: a first pass (``index_export``) streams every line once and keeps, per
patient id, only where that patient's lines are (file number, byte offset, length); a partition is then a list of
such entries for K patients, and ``read_partition`` seeks to exactly those lines. Memory is bounded by the index (a
few integers per resource) on the driver and by one partition's resources in a worker.

Each patient is called as the service would be: once as ``patient-view`` with the whole chart as prefetch, and once
per active order (MedicationRequest or ServiceRequest, status ``active``) as ``order-sign`` with that order as the
draft in ``context.draftOrders`` and the rest of the chart as prefetch.
"""

from __future__ import annotations

import copy
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from cds_service.prefetch import PrefetchTemplate

from .replay import Send, build_request, patient_of, prefetch_for

Services = dict[str, tuple[str, tuple[PrefetchTemplate, ...]]]  # hook → (service id, prefetch templates)
Entry = tuple[int, int, int]  # (file number, byte offset, length) of one NDJSON line
ORDER_TYPES = ("MedicationRequest", "ServiceRequest")
AGE_BANDS = ((0, 17), (18, 39), (40, 64), (65, 79), (80, 200))
UNKNOWN = "unknown"


@dataclass
class ExportIndex:
    files: list[str]  # the export's *.ndjson files, sorted
    lines: dict[str, array[int]] = field(default_factory=dict)  # patient id → flat (file, offset, length) triples
    unreadable: int = 0  # lines that are not JSON: skipped and counted, never the end of the audit

    @property
    def patients(self) -> int:
        return len(self.lines)

    def entries(self, pid: str) -> list[Entry]:
        flat = self.lines[pid]
        return [(flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)]


def index_export(directory: Path) -> ExportIndex:
    """First pass: stream every line of every ``*.ndjson`` file once and note where each patient's lines are."""
    index = ExportIndex([str(p) for p in sorted(directory.glob("*.ndjson"))])
    for number, name in enumerate(index.files):
        offset = 0
        with open(name, "rb") as fh:
            for line in fh:
                length = len(line)
                if line.strip():
                    try:
                        pid = patient_of(orjson.loads(line))
                    except orjson.JSONDecodeError:
                        index.unreadable += 1
                        pid = None
                    if pid:
                        index.lines.setdefault(pid, array("q")).extend((number, offset, length))
                offset += length
    return index


def partitions(index: ExportIndex, size: int) -> list[list[tuple[str, list[Entry]]]]:
    """The patients (sorted by id) in groups of ``size``, each patient with the places of its lines."""
    return list(iter_partitions(index, size))


def iter_partitions(index: ExportIndex, size: int) -> Iterator[list[tuple[str, list[Entry]]]]:
    """``partitions`` one at a time: a partition's entry lists are built only when it is handed out."""
    if size < 1:
        raise ValueError("partition size must be at least 1")
    ids = sorted(index.lines)
    for i in range(0, len(ids), size):
        yield [(pid, index.entries(pid)) for pid in ids[i : i + size]]


def read_partition(files: list[str], patients: list[tuple[str, list[Entry]]]) -> Iterator[tuple[str, list[Any]]]:
    """Each patient of a partition with its resources, read by seeking to its lines (in export order)."""
    handles: dict[int, Any] = {}
    try:
        for pid, entries in patients:
            resources = []
            for number, offset, length in sorted(entries):
                fh = handles.get(number) or handles.setdefault(number, open(files[number], "rb"))
                fh.seek(offset)
                resources.append(orjson.loads(fh.read(length)))
            yield pid, resources
    finally:
        for fh in handles.values():
            fh.close()


def active_orders(resources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in resources if r.get("resourceType") in ORDER_TYPES and r.get("status") == "active"]


def calls_for(
    pid: str, resources: list[dict[str, Any]], services: Services, now: datetime
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(hook, request body, the order drafted or None) for each call a patient gets."""
    service_id, templates = services["patient-view"]
    prefetch = prefetch_for(templates, resources, pid)
    yield "patient-view", build_request("patient-view", pid, {}, prefetch, None, now), None
    if "order-sign" not in services:
        return
    _, sign_templates = services["order-sign"]
    for order in active_orders(resources):
        rest = [r for r in resources if r is not order]
        draft = copy.deepcopy(order)
        draft["status"] = "draft"  # what an EHR sends while the order is being signed
        body = build_request(
            "order-sign", pid, {"draftOrders": [draft]}, prefetch_for(sign_templates, rest, pid), None, now
        )
        yield "order-sign", body, order


# --- what a card counts under ---------------------------------------------------------------------------------------

_REFERENCE = re.compile(
    r"\b(Condition|MedicationRequest|MedicationStatement|MedicationAdministration|Observation|ServiceRequest|"
    r"Procedure|ImagingStudy|DiagnosticReport|AllergyIntolerance)/([A-Za-z0-9.\-]{1,64})"
)
_DATE_FIELDS = (
    "authoredOn",
    "onsetDateTime",
    "recordedDate",
    "effectiveDateTime",
    "occurrenceDateTime",
    "performedDateTime",
    "started",
    "issued",
    "dateAsserted",
)
_PERIOD_FIELDS = ("effectivePeriod", "occurrencePeriod", "performedPeriod", "onsetPeriod")


def record_month(resource: dict[str, Any]) -> str | None:
    """The ``YYYY-MM`` of a record's clinical date (when ordered, began, was observed or performed)."""
    for name in _DATE_FIELDS:
        value = resource.get(name)
        if isinstance(value, str) and len(value) >= 7:
            return value[:7]
    for name in _PERIOD_FIELDS:
        value = (resource.get(name) or {}).get("start")
        if isinstance(value, str) and len(value) >= 7:
            return value[:7]
    return None


def _names(resource: dict[str, Any]) -> set[str]:
    """What a card may call a record by: its code's or medication's text and displays."""
    names = set()
    for key in ("code", "medicationCodeableConcept"):
        concept = resource.get(key)
        if isinstance(concept, dict):
            names.add(concept.get("text"))
            names.update(c.get("display") for c in concept.get("coding") or [] if isinstance(c, dict))
    return {n for n in names if isinstance(n, str) and len(n) >= 6}


def card_month(card: dict[str, Any], resources: list[dict[str, Any]], order: dict[str, Any] | None) -> str:
    """The month a card counts under: the drafted order's authoredOn, else the latest month among the records the
    card cites — by reference (``Type/id`` in its detail or suggestions) or, failing that, by name (a record's code
    text or display in its summary or detail) — else ``unknown``."""
    if order is not None and (month := record_month({"authoredOn": order.get("authoredOn")})):
        return month
    cited = {f"{t}/{i}" for t, i in _REFERENCE.findall(orjson.dumps(card).decode())}
    records = [r for r in resources if f"{r.get('resourceType')}/{r.get('id')}" in cited]
    if not records:
        text = f"{card.get('summary', '')}\n{card.get('detail', '')}"
        records = [r for r in resources if r.get("resourceType") != "Patient" and any(n in text for n in _names(r))]
    months = [m for r in records if (m := record_month(r))]
    return max(months) if months else UNKNOWN


def age_band(resources: Iterable[dict[str, Any]], today: date) -> str:
    """The patient's age band as of ``today`` from Patient.birthDate (``unknown`` without one)."""
    born = next((r.get("birthDate") for r in resources if r.get("resourceType") == "Patient"), None)
    try:
        birth = date.fromisoformat(born[:10]) if isinstance(born, str) and len(born) >= 10 else None
    except ValueError:
        birth = None
    if birth is None:
        return UNKNOWN
    age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    return next((f"{lo}+" if hi >= 200 else f"{lo}–{hi}" for lo, hi in AGE_BANDS if lo <= age <= hi), UNKNOWN)


@dataclass
class Tally:
    """Card counts and the patients behind each topic: what a partition returns, and what partitions add up to."""

    patients: int = 0
    errors: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    cards: Counter[tuple[str, str, str, str, str]] = field(
        default_factory=Counter
    )  # hook, topic, indicator, month, age
    patients_by_topic: dict[str, set[str]] = field(default_factory=dict)

    def add_patient(
        self, pid: str, resources: list[dict[str, Any]], send: Send, services: Services, now: datetime
    ) -> None:
        self.patients += 1
        band = age_band(resources, now.date())
        for hook, body, order in calls_for(pid, resources, services, now):
            self.calls[hook] += 1
            status, data = send(services[hook][0], body)
            if status != 200:
                self.errors += 1
                continue
            for card in data.get("cards", []):
                topic = str(((card.get("source") or {}).get("topic") or {}).get("code", "?"))
                self.cards[(hook, topic, str(card.get("indicator")), card_month(card, resources, order), band)] += 1
                self.patients_by_topic.setdefault(topic, set()).add(pid)

    def merge(self, other: Tally) -> None:
        self.patients += other.patients
        self.errors += other.errors
        self.calls.update(other.calls)
        self.cards.update(other.cards)
        for topic, ids in other.patients_by_topic.items():
            self.patients_by_topic.setdefault(topic, set()).update(ids)

    def summary(self) -> dict[str, Any]:
        """The counts as JSON: per topic, indicator, topic × indicator, hook (and hook × topic × indicator), month, age
        band, and the patient ids behind each topic (ids only)."""

        def by(*keys: int) -> dict[str, int]:
            out: Counter[str] = Counter()
            for key, n in self.cards.items():
                label = key[keys[0]] if len(keys) == 1 else f"{key[keys[0]]} ({key[keys[1]]})"
                out[label] += n
            return dict(sorted(out.items()))

        per_hook: dict[str, Counter[str]] = {}
        for (hook, topic, indicator, _, _), n in self.cards.items():
            per_hook.setdefault(hook, Counter())[f"{topic} ({indicator})"] += n
        return {
            "patients": self.patients,
            "calls": dict(sorted(self.calls.items())),
            "errors": self.errors,
            "cards": sum(self.cards.values()),
            "by_topic": by(1),
            "by_indicator": by(2),
            "by_topic_indicator": by(1, 2),
            "by_hook": by(0),
            "by_hook_topic_indicator": {h: dict(sorted(c.items())) for h, c in sorted(per_hook.items())},
            "by_month": by(3),
            "by_age_band": by(4),
            "patients_by_topic": {t: sorted(ids) for t, ids in sorted(self.patients_by_topic.items())},
        }
