"""Reading a prefetch into a ``PatientSnapshot``: one entry at a time (one bad entry only skips itself, counted by
type), entries for another patient ignored, each record read once whatever key it came under, the resource readers by
type (``medications``, ``conditions``, ``observations``, ``orders``), then this call's draft orders on top."""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any

from ..caches import SnapshotCache
from ..durations import exact_date
from ..prefetch import bare_id
from ..terminology import Terminology
from .conditions import ConditionReader
from .facts import ObservationFact, PatientSnapshot
from .fields import _ENTRY_ERRORS, _as_list, _str, iter_resources
from .medications import MedicationReader
from .observations import ObservationReader
from .orders import _ORDER_TYPES, OrderReader

_MEDICATION_TYPES = frozenset(
    {"MedicationRequest", "MedicationStatement", "MedicationAdministration", "MedicationOrder"}
)


class _Builder(MedicationReader, ConditionReader, ObservationReader, OrderReader):
    """One reading of one patient's records (the prefetch's, or this call's draft orders)."""

    def _for_other_patient(self, resource: dict[str, Any]) -> bool:
        ref = resource.get("subject") or resource.get("patient")
        reference = ref.get("reference") if isinstance(ref, dict) else None
        if reference == self.own_reference:
            return False
        if not isinstance(reference, str) or "Patient/" not in reference:
            return False  # no subject: the prefetch was for this patient (liberal)
        return reference.rsplit("Patient/", 1)[1].split("/")[0] != self.patient_id

    # Complexity: one entry at a time: dispatch by resource type, each branch containing its own errors.
    def add(self, resource: Any, in_draft: bool = False) -> None:  # noqa: C901
        if not isinstance(resource, dict):
            self.skipped["(not an object)"] += 1
            return
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str):
            self.skipped["(no resourceType)"] += 1
            return
        if rtype == "Patient":
            if bare_id(_str(resource.get("id"))) in (self.patient_id, ""):
                self.patient = resource
            return
        rid = resource.get("id")
        if isinstance(rid, str) and rid:
            key = (rtype, rid)
            if key in self.seen:
                return  # the same record from a second prefetch key (a server that ignored ``code=``): read once
            self.seen.add(key)
        try:
            if self._for_other_patient(resource):
                return
            if rtype in _MEDICATION_TYPES:
                self.add_medication(resource, rtype, in_draft)
            elif rtype == "Condition":
                self.add_condition(resource)
            elif rtype == "Observation":
                self.raw_observations.append(resource)  # read on first use (read_observations)
            elif rtype in _ORDER_TYPES:
                self.add_order(resource, rtype, in_draft)
            elif rtype == "AllergyIntolerance":
                self.add_allergy(resource)
            elif rtype not in ("Medication", "OperationOutcome"):
                self.unsupported[rtype] += 1
        except _ENTRY_ERRORS as exc:
            self._skip(resource, rtype, exc)


def _read_prefetch(
    prefetch: Mapping[str, Any],
    terminology: Terminology,
    patient_id: str,
    today: date,
    horizon: date | None,
    max_entries: int,
) -> _Builder:
    b = _Builder(terminology, patient_id, today, horizon)
    values = [v for v in prefetch.values() if isinstance(v, dict)]
    # Medication resources first, so medicationReference can be resolved whatever the key order.
    for value in values:
        for resource in iter_resources(value, max_entries):
            if isinstance(resource, dict) and resource.get("resourceType") == "Medication" and resource.get("id"):
                b.medications[f"Medication/{resource['id']}"] = resource
    for value in values:
        for resource in iter_resources(value, max_entries):
            b.add(resource)
    b.finish()
    return b


@dataclass(frozen=True)
class SnapshotReader:
    """How a service reads a chart: the value sets its facts are classified by, how far back its rules look (finished
    courses and observations older than ``history_days`` are not read; None: all), the entry cap per Bundle, and the
    per-worker cache of facts (None: read every call)."""

    terminology: Terminology
    history_days: int | None = None
    max_entries: int = 10_000
    cache: SnapshotCache[Any] | None = None

    def read(
        self,
        *,
        context: dict[str, Any],
        prefetch: Mapping[str, Any],
        today: date,
        unavailable: frozenset[str] = frozenset(),
        prefetch_key: bytes | None = None,
    ) -> PatientSnapshot:
        return build_snapshot(
            context=context,
            prefetch=prefetch,
            terminology=self.terminology,
            today=today,
            unavailable=unavailable,
            max_entries=self.max_entries,
            history_days=self.history_days,
            cache=self.cache,
            prefetch_key=prefetch_key,
        )


def build_snapshot(
    *,
    context: dict[str, Any],
    prefetch: Mapping[str, Any],
    terminology: Terminology,
    today: date,
    unavailable: frozenset[str] = frozenset(),
    max_entries: int = 10_000,
    history_days: int | None = None,
    cache: SnapshotCache[Any] | None = None,
    prefetch_key: bytes | None = None,
) -> PatientSnapshot:
    """``history_days``: finished medication courses and observations older than this are not read (None: all).

    The prefetch is read once (or taken from ``cache``), then the draft orders of this call on top of it.
    ``prefetch_key``: bytes of the request that determine the prefetch exactly (``body.HookBody.prefetch_key``).
    """
    patient_id = bare_id(_str(context.get("patientId")))
    horizon = today - timedelta(days=history_days) if history_days is not None else None

    def read() -> _Builder:
        return _read_prefetch(prefetch, terminology, patient_id, today, horizon, max_entries)

    store: Callable[[], None] | None = None
    if cache is not None:
        scope = (patient_id, today, horizon, max_entries, tuple(prefetch))
        base, cached, store = cache.get_or_read(scope, prefetch, read, prefetch_key)
    else:
        base, cached = read(), False
    d = _Builder(terminology, patient_id, today, horizon)
    d.medications = base.medications
    for resource in iter_resources(context.get("draftOrders"), max_entries):
        d.add(resource, in_draft=True)
    patient = base.patient or {}
    # An order the EHR sends as a draft (order-sign may carry revised orders) replaces the version the prefetch holds.
    revised = d.resources.keys() & base.resources.keys()
    courses = tuple(c for c in base.courses if c.ref not in revised) if revised else tuple(base.courses)
    orders = tuple(o for o in base.orders if o.ref not in revised) if revised else tuple(base.orders)

    def observations() -> tuple[ObservationFact, ...]:
        return base.read_observations() + d.read_observations()

    return PatientSnapshot(
        patient_id=patient_id,
        today=today,
        birth_date=exact_date(patient.get("birthDate")),
        sex=patient.get("gender") if isinstance(patient.get("gender"), str) else None,
        conditions=(*base.conditions, *d.conditions),
        courses=(*courses, *d.courses),
        orders=(*orders, *d.orders),
        allergies=(*base.allergies, *d.allergies),
        read_observations=observations,
        unread_drafts=tuple(d.unread_drafts),
        selections=tuple(s for s in _as_list(context.get("selections")) if isinstance(s, str)),
        resources=MappingProxyType(ChainMap(d.resources, base.resources)),
        skip_counts=(base.skipped, d.skipped),
        unavailable=unavailable,
        unsupported=MappingProxyType(dict(base.unsupported + d.unsupported)),
        from_cache=cached,
        after_response=store,
    )
