"""PatientSnapshot: frozen, normalised facts read from the resolved prefetch and the draft orders.

Facts are extracted from plain JSON, one entry at a time (no whole-Bundle model validation: one bad entry
only skips itself, counted by type). Entries for another patient are ignored. Nothing here knows about back
pain: every fact carries the value sets it belongs to, and the clinical rules (``hooks``) interpret them.
Reads R4 shapes, and the DSTU2/STU3 ``MedicationOrder`` (``dateWritten``) that older servers return.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import ChainMap, Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple

from .caches import SnapshotCache
from .durations import MAX_DAYS, FuzzyDate, doses_per_day, duration_days, exact_date, last_day, parse_date
from .prefetch import bare_id
from .terminology import SNOMED, Match, Terminology

log = logging.getLogger("backpain_cds.snapshot")

ROUTE_VALUESET = "medication-routes"

# Dose-form and free-text route words → (route class, label). Order matters: local forms first.
_ROUTE_WORDS: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(p, re.I), cls, label) for p, cls, label in [
        (r"ophthalm|eye drop|\bocular\b|intraocular|intravitreal", "local", "ophthalmic"),
        (r"epidural|caudal|intrathecal|intra-?articular|perineural|paravertebral|intradiscal|intralesional|"
         r"intrabursal|periarticular|intrasynovial|intratendinous|intraspinal", "local", "local injection"),
        (r"topical|cream|ointment|\bgel\b|lotion|\botic\b|\bfoam\b|dental|paste|\benema\b", "local", "topical"),
        (r"inhal|nebuli", "local", "inhaled"),
        (r"nasal", "nasal", "intranasal"),
        (r"transdermal|\bpatch\b", "transdermal", "transdermal"),
        (r"rectal|suppositor", "rectal", "rectal"),
        (r"intravenous|\bi\.?v\.?\b", "iv", "IV"),
        (r"intramuscular|\bi\.?m\.?\b", "im", "IM"),
        (r"subcutaneous|\bs\.?c\.?\b|\bsq\b", "sc", "SC"),
        (r"injection|injectable|syringe|cartridge|\bvial\b|auto-?injector", "parenteral", "injection"),
        (r"\boral\b|tablet|\btabs?\b|capsule|\bcaps?\b|by mouth|\bp\.?o\.?\b|syrup|elixir|chewable|lozenge|sublingual|buccal", "oral", "oral"),
    ]
]
_ROUTE_LABELS = {"oral": "oral", "iv": "IV", "im": "IM", "sc": "SC", "parenteral": "injection", "nasal": "intranasal",
                 "rectal": "rectal", "transdermal": "transdermal", "local": "local"}
_STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*MG(?:\s*/\s*(\d+(?:\.\d+)?)?\s*(ML|ACTUAT))?", re.I)
_COUNT_UNITS = {"tab", "tabs", "tablet", "tablets", "{tbl}", "{tablet}", "{pill}", "pill", "cap", "caps", "capsule",
                "capsules", "{cap}", "{capsule}", "1", "{each}", "each", "ea", "{dose}", "dose"}

# Statuses that mean "not real" for exposure; drafts outside context.draftOrders are not orders yet.
_MED_REQUEST_IGNORED = {"cancelled", "entered-in-error", "draft", "unknown"}
_MED_EVENT_IGNORED = {"entered-in-error", "not-done", "not-taken", "unknown", "intended"}
_ORDER_IGNORED = {"entered-in-error", "revoked", "not-done", "cancelled"}
_MEDICATION_TYPES = frozenset({"MedicationRequest", "MedicationStatement", "MedicationAdministration", "MedicationOrder"})
_ORDER_TYPES = frozenset({"ServiceRequest", "Procedure", "ImagingStudy", "DiagnosticReport"})
# What an odd entry can raise while being read: it is then skipped and counted, never the whole call.
_ENTRY_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, ZeroDivisionError)


# Facts are NamedTuples: immutable like the snapshot itself, and several times cheaper to build than frozen
# dataclasses (a typical prefetch yields hundreds per call).
class ConditionFact(NamedTuple):
    ref: str
    display: str
    valuesets: frozenset[str]
    active: bool
    onset: FuzzyDate | None
    recorded: FuzzyDate | None
    codes: tuple[tuple[str, str], ...] = ()  # (system, code) of its codings, as recorded

    @property
    def start(self) -> FuzzyDate | None:
        return self.onset or self.recorded


class ObservationFact(NamedTuple):
    ref: str
    display: str
    valuesets: frozenset[str]  # of its code
    value: float | None
    unit: str
    effective: FuzzyDate | None
    asserted: frozenset[str] = frozenset()  # value sets of a finding the record says was present (``_asserted``)
    value_date: FuzzyDate | None = None  # valueDateTime / valueDate (an estimated delivery date, …)


class MedicationCourse(NamedTuple):
    ref: str  # "MedicationRequest/123"
    display: str
    ingredients: frozenset[str]
    classes: frozenset[str]  # value-set ids (drug classes)
    matched_by: str  # "code" | "text"
    route: str | None  # oral | iv | im | sc | parenteral | nasal | rectal | transdermal | local | None
    route_label: str
    start: date | None
    end: date | None  # planned last day, inclusive
    end_basis: str  # how the end was computed ("10-day supply", "boundsPeriod.end", …)
    status: str
    in_draft_orders: bool
    is_administration: bool
    single_dose_mg: float | None
    daily_dose_mg: float | None
    reason_valuesets: frozenset[str] = frozenset()
    reason_refs: tuple[str, ...] = ()
    stop_reason: str = ""  # statusReason text of a stopped course ("not effective", …)
    end_known: bool = True  # False: a stopped course whose stop date was not recorded (end = earlier of plan and today)
    request: str = ""  # the order an administration carried out (``MedicationAdministration.request``), "Type/id"

    @property
    def route_text(self) -> str:
        return self.route_label or "route not recorded"

    @property
    def per_day(self) -> float | None:
        """Administrations per day, when the dose could be read."""
        return self.daily_dose_mg / self.single_dose_mg if self.daily_dose_mg and self.single_dose_mg else None


class OrderFact(NamedTuple):
    ref: str
    display: str
    valuesets: frozenset[str]
    status: str
    when: FuzzyDate | None
    in_draft_orders: bool
    codes: tuple[tuple[str, str], ...] = ()
    reason_valuesets: frozenset[str] = frozenset()


class AllergyFact(NamedTuple):
    ref: str
    display: str
    valuesets: frozenset[str]
    ingredients: frozenset[str]


@dataclass(frozen=True)
class PatientSnapshot:
    patient_id: str
    today: date
    birth_date: date | None
    sex: str | None
    conditions: tuple[ConditionFact, ...]
    courses: tuple[MedicationCourse, ...]
    orders: tuple[OrderFact, ...]
    allergies: tuple[AllergyFact, ...]
    selections: tuple[str, ...]
    resources: Mapping[str, dict[str, Any]]  # raw draft orders and every resource a fact came from
    skip_counts: tuple[Mapping[str, int], ...]  # see ``skipped``
    unavailable: frozenset[str]  # optional prefetch keys that could not be obtained
    unsupported: Mapping[str, int] = field(default_factory=dict)  # resource types seen but not read
    read_observations: Callable[[], tuple[ObservationFact, ...]] = tuple  # see ``observations``
    unread_drafts: tuple[str, ...] = ()  # draft orders that name no drug or service at all ("Type/id"), logged
    from_cache: bool = False  # the prefetch's facts came from the SnapshotCache
    after_response: Callable[[], None] | None = None  # stores this reading in the SnapshotCache (run after responding)

    @cached_property
    def draft_courses(self) -> tuple[MedicationCourse, ...]:
        """Courses from this call's draft orders (rules ask for them many times per call)."""
        return tuple(c for c in self.courses if c.in_draft_orders)

    @cached_property
    def draft_refs(self) -> tuple[str, ...]:
        """References of every draft order of this call (medications first, then other orders)."""
        return tuple(c.ref for c in self.draft_courses) + tuple(o.ref for o in self.orders if o.in_draft_orders)

    @property
    def skipped(self) -> dict[str, int]:
        """Invalid entries by resourceType (live: observations are read, and counted, on first use)."""
        total: Counter[str] = Counter()
        for counts in self.skip_counts:
            total.update(counts)
        return dict(total)

    @cached_property
    def observations(self) -> tuple[ObservationFact, ...]:
        """Read on first use: only some rules look at observations (labs; red-flag findings when the back-pain
        episode is dated), and a chart often holds more observations than anything else."""
        return self.read_observations()

    @property
    def age(self) -> int | None:
        if self.birth_date is None:
            return None
        b, t = self.birth_date, self.today
        return t.year - b.year - ((t.month, t.day) < (b.month, b.day))

    @property
    def resource_count(self) -> int:
        return len(self.resources)


class _Strength(NamedTuple):
    """What one unit of a product holds: ``mg`` per tablet/capsule (``per`` ""), or ``mg`` per ``per_amount`` mL
    (``per`` "ML") or per actuation (``per`` "ACTUAT")."""
    mg: float
    per_amount: float | None
    per: str


class _Dose(NamedTuple):
    mg: float | None = None  # per administration, when readable
    per_day: float | None = None
    amount: float | None = None  # as written
    unit: str = ""  # as written, lower-case
    strength: _Strength | None = None  # of the product

    @property
    def count_unit(self) -> str | None:
        """The unit when the dose is counted (tablets, capsules…) rather than weighed."""
        return None if self.unit in ("mg", "g") or not self.unit else self.unit

    def units_per_dose(self, quantity_unit: str) -> float | None:
        """How many of a dispensed quantity's units one dose uses: the dose as written when it counts the same units
        (tablets for tablets; a unit-less quantity counts what the dose counts), or a weighed dose converted with the
        product's strength (10 mg of a 10 mg tablet is one tablet; 15 mg of a 30 mg/mL solution is 0.5 mL)."""
        if self.amount is None:
            return None
        if self.count_unit is not None:
            if quantity_unit in _COUNT_UNITS or quantity_unit in (self.count_unit, ""):
                return self.amount
            return None
        if self.mg is None or self.strength is None or self.strength.mg <= 0:
            return None
        if not self.strength.per and (quantity_unit in _COUNT_UNITS or quantity_unit == ""):
            return self.mg / self.strength.mg
        if self.strength.per == "ML" and quantity_unit == "ml":
            return self.mg / (self.strength.mg / (self.strength.per_amount or 1))
        return None


def _obj(value: Any, key: str) -> dict[str, Any]:
    """value[key] when both are JSON objects, else {} (liberal reading of imperfect FHIR)."""
    item = value.get(key) if isinstance(value, dict) else None
    return item if isinstance(item, dict) else {}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _first(value: Any) -> Any:
    items = _as_list(value)
    return items[0] if items else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


class _Builder:
    def __init__(self, terminology: Terminology, patient_id: str, today: date, horizon: date | None = None) -> None:
        self.t = terminology
        self.patient_id = patient_id
        self.own_reference = f"Patient/{patient_id}"
        self.today = today
        self.horizon = horizon  # finished medication courses and observations before this day are not read
        self.conditions: list[ConditionFact] = []
        self.observations: list[ObservationFact] = []
        self.raw_observations: list[dict[str, Any]] = []
        self.courses: list[MedicationCourse] = []
        self.orders: list[OrderFact] = []
        self.allergies: list[AllergyFact] = []
        self.resources: dict[str, dict[str, Any]] = {}
        self.medications: dict[str, dict[str, Any]] = {}
        self.skipped: Counter[str] = Counter()
        self.unsupported: Counter[str] = Counter()
        self.patient: dict[str, Any] | None = None
        self.unread_drafts: list[str] = []  # draft orders naming no drug or service at all ("Type/id")
        self.seen: set[tuple[str, str]] = set()  # (resourceType, id) already read
        self._observation_lock = threading.Lock()

    # -- patient scoping ------------------------------------------------------------------------
    def _for_other_patient(self, resource: dict[str, Any]) -> bool:
        ref = resource.get("subject") or resource.get("patient")
        reference = ref.get("reference") if isinstance(ref, dict) else None
        if reference == self.own_reference:
            return False
        if not isinstance(reference, str) or "Patient/" not in reference:
            return False  # no subject: the prefetch was for this patient (liberal)
        return reference.rsplit("Patient/", 1)[1].split("/")[0] != self.patient_id

    # -- medications -----------------------------------------------------------------------------
    def _medication_concept(self, resource: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        """The drug's CodeableConcept, and the Medication resource it came from (whose ingredient strength may say
        what one tablet holds)."""
        concept = resource.get("medicationCodeableConcept")
        if concept is not None:
            return concept, None
        ref = resource.get("medicationReference")
        reference = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(reference, str):
            if reference.startswith("#"):
                for contained in _as_list(resource.get("contained")):
                    if isinstance(contained, dict) and contained.get("id") == reference[1:]:
                        return contained.get("code"), contained
            target = self.medications.get(_local_reference(reference))
            if target is not None:
                return target.get("code"), target
        if isinstance(ref, dict) and isinstance(ref.get("display"), str):
            return {"text": ref["display"]}, None
        return None, None

    def _route(self, dosage: Any, match: Match, display: str) -> tuple[str | None, str]:
        route = dosage.get("route") if isinstance(dosage, dict) else None
        if isinstance(route, dict):
            for coding in _as_list(route.get("coding")):
                if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                    for concept in self.t.concepts_for(_str(coding.get("system")) or SNOMED, coding["code"]):
                        if concept.valueset == ROUTE_VALUESET and concept.route_class:
                            return concept.route_class, _ROUTE_LABELS.get(concept.route_class, concept.display)
            words = " ".join(_str(c.get("display")) for c in _as_list(route.get("coding")) if isinstance(c, dict))
            words = f"{_str(route.get('text'))} {words}".strip()
            for pattern, cls, label in _ROUTE_WORDS:
                if words and pattern.search(words):
                    return cls, label if cls == "local" else _ROUTE_LABELS[cls]
        if match.route_class:
            return match.route_class, _ROUTE_LABELS.get(match.route_class, match.route_class)
        for pattern, cls, label in _ROUTE_WORDS:
            if display and pattern.search(display):
                return cls, label if cls == "local" else _ROUTE_LABELS[cls]
        return None, ""

    def _strength(self, concept: Any, medication: dict[str, Any] | None) -> _Strength | None:
        """What one unit of the product holds: the Medication's single ingredient strength, else the one strength in
        the product's name (RxNorm's name for its code first, then the record's own words). None for combination
        products (two strengths) and names without a strength."""
        if medication is not None:
            ingredients = [i for i in _as_list(medication.get("ingredient")) if isinstance(i, dict)]
            if len(ingredients) == 1 and (strength := _ratio_strength(ingredients[0].get("strength"))):
                return strength
        names: list[str] = []
        if isinstance(concept, dict):
            for coding in _as_list(concept.get("coding")):
                if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                    names += [c.display for c in self.t.concepts_for(_str(coding.get("system")), coding["code"])]
            names += [_str(c.get("display")) for c in _as_list(concept.get("coding")) if isinstance(c, dict)]
            names.append(_str(concept.get("text")))
        for name in names:
            if name and (strength := _name_strength(name)) is not None:
                return strength
        return None

    @staticmethod
    def _dose(dosage: Any, strength: _Strength | None) -> _Dose:
        """The dose as written (amount, unit), in mg when readable, and administrations per day."""
        if not isinstance(dosage, dict):
            return _Dose()
        per_day = doses_per_day(dosage.get("timing"))
        dose = None
        for dr in _as_list(dosage.get("doseAndRate")):
            if isinstance(dr, dict) and isinstance(dr.get("doseQuantity"), dict):
                dose = dr["doseQuantity"]
                break
        dose = dose or _obj(dosage, "doseQuantity") or _obj(dosage, "dose")  # DSTU2/STU3; MedicationAdministration
        value = dose.get("value")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            return _Dose(per_day=per_day)
        amount = float(value)
        unit = _str(dose.get("code") or dose.get("unit")).strip().lower()
        mg = None
        if unit in ("mg", "g"):
            mg = amount * (1000 if unit == "g" else 1)
        elif strength is not None:
            if unit in _COUNT_UNITS and not strength.per:
                mg = amount * strength.mg
            elif unit == "ml" and strength.per == "ML":
                mg = amount * strength.mg / (strength.per_amount or 1)
        return _Dose(mg, per_day, amount, unit, strength)

    def add_medication(self, resource: dict[str, Any], rtype: str, in_draft: bool) -> None:
        status = _str(resource.get("status"))
        ignored = _MED_REQUEST_IGNORED if rtype in ("MedicationRequest", "MedicationOrder") else _MED_EVENT_IGNORED
        if not in_draft and status in ignored:
            return
        if self.horizon is not None and not in_draft and status not in ("active", "on-hold", "in-progress"):
            written = exact_date(resource.get("authoredOn") or resource.get("effectiveDateTime") or resource.get("dateWritten")
                                 or (resource.get("effectivePeriod") or {}).get("end"))
            if written is not None and written < self.horizon:
                return  # finished long before any rule looks back
        concept, medication = self._medication_concept(resource)
        match = self.t.match(concept)
        ref = f"{rtype}/{resource.get('id')}"
        if not match:
            if in_draft and not match.display and not _codes_of(concept):
                self.unread_drafts.append(ref)  # no drug named at all: nothing to check, but never silently
                log.info("draft order unreadable: no medication code or text", extra={"resource": ref})
            return  # unrecognised drug: no fact, so no rule can fire on it
        display = match.display
        administration = rtype == "MedicationAdministration"
        dosage = resource.get("dosage") if administration else _first(resource.get("dosageInstruction") or resource.get("dosage"))
        route, route_label = self._route(dosage, match, display)
        dose = self._dose(dosage, self._strength(concept, medication))
        single, per_day = dose.mg, dose.per_day
        start, end, basis = self._course_dates(resource, rtype, dosage, dose, in_draft)
        end_known = True
        if status == "stopped" and not in_draft and start is not None:
            end, basis, end_known = self._stopped_end(resource, rtype, start, end, basis)
            if end is None or end < start:
                return  # stopped before it started: nothing was given
        daily = single * per_day if single is not None and per_day else (single if administration else None)
        reasons = self._reasons(resource)
        reason_refs = _refs(resource.get("reasonReference"))
        self.resources[ref] = resource
        self.courses.append(MedicationCourse(
            ref=ref, display=display, ingredients=match.ingredients, classes=match.valuesets, matched_by=match.by,
            route=route, route_label=route_label, start=start, end=end, end_basis=basis, status=status or "unknown",
            in_draft_orders=in_draft, is_administration=administration, single_dose_mg=single, daily_dose_mg=daily,
            reason_valuesets=reasons, reason_refs=reason_refs, stop_reason=_concept_text(resource.get("statusReason")),
            end_known=end_known, request=_local_reference(_str(_obj(resource, "request").get("reference")))
            if administration else ""))

    def _stopped_end(self, resource: dict[str, Any], rtype: str, start: date, planned: date | None,
                     basis: str) -> tuple[date | None, str, bool]:
        """The last day of a stopped course (FHIR ``stopped``: doses were given, then it was stopped): its recorded stop
        date — a stop-date extension (R5 ``statusChanged`` backport, or one named for the stop) or, on an order, the end of
        its validity period — capped by its planned end; a course with a recorded period keeps it. With no stop date:
        the earlier of its planned end and today, and the course says the stop date was not recorded (``finish`` then
        takes the last administration of the order, when one was sent, as its end)."""
        if basis == "recorded period":
            return planned, basis, True
        stop = _stop_extension_date(resource)
        if stop is None and rtype in ("MedicationRequest", "MedicationOrder"):
            stop = exact_date(_obj(_obj(resource, "dispenseRequest"), "validityPeriod").get("end"))
        if stop is not None:
            if planned is not None and planned < stop:
                return planned, basis, True
            return stop, f"stopped {stop.isoformat()}", True
        if planned is not None and planned <= self.today:
            return planned, f"{basis}; stopped, stop date not recorded", False
        return max(start, self.today) if start <= self.today else None, "stopped, stop date not recorded: counted to today", False

    def finish(self) -> None:
        """Once every resource is read: a stopped order with no recorded stop date ends on its last administration,
        when the administrations that carried it out were sent (``MedicationAdministration.request``)."""
        last: dict[str, date] = {}
        for c in self.courses:
            if c.is_administration and c.request and c.start is not None:
                last[c.request] = max(last.get(c.request, c.start), c.start)
        if not last:
            return
        for i, c in enumerate(self.courses):
            given = last.get(c.ref)
            if not c.end_known and given is not None and c.start is not None and given >= c.start:
                self.courses[i] = c._replace(end=given, end_basis=f"stopped; last administration {given.isoformat()}",
                                             end_known=True)

    def _reasons(self, resource: dict[str, Any]) -> frozenset[str]:
        codes = resource.get("reasonCode")
        if not codes:
            return frozenset()
        reasons: set[str] = set()
        for rc in _as_list(codes):
            reasons |= self.t.match(rc, text_fallback=False).valuesets
        return frozenset(reasons)

    def _course_dates(self, resource: dict[str, Any], rtype: str, dosage: Any, dose: _Dose,
                      in_draft: bool) -> tuple[date | None, date | None, str]:
        if rtype in ("MedicationAdministration", "MedicationStatement"):
            period = resource.get("effectivePeriod")
            if isinstance(period, dict):
                start, end = exact_date(period.get("start")), exact_date(period.get("end"))
                if end is not None:
                    return start, end, "recorded period"
                return self._planned_end(start, resource, dosage, dose) if start is not None else (None, None, "")
            when = exact_date(resource.get("effectiveDateTime") or resource.get("dateAsserted"))
            if rtype == "MedicationAdministration":
                return when, when, "administration"
            return self._planned_end(when, resource, dosage, dose) if when is not None else (None, None, "")
        repeat = _obj(_obj(dosage, "timing"), "repeat")
        start = (exact_date(_obj(repeat, "boundsPeriod").get("start")) or exact_date(resource.get("authoredOn"))
                 or exact_date(resource.get("dateWritten"))
                 or exact_date(_obj(_obj(resource, "dispenseRequest"), "validityPeriod").get("start")))
        if start is None and in_draft:
            start = self.today  # a draft being ordered now starts today
        if start is None:
            return None, None, ""
        return self._planned_end(start, resource, dosage, dose)

    @staticmethod
    def _planned_end(start: date, resource: dict[str, Any], dosage: Any, dose: _Dose) -> tuple[date, date | None, str]:
        repeat = _obj(_obj(dosage, "timing"), "repeat")
        end = exact_date(_obj(repeat, "boundsPeriod").get("end"))
        if end is not None:
            return start, end, "boundsPeriod.end"
        days = duration_days(repeat.get("boundsDuration"))
        if days:
            return start, last_day(start, days), f"{_fmt_days(days)} duration"
        dispense = _obj(resource, "dispenseRequest")
        days = duration_days(dispense.get("expectedSupplyDuration"))
        if days:
            return start, last_day(start, days), f"{_fmt_days(days)} supply"
        quantity = _obj(dispense, "quantity")
        amount = quantity.get("value")
        if dose.per_day and isinstance(amount, (int, float)) and not isinstance(amount, bool) and amount > 0:
            per_dose = dose.units_per_dose(_str(quantity.get("code") or quantity.get("unit")).strip().lower())
            if per_dose:
                days = amount / (per_dose * dose.per_day)
                if days <= MAX_DAYS:
                    return start, last_day(start, days), (f"{_fmt_days(days)} supply ({amount:g} ÷ {per_dose:g} per dose × "
                                                          f"{dose.per_day:g} doses a day)")
        count = repeat.get("count")
        if isinstance(count, int) and count > 0 and dose.per_day:
            return start, last_day(start, count / dose.per_day), f"{count} doses"
        end = exact_date(_obj(dispense, "validityPeriod").get("end"))
        if end is not None:
            return start, end, "validityPeriod.end"
        return start, None, ""

    # -- everything else ------------------------------------------------------------------------
    def add_condition(self, resource: dict[str, Any]) -> None:
        if not isinstance(resource.get("code"), dict):
            raise ValueError("Condition without code")
        clinical = _codes_of(resource.get("clinicalStatus"))
        verified = _codes_of(resource.get("verificationStatus"))
        # R4 coded statuses, or the STU3/DSTU2 plain strings.
        if isinstance(resource.get("clinicalStatus"), str):
            clinical = {resource["clinicalStatus"]}
        if isinstance(resource.get("verificationStatus"), str):
            verified = {resource["verificationStatus"]}
        if verified & {"refuted", "entered-in-error"}:
            return
        active = bool(clinical & {"active", "recurrence", "relapse"}) or (not clinical and "abatementDateTime" not in resource)
        match = self.t.match(resource["code"], text_fallback=False)
        if not match:
            return  # in no value set: no rule can read it
        ref = f"Condition/{resource.get('id')}"
        self.resources[ref] = resource
        self.conditions.append(ConditionFact(
            ref=ref, display=match.display or "condition", valuesets=match.valuesets, active=active,
            onset=parse_date(resource.get("onsetDateTime") or (resource.get("onsetPeriod") or {}).get("start")),
            recorded=parse_date(resource.get("recordedDate") or resource.get("dateRecorded") or resource.get("assertedDate")),
            codes=_codings(resource["code"])))

    def add_observation(self, resource: dict[str, Any]) -> None:
        if _str(resource.get("status")) in {"entered-in-error", "cancelled"}:
            return
        if self.horizon is not None:
            when = exact_date(resource.get("effectiveDateTime"))
            if when is not None and when < self.horizon:
                return
        match = self.t.match(resource.get("code"), text_fallback=False)
        answer = self.t.match(resource.get("valueCodeableConcept"), text_fallback=False)
        if not (match or answer):
            return
        vq = resource.get("valueQuantity")
        value = vq.get("value") if isinstance(vq, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            value = None
        effective = parse_date(resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}).get("start")
                               or resource.get("issued"))
        ref = f"Observation/{resource.get('id')}"
        self.resources[ref] = resource
        self.observations.append(ObservationFact(ref, answer.display if answer else match.display, match.valuesets, value,
                                                 _str(vq.get("code") or vq.get("unit")) if isinstance(vq, dict) else "",
                                                 effective, _asserted(resource, match, answer),
                                                 parse_date(resource.get("valueDateTime"))))

    def read_observations(self) -> tuple[ObservationFact, ...]:
        """Observation facts, read once on first use."""
        with self._observation_lock:
            for resource in self.raw_observations:
                try:
                    self.add_observation(resource)
                except _ENTRY_ERRORS as exc:
                    self._skip(resource, "Observation", exc)
            self.raw_observations = []
            return tuple(self.observations)

    def add_order(self, resource: dict[str, Any], rtype: str, in_draft: bool) -> None:
        status = _str(resource.get("status"))
        if status in _ORDER_IGNORED:
            return
        concepts = resource.get("procedureCode") if rtype == "ImagingStudy" else [resource.get("code")]
        valuesets: set[str] = set()
        display = ""
        codes: list[tuple[str, str]] = []
        for concept in _as_list(concepts):
            match = self.t.match(concept, text_fallback=False)
            valuesets |= match.valuesets
            display = display or match.display
            if isinstance(concept, dict):
                codes.extend((_str(c.get("system")), _str(c.get("code"))) for c in _as_list(concept.get("coding")) if isinstance(c, dict))
        when = (parse_date(resource.get("authoredOn")) or parse_date(resource.get("occurrenceDateTime"))
                or parse_date(_obj(resource, "occurrencePeriod").get("start"))
                or parse_date(resource.get("performedDateTime")) or parse_date(_obj(resource, "performedPeriod").get("start"))
                or parse_date(resource.get("started")) or parse_date(resource.get("effectiveDateTime"))
                or parse_date(_obj(resource, "effectivePeriod").get("start")) or parse_date(resource.get("issued")))
        if when is None and in_draft:
            when = FuzzyDate(self.today, self.today)
        ref = f"{rtype}/{resource.get('id')}"
        if in_draft and not codes and not display:
            self.unread_drafts.append(ref)
            log.info("draft order unreadable: no code or text", extra={"resource": ref})
        self.resources[ref] = resource
        if valuesets or in_draft:
            self.orders.append(OrderFact(ref, display or rtype, frozenset(valuesets), status or "unknown", when, in_draft,
                                        tuple(codes), self._reasons(resource)))

    def add_allergy(self, resource: dict[str, Any]) -> None:
        if _codes_of(resource.get("verificationStatus")) & {"refuted", "entered-in-error"}:
            return
        if _codes_of(resource.get("clinicalStatus")) & {"inactive", "resolved"}:
            return
        match = self.t.match(resource.get("code"))
        if match:
            ref = f"AllergyIntolerance/{resource.get('id')}"
            self.resources[ref] = resource
            self.allergies.append(AllergyFact(ref, match.display, match.valuesets, match.ingredients))

    def add(self, resource: Any, in_draft: bool = False) -> None:
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

    def _skip(self, resource: dict[str, Any], rtype: str, exc: Exception) -> None:
        """An entry that breaks its reader is skipped and counted by type (never the whole call)."""
        self.skipped[rtype] += 1
        log.info("skipped invalid entry", extra={"resource": f"{rtype}/{_str(resource.get('id'))}", "error": type(exc).__name__})


@lru_cache(maxsize=4096)
def _name_strength(name: str) -> _Strength | None:
    """The one strength in a product name: ``10 MG Oral Tablet`` → 10 mg per unit, ``30 MG/ML`` → 30 mg per mL; None
    when the name has no strength or more than one (a combination product: which ingredient a mg dose means is unknown).

    Product names repeat across orders and calls, so the answer is memoised (names only, no patient data)."""
    found = _STRENGTH.findall(name)
    if len(found) != 1:
        return None
    mg, per_amount, per = found[0]
    return _Strength(float(mg), float(per_amount) if per_amount else None, per.upper())


_COUNT_DENOMINATORS = _COUNT_UNITS | {"tablet", "{tablet}", "capsule", "{capsule}", "tab", "{tab}"}


def _ratio_strength(ratio: Any) -> _Strength | None:
    """A Medication ingredient's ``strength`` Ratio: mg (or g) per one countable unit, or per so many mL."""
    numerator, denominator = _obj(ratio, "numerator"), _obj(ratio, "denominator")
    value, per = numerator.get("value"), denominator.get("value", 1)
    if not isinstance(value, (int, float)) or not isinstance(per, (int, float)) or isinstance(value, bool) or value <= 0 \
            or per <= 0:
        return None
    unit = _str(numerator.get("code") or numerator.get("unit")).strip().lower()
    mg = value * 1000 if unit == "g" else value if unit == "mg" else None
    if mg is None:
        return None
    per_unit = _str(denominator.get("code") or denominator.get("unit")).strip().lower()
    if per_unit == "ml":
        return _Strength(float(mg), float(per), "ML")
    if per_unit in _COUNT_DENOMINATORS or not per_unit:
        return _Strength(float(mg) / per, None, "")
    return None


_STOP_EXTENSION = re.compile(r"statuschanged|stop|discontinu", re.I)


def _stop_extension_date(resource: dict[str, Any]) -> date | None:
    """A stop date carried as an extension, on the resource or its ``statusReason``: the R5 ``statusChanged`` backport
    (``http://hl7.org/fhir/5.0/StructureDefinition/extension-MedicationRequest.statusChanged``) or an EHR extension whose
    URL names the stop or discontinuation, with a date value."""
    for holder in (resource, _obj(resource, "statusReason")):
        for ext in _as_list(holder.get("extension")):
            if isinstance(ext, dict) and _STOP_EXTENSION.search(_str(ext.get("url"))):
                when = exact_date(ext.get("valueDateTime") or ext.get("valueDate") or ext.get("valueInstant")
                                  or _obj(ext, "valuePeriod").get("end"))
                if when is not None:
                    return when
    return None


# Observation statuses whose finding counts (registered: no result yet); HL7 v3 ObservationInterpretation codes that
# deny a finding (normal, negative, not detected).
_FINDING_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
_DENYING_INTERPRETATIONS = frozenset({"N", "NEG", "ND"})


def _asserted(resource: dict[str, Any], code: Match, answer: Match) -> frozenset[str]:
    """Value sets of the finding an Observation says was present: its answer when that is a coded finding
    ("Neurological finding: numbness of saddle area"), else its code when it has no value at all or ``valueBoolean``
    true. Any other value ("no", "absent", a coded yes/no, 0, false), ``dataAbsentReason``, a denying interpretation or
    a status without a result leaves presence unread: empty, so no rule counts the finding."""
    if _str(resource.get("status")) not in _FINDING_STATUSES or "dataAbsentReason" in resource:
        return frozenset()
    for concept in _as_list(resource.get("interpretation")):
        if _codes_of(concept) & _DENYING_INTERPRETATIONS:
            return frozenset()
    if answer:
        return answer.valuesets
    values = [k for k in resource if k.startswith("value")]
    if not values or (values == ["valueBoolean"] and resource["valueBoolean"] is True):
        return code.valuesets
    return frozenset()


def _refs(value: Any) -> tuple[str, ...]:
    """The reference strings of a Reference or list of References."""
    if not value:
        return ()
    return tuple(_str(r.get("reference")) for r in _as_list(value) if isinstance(r, dict))


def _concept_text(concept: Any) -> str:
    if not concept:
        return ""
    concept = _first(concept)
    if not isinstance(concept, dict):
        return ""
    texts = [_str(concept.get("text"))] + [_str(c.get("display")) for c in _as_list(concept.get("coding")) if isinstance(c, dict)]
    return next((t for t in texts if t), "")


def _local_reference(reference: str) -> str:
    """``http://x/fhir/Medication/7/_history/2`` → ``Medication/7``."""
    parts = reference.split("/_history")[0].rstrip("/").split("/")
    return "/".join(parts[-2:])


def _codings(concept: Any) -> tuple[tuple[str, str], ...]:
    """(system, code) of a CodeableConcept's codings, as recorded."""
    if not isinstance(concept, dict):
        return ()
    return tuple((_str(c.get("system")), c["code"]) for c in _as_list(concept.get("coding"))
                 if isinstance(c, dict) and isinstance(c.get("code"), str))


def _codes_of(concept: Any) -> set[str]:
    if not isinstance(concept, dict):
        return set()
    return {code for c in _as_list(concept.get("coding")) if isinstance(c, dict) and isinstance(code := c.get("code"), str)}


def _fmt_days(days: float) -> str:
    return f"{days:g}-day"


def iter_resources(value: Any, limit: int) -> Iterator[Any]:
    """Resources of a prefetch value (a resource or a Bundle), at most ``limit`` entries."""
    if not isinstance(value, dict):
        return
    if value.get("resourceType") == "Bundle":
        for i, entry in enumerate(_as_list(value.get("entry"))):
            if i >= limit:
                log.warning("bundle entry cap reached", extra={"cap": limit})
                return
            yield entry.get("resource") if isinstance(entry, dict) else None
    else:
        yield value


def _read_prefetch(prefetch: Mapping[str, Any], terminology: Terminology, patient_id: str, today: date,
                   horizon: date | None, max_entries: int) -> _Builder:
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

    def read(self, *, context: dict[str, Any], prefetch: Mapping[str, Any], today: date,
             unavailable: frozenset[str] = frozenset(), prefetch_key: bytes | None = None) -> PatientSnapshot:
        return build_snapshot(context=context, prefetch=prefetch, terminology=self.terminology, today=today,
                              unavailable=unavailable, max_entries=self.max_entries, history_days=self.history_days,
                              cache=self.cache, prefetch_key=prefetch_key)


def build_snapshot(*, context: dict[str, Any], prefetch: Mapping[str, Any], terminology: Terminology, today: date,
                   unavailable: frozenset[str] = frozenset(), max_entries: int = 10_000,
                   history_days: int | None = None, cache: SnapshotCache[Any] | None = None,
                   prefetch_key: bytes | None = None) -> PatientSnapshot:
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
        patient_id=patient_id, today=today, birth_date=exact_date(patient.get("birthDate")),
        sex=patient.get("gender") if isinstance(patient.get("gender"), str) else None,
        conditions=(*base.conditions, *d.conditions), courses=(*courses, *d.courses),
        orders=(*orders, *d.orders), allergies=(*base.allergies, *d.allergies), read_observations=observations,
        unread_drafts=tuple(d.unread_drafts),
        selections=tuple(s for s in _as_list(context.get("selections")) if isinstance(s, str)),
        resources=MappingProxyType(ChainMap(d.resources, base.resources)), skip_counts=(base.skipped, d.skipped),
        unavailable=unavailable, unsupported=MappingProxyType(dict(base.unsupported + d.unsupported)), from_cache=cached,
        after_response=store)
