"""Medication courses from MedicationRequest (and DSTU2 MedicationOrder), MedicationStatement and
MedicationAdministration: the drug (coded, or by name), the route, the dose (in mg when readable, from the product's
strength), the start and the planned last day (bounds, duration, supply, quantity ÷ doses per day, validity), and the
end of a stopped course."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from mypy_extensions import trait

from ..durations import MAX_DAYS, doses_per_day, duration_days, exact_date, last_day
from ..terminology import SNOMED, Match
from .base import ReaderBase
from .doses import (
    COUNT_UNITS,
    ROUTE_LABELS,
    ROUTE_WORDS,
    WEIGHED,
    Dose,
    Strength,
    name_strength,
    ratio_strength,
    units_per_day,
)
from .facts import MedicationCourse
from .fields import _as_list, _codes_of, _concept_text, _first, _local_reference, _obj, _refs, _str, log

ROUTE_VALUESET = "medication-routes"

# Statuses that mean "not real" for exposure; drafts outside context.draftOrders are not orders yet.
_MED_REQUEST_IGNORED = {"cancelled", "entered-in-error", "draft", "unknown"}
_MED_EVENT_IGNORED = {"entered-in-error", "not-done", "not-taken", "unknown", "intended"}


@trait  # mypyc: one of the readers _Builder combines (a compiled class has one base class otherwise)
class MedicationReader(ReaderBase):
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

    # Complexity: the route's precedence read top to bottom: coded route, route words, product, display.
    def _route(self, dosage: Any, match: Match, display: str) -> tuple[str | None, str]:  # noqa: C901
        route = dosage.get("route") if isinstance(dosage, dict) else None
        if isinstance(route, dict):
            for coding in _as_list(route.get("coding")):
                if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                    for concept in self.t.concepts_for(_str(coding.get("system")) or SNOMED, coding["code"]):
                        if concept.valueset == ROUTE_VALUESET and concept.route_class:
                            return concept.route_class, ROUTE_LABELS.get(concept.route_class, concept.display)
            words = " ".join(_str(c.get("display")) for c in _as_list(route.get("coding")) if isinstance(c, dict))
            words = f"{_str(route.get('text'))} {words}".strip()
            for pattern, cls, label in ROUTE_WORDS:
                if words and pattern.search(words):
                    return cls, label if cls == "local" else ROUTE_LABELS[cls]
        if match.route_class:
            return match.route_class, ROUTE_LABELS.get(match.route_class, match.route_class)
        for pattern, cls, label in ROUTE_WORDS:
            if display and pattern.search(display):
                return cls, label if cls == "local" else ROUTE_LABELS[cls]
        return None, ""

    def _strength(self, concept: Any, medication: dict[str, Any] | None) -> Strength | None:
        """What one unit of the product holds: the Medication's single ingredient strength, else the one strength in
        the product's name (RxNorm's name for its code first, then the record's own words). None for combination
        products (two strengths) and names without a strength."""
        if medication is not None:
            ingredients = [i for i in _as_list(medication.get("ingredient")) if isinstance(i, dict)]
            if len(ingredients) == 1 and (strength := ratio_strength(ingredients[0].get("strength"))):
                return strength
        names: list[str] = []
        if isinstance(concept, dict):
            for coding in _as_list(concept.get("coding")):
                if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                    names += [c.display for c in self.t.concepts_for(_str(coding.get("system")), coding["code"])]
            names += [_str(c.get("display")) for c in _as_list(concept.get("coding")) if isinstance(c, dict)]
            names.append(_str(concept.get("text")))
        for name in names:
            if name and (strength := name_strength(name)) is not None:
                return strength
        return None

    @staticmethod
    def _dose(dosage: Any, strength: Strength | None) -> Dose:
        """The dose as written (amount, unit), in mg when readable, and administrations per day."""
        if not isinstance(dosage, dict):
            return Dose()
        per_day = doses_per_day(dosage.get("timing"))
        dose = None
        for dr in _as_list(dosage.get("doseAndRate")):
            if isinstance(dr, dict) and isinstance(dr.get("doseQuantity"), dict):
                dose = dr["doseQuantity"]
                break
        dose = dose or _obj(dosage, "doseQuantity") or _obj(dosage, "dose")  # DSTU2/STU3; MedicationAdministration
        value = dose.get("value")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            return Dose(per_day=per_day)
        amount = float(value)
        unit = _str(dose.get("code") or dose.get("unit")).strip().lower()
        mg = None
        if unit in WEIGHED:
            mg = amount * WEIGHED[unit]
        elif strength is not None:
            if unit in COUNT_UNITS and not strength.per:
                mg = amount * strength.mg
            elif unit == "ml" and strength.per == "ML":
                mg = amount * strength.mg / (strength.per_amount or 1)
        return Dose(mg, per_day, amount, unit, strength)

    def add_medication(self, resource: dict[str, Any], rtype: str, in_draft: bool) -> None:
        status = _str(resource.get("status"))
        ignored = _MED_REQUEST_IGNORED if rtype in ("MedicationRequest", "MedicationOrder") else _MED_EVENT_IGNORED
        if not in_draft and status in ignored:
            return
        if self.horizon is not None and not in_draft and status not in ("active", "on-hold", "in-progress"):
            written = exact_date(
                resource.get("authoredOn")
                or resource.get("effectiveDateTime")
                or resource.get("dateWritten")
                or (resource.get("effectivePeriod") or {}).get("end")
            )
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
        dosage = (
            resource.get("dosage")
            if administration
            else _first(resource.get("dosageInstruction") or resource.get("dosage"))
        )
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
        self.courses.append(
            MedicationCourse(
                ref=ref,
                display=display,
                ingredients=match.ingredients,
                classes=match.valuesets,
                matched_by=match.by,
                route=route,
                route_label=route_label,
                start=start,
                end=end,
                end_basis=basis,
                status=status or "unknown",
                in_draft_orders=in_draft,
                is_administration=administration,
                single_dose_mg=single,
                daily_dose_mg=daily,
                reason_valuesets=reasons,
                reason_refs=reason_refs,
                stop_reason=_concept_text(resource.get("statusReason")),
                end_known=end_known,
                request=_local_reference(_str(_obj(resource, "request").get("reference"))) if administration else "",
                units_per_day=units_per_day(resource, dose) if in_draft else None,  # what a shortened draft dispenses
                unit_mg=dose.strength.mg if dose.strength and not dose.strength.per else None,
            )
        )

    def _stopped_end(
        self, resource: dict[str, Any], rtype: str, start: date, planned: date | None, basis: str
    ) -> tuple[date | None, str, bool]:
        """The last day of a stopped course (FHIR ``stopped``: doses were given, then it was stopped): its recorded stop
        date — a stop-date extension (R5 ``statusChanged`` backport, or one named for the stop) or, on an order, the
        end of its validity period — capped by its planned end; a course with a recorded period keeps it. With no
        stop date: the earlier of its planned end and today, and the course says the stop date was not recorded
        (``finish`` then takes the last administration of the order, when one was sent, as its end)."""
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
        return (
            max(start, self.today) if start <= self.today else None,
            "stopped, stop date not recorded: counted to today",
            False,
        )

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
                self.courses[i] = c._replace(
                    end=given, end_basis=f"stopped; last administration {given.isoformat()}", end_known=True
                )

    def _course_dates(
        self, resource: dict[str, Any], rtype: str, dosage: Any, dose: Dose, in_draft: bool
    ) -> tuple[date | None, date | None, str]:
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
        start = (
            exact_date(_obj(repeat, "boundsPeriod").get("start"))
            or exact_date(resource.get("authoredOn"))
            or exact_date(resource.get("dateWritten"))
            or exact_date(_obj(_obj(resource, "dispenseRequest"), "validityPeriod").get("start"))
        )
        if start is None and in_draft:
            start = self.today  # a draft being ordered now starts today
        if start is None:
            return None, None, ""
        return self._planned_end(start, resource, dosage, dose)

    @staticmethod
    def _planned_end(start: date, resource: dict[str, Any], dosage: Any, dose: Dose) -> tuple[date, date | None, str]:
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
                    return (
                        start,
                        last_day(start, days),
                        (
                            f"{_fmt_days(days)} supply ({amount:g} ÷ {per_dose:g} per dose × "
                            f"{dose.per_day:g} doses a day)"
                        ),
                    )
        count = repeat.get("count")
        if isinstance(count, int) and count > 0 and dose.per_day:
            return start, last_day(start, count / dose.per_day), f"{count} doses"
        end = exact_date(_obj(dispense, "validityPeriod").get("end"))
        if end is not None:
            return start, end, "validityPeriod.end"
        return start, None, ""


_STOP_EXTENSION = re.compile(r"statuschanged|stop|discontinu", re.I)


def _stop_extension_date(resource: dict[str, Any]) -> date | None:
    """A stop date carried as an extension, on the resource or its ``statusReason``: the R5 ``statusChanged`` backport
    (``http://hl7.org/fhir/5.0/StructureDefinition/extension-MedicationRequest.statusChanged``) or an EHR extension
    whose URL names the stop or discontinuation, with a date value."""
    for holder in (resource, _obj(resource, "statusReason")):
        for ext in _as_list(holder.get("extension")):
            if isinstance(ext, dict) and _STOP_EXTENSION.search(_str(ext.get("url"))):
                when = exact_date(
                    ext.get("valueDateTime")
                    or ext.get("valueDate")
                    or ext.get("valueInstant")
                    or _obj(ext, "valuePeriod").get("end")
                )
                if when is not None:
                    return when
    return None


def _fmt_days(days: float) -> str:
    return f"{days:g}-day"
