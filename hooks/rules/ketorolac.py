"""Ketorolac: combined duration, oral start, dose caps, contraindications (FDA ketorolac tromethamine label)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from cds_service.durations import span_days
from cds_service.snapshot import MedicationCourse, PatientSnapshot

from .. import suggestions as sx
from ..clinical import (
    PARENTERAL_ROUTES,
    current_courses,
    fmt_date,
    focused_drafts,
    is_current,
    latest_weight_kg,
)
from ..findings import Finding, RuleContext, Suggestion, rule

LOCAL = "local"


def is_systemic_ketorolac(c: MedicationCourse) -> bool:
    """Ketorolac by any systemic route; ophthalmic/local use is excluded. Unknown route counts (see detail)."""
    return "ketorolac" in c.classes and c.route != LOCAL


@dataclass(frozen=True)
class Exposure:
    """One collapsed ketorolac exposure interval (overlapping or adjacent courses merged)."""

    first: date
    last: date | None  # None: open-ended (a course in it has no planned end)
    courses: tuple[MedicationCourse, ...]

    @property
    def days(self) -> int | None:
        return span_days(self.first, self.last) if self.last else None

    @property
    def routes(self) -> str:
        return ", ".join(sorted({c.route_text for c in self.courses}))


def exposures(s: PatientSnapshot, lookback_days: float, include_drafts: frozenset[str]) -> list[Exposure]:
    """Ketorolac courses of the last ``lookback_days`` (plus the given drafts) collapsed into intervals."""
    cutoff = s.today - timedelta(days=lookback_days)
    courses = []
    for c in s.courses:
        if not is_systemic_ketorolac(c) or c.start is None or c.status == "stopped":
            continue
        if c.in_draft_orders:
            if c.ref in include_drafts:
                courses.append(c)
        elif (c.end or c.start) >= cutoff:
            courses.append(c)
    courses.sort(key=lambda c: c.start)  # type: ignore[arg-type, return-value]
    merged: list[Exposure] = []
    for c in courses:
        assert c.start is not None
        if c.end is not None:
            end: date | None = c.end
        elif c.in_draft_orders:
            end = None  # open-ended draft
        else:  # a recorded course with no end: it ran at least to today while it is still active
            end = max(c.start, s.today) if is_current(c, s.today) else c.start
        if merged and (merged[-1].last is None or c.start <= merged[-1].last + timedelta(days=1)):
            prev = merged[-1]
            last = None if prev.last is None or end is None else max(prev.last, end)
            merged[-1] = Exposure(prev.first, last, prev.courses + (c,))
        else:
            merged.append(Exposure(c.start, end, (c,)))
    return merged


def nsaid_contraindications(s: PatientSnapshot, ctx: RuleContext) -> list[str]:
    """Reasons an NSAID (naproxen) must not be suggested instead."""
    reasons = [c.display for c in s.conditions
               if c.valuesets & {"gi-bleed-ulcer", "renal-severe", "bleeding-disorder"} and (c.active or "gi-bleed-ulcer" in c.valuesets)]
    reasons += [a.display for a in s.allergies if a.valuesets & {"nsaids", "ketorolac"}]
    egfr = ctx.egfr
    if egfr is not None and egfr.value is not None and egfr.value < ctx.thresholds.ketorolac_contraindicated_egfr:
        reasons.append(f"eGFR {egfr.value:g}")
    reasons += [c.display for c in s.courses if "anticoagulants" in c.classes and is_current(c, s.today)]
    return reasons


def alternative_analgesic(ctx: RuleContext, drafts: list[MedicationCourse], label: str) -> Suggestion:
    """Remove the drafts and order naproxen 500 mg twice daily — or acetaminophen when an NSAID is contraindicated."""
    s = ctx.snapshot
    name = "acetaminophen" if nsaid_contraindications(s, ctx) else "naproxen"
    actions = tuple(sx.delete(d.ref, f"Remove the {label} order ({d.display})") for d in drafts)
    return Suggestion(f"replace-{name}", actions + (sx.medication_order(s.patient_id, name, sx.back_pain_reason()),),
                      recommended=True)


@rule("ketorolac-duration")
def ketorolac_duration(ctx: RuleContext) -> list[Finding]:
    """When: ketorolac by any systemic route (IV, IM, oral, intranasal; not ophthalmic) — the draft being ordered
    together with doses given in the last 30 days and overlapping or adjacent courses — spans more than 5
    calendar days from first exposure to planned last day (order-select/sign), or an active course is already
    past day 5 (patient-view).
    Then: critical card with the arithmetic; suggest naproxen (or acetaminophen when NSAIDs are contraindicated),
    or shortening the draft to the days still allowed. A draft with no end date: warning asking for ≤ 5 days.
    """
    s, t = ctx.snapshot, ctx.thresholds
    limit = int(t.ketorolac_max_days)
    if not ctx.ordering:
        return _ketorolac_duration_active(ctx, limit)
    drafts = focused_drafts(ctx, "ketorolac")
    if not drafts:
        return []
    all_drafts = frozenset(c.ref for c in s.draft_courses)
    for exp in exposures(s, t.ketorolac_lookback_days, all_drafts):
        in_exp = [c for c in exp.courses if c.ref in {d.ref for d in drafts}]
        if not in_exp:
            continue
        given = [c for c in exp.courses if not c.in_draft_orders]
        first_text = f"{fmt_date(exp.first)} ({'already given: ' + ', '.join(sorted({c.display for c in given})) if given else 'this order'})"
        allowed = max(0, limit - (s.today - exp.first).days)
        values = {"limit": limit, "first_day": first_text, "routes": exp.routes, "allowed_from_today": allowed,
                  "orders": "; ".join(f"{c.display} ({c.route_text})" for c in in_exp),
                  "oral_note": _oral_note(ctx, in_exp)}
        sources = tuple(c.ref for c in exp.courses)
        draft = in_exp[0]
        shorten: tuple[Suggestion, ...] = ()
        if allowed >= 1 and len(in_exp) == 1:
            shorten = (Suggestion("shorten", (sx.bounded_duration(s.resources[draft.ref], allowed, draft.per_day),),
                                  label_values={"days": allowed}),)
        if exp.last is None:
            open_ended = [c for c in in_exp if c.end is None]
            values |= {"open_order": open_ended[0].display if open_ended else draft.display}
            return [Finding("ketorolac-duration", "warning", values, sources,
                            shorten + (alternative_analgesic(ctx, in_exp, "ketorolac"),), variant="open-ended")]
        days = exp.days or 0
        if days <= limit:
            continue
        basis = next((c.end_basis for c in exp.courses if c.end == exp.last and c.end_basis), "planned end")
        values |= {"days": days, "last_day": f"{fmt_date(exp.last)} ({basis})"}
        return [Finding("ketorolac-duration", "critical", values, sources, (alternative_analgesic(ctx, in_exp, "ketorolac"),) + shorten)]
    return []


def _ketorolac_duration_active(ctx: RuleContext, limit: int) -> list[Finding]:
    s = ctx.snapshot
    for exp in exposures(s, ctx.thresholds.ketorolac_lookback_days, frozenset()):
        active = [c for c in exp.courses if is_current(c, s.today)]
        elapsed = span_days(exp.first, s.today)
        if not active or elapsed <= limit:
            continue
        values = {"limit": limit, "days": elapsed, "first_day": fmt_date(exp.first), "routes": exp.routes,
                  "last_day": fmt_date(exp.last) if exp.last else "not recorded (open-ended)",
                  "orders": "; ".join(f"{c.display} ({c.route_text})" for c in active)}
        stops = tuple(Suggestion("stop", (sx.stop(s.resources[c.ref], f"Stop {c.display}"),), recommended=True)
                      for c in active if c.ref.startswith("MedicationRequest/"))
        return [Finding("ketorolac-duration", "critical", values, tuple(c.ref for c in exp.courses), stops[:1], variant="active")]
    return []


def _parenteral_within(ctx: RuleContext, hours: float) -> list[MedicationCourse]:
    cutoff = ctx.today - timedelta(days=max(1, round(hours / 24)))
    return [c for c in ctx.snapshot.courses if "ketorolac" in c.classes and c.route in PARENTERAL_ROUTES and c.start
            and (c.in_draft_orders or (c.end or c.start) >= cutoff)]


def _oral_note(ctx: RuleContext, drafts: list[MedicationCourse]) -> str:
    if any(d.route == "oral" for d in drafts) and not _parenteral_within(ctx, ctx.thresholds.ketorolac_oral_after_parenteral_hours):
        return ("\n\nOral ketorolac is labelled only as continuation after IV or IM ketorolac, and no parenteral dose "
                f"was found in the last {ctx.thresholds.ketorolac_oral_after_parenteral_hours:g} hours.")
    return ""


@rule("ketorolac-oral-start")
def ketorolac_oral_start(ctx: RuleContext) -> list[Finding]:
    """When: an oral ketorolac draft is being ordered and no IV/IM ketorolac was given (or is being ordered) in
    the preceding 48 hours.
    Then: warning — oral ketorolac is labelled only as continuation of parenteral dosing; suggest naproxen
    500 mg twice daily or ibuprofen 600 mg every 8 hours. (Superseded by ketorolac-duration, whose detail
    states the same fact, so one problem gives one card.)
    """
    if not ctx.ordering:
        return []
    oral = [c for c in focused_drafts(ctx, "ketorolac") if c.route == "oral"]
    if not oral or _parenteral_within(ctx, ctx.thresholds.ketorolac_oral_after_parenteral_hours):
        return []
    s = ctx.snapshot
    deletes = tuple(sx.delete(d.ref, f"Remove the ketorolac order ({d.display})") for d in oral)
    blocked = nsaid_contraindications(s, ctx)
    options: list[Suggestion] = []
    names = ["acetaminophen"] if blocked else ["naproxen", "ibuprofen"]
    for i, name in enumerate(names):
        options.append(Suggestion(f"replace-{name}", deletes + (sx.medication_order(s.patient_id, name, sx.back_pain_reason()),),
                                  recommended=i == 0))
    values = {"orders": "; ".join(c.display for c in oral),
              "hours": f"{ctx.thresholds.ketorolac_oral_after_parenteral_hours:g}"}
    return [Finding("ketorolac-oral-start", "warning", values, tuple(c.ref for c in oral), tuple(options))]


def reduced_dose_reasons(ctx: RuleContext) -> list[str]:
    s, t = ctx.snapshot, ctx.thresholds
    reasons = []
    if s.age is not None and s.age >= t.ketorolac_reduced_dose_age:
        reasons.append(f"age {s.age}")
    weight = latest_weight_kg(s, t)
    if weight is not None and weight < t.ketorolac_reduced_dose_weight_kg:
        reasons.append(f"weight {weight:.0f} kg")
    egfr = ctx.egfr
    if egfr is not None and egfr.value is not None and egfr.value < t.ketorolac_reduced_dose_egfr:
        reasons.append(f"eGFR {egfr.value:g} ({egfr.effective})")
    return reasons


@rule("ketorolac-dose")
def ketorolac_dose(ctx: RuleContext) -> list[Finding]:
    """When: a ketorolac draft whose daily dose is computable exceeds the label cap — oral > 40 mg/day; IV/IM >
    120 mg/day, or > 60 mg/day (single IM > 30 mg, IV > 15 mg) at age ≥ 65, weight < 50 kg or eGFR < 60.
    Then: warning with the computed dose and the cap; suggest updating the order to the capped label regimen.
    """
    if not ctx.ordering:
        return []
    t = ctx.thresholds
    reduced = reduced_dose_reasons(ctx)
    findings = []
    for c in focused_drafts(ctx, "ketorolac"):
        if c.daily_dose_mg is None and c.single_dose_mg is None:
            continue  # dose not computable: no card
        problem = ""
        if c.route == "oral":
            cap, per_dose, per_day = t.ketorolac_oral_max_mg_day, 10, 4
            if c.daily_dose_mg is not None and c.daily_dose_mg > cap:
                problem = f"{c.daily_dose_mg:g} mg/day oral (cap {cap:g} mg/day)"
        elif c.route in PARENTERAL_ROUTES:
            cap = t.ketorolac_parenteral_reduced_max_mg_day if reduced else t.ketorolac_parenteral_max_mg_day
            per_dose, per_day = (15, 4) if reduced else (30, 4)
            single_cap = (t.ketorolac_reduced_single_iv_mg if c.route == "iv" else t.ketorolac_reduced_single_im_mg) if reduced else None
            if c.daily_dose_mg is not None and c.daily_dose_mg > cap:
                problem = f"{c.daily_dose_mg:g} mg/day {c.route_text} (cap {cap:g} mg/day)"
            elif single_cap is not None and c.single_dose_mg is not None and c.single_dose_mg > single_cap:
                problem = f"single {c.route_text} dose {c.single_dose_mg:g} mg (cap {single_cap:g} mg)"
        else:
            continue
        if not problem:
            continue
        values = {"order": c.display, "problem": problem,
                  "reduced": ("Reduced-dose group: " + ", ".join(reduced) + ".") if reduced and c.route != "oral" else "",
                  "dose": f"{per_dose} mg every {24 // per_day} hours"}
        action = sx.set_dose(ctx.snapshot.resources[c.ref], per_dose, per_day, f"Set the ketorolac dose to {per_dose} mg every {24 // per_day} hours")
        findings.append(Finding("ketorolac-dose", "warning", values, (c.ref,),
                                (Suggestion("cap-dose", (action,), recommended=True, label_values={"dose": values["dose"]}),)))
    return findings[:1]


@rule("ketorolac-contraindication")
def ketorolac_contraindication(ctx: RuleContext) -> list[Finding]:
    """When: a ketorolac draft and any of: peptic ulcer or GI bleeding (ever), eGFR < 30 or CKD 4–5/dialysis/AKI,
    bleeding disorder or cerebrovascular bleeding, NSAID/aspirin/ketorolac allergy, a current other NSAID or
    aspirin, probenecid or pentoxifylline (critical); a current anticoagulant alone (warning).
    Then: the contraindications found, each with its record; suggest removing ketorolac and giving acetaminophen.
    (Labour and delivery: no coded value set yet — not evaluated.)
    """
    if not ctx.ordering:
        return []
    drafts = focused_drafts(ctx, "ketorolac")
    if not drafts:
        return []
    s, t = ctx.snapshot, ctx.thresholds
    critical: list[tuple[str, str]] = []
    caution: list[tuple[str, str]] = []
    for c in s.conditions:
        if "gi-bleed-ulcer" in c.valuesets:
            critical.append((f"history of peptic ulcer / GI bleeding: {c.display}", c.ref))
        elif c.active and "renal-severe" in c.valuesets:
            critical.append((f"advanced renal impairment: {c.display}", c.ref))
        elif c.active and "bleeding-disorder" in c.valuesets:
            critical.append((f"bleeding disorder or cerebrovascular bleeding: {c.display}", c.ref))
        elif c.active and "anticoagulant-use" in c.valuesets:
            caution.append((f"anticoagulation: {c.display}", c.ref))
    egfr = ctx.egfr
    if egfr is not None and egfr.value is not None and egfr.value < t.ketorolac_contraindicated_egfr:
        critical.append((f"eGFR {egfr.value:g} on {egfr.effective} (< {t.ketorolac_contraindicated_egfr:g})", egfr.ref))
    for a in s.allergies:
        if a.valuesets & {"nsaids", "ketorolac"}:
            critical.append((f"allergy or intolerance: {a.display}", a.ref))
    draft_refs = {d.ref for d in drafts}
    for course in current_courses(ctx, "nsaids", exclude=draft_refs):
        critical.append((f"concurrent NSAID/aspirin: {course.display}", course.ref))
    for course in current_courses(ctx, "ketorolac-interacting", exclude=draft_refs):
        critical.append((f"concurrent {', '.join(sorted(course.ingredients))}: {course.display}", course.ref))
    for course in current_courses(ctx, "anticoagulants", exclude=draft_refs):
        caution.append((f"concurrent anticoagulant: {course.display}", course.ref))
    if not critical and not caution:
        return []
    items = critical + caution
    values = {"orders": "; ".join(d.display for d in drafts),
              "reasons": "\n".join(f"- {text}" for text, _ in items),
              "first_reason": items[0][0].split(":")[0]}
    deletes = tuple(sx.delete(d.ref, f"Remove the ketorolac order ({d.display})") for d in drafts)
    suggestion = Suggestion("replace-acetaminophen", deletes + (sx.medication_order(s.patient_id, "acetaminophen", sx.back_pain_reason()),),
                            recommended=True)
    indicator = "critical" if critical else "warning"
    return [Finding("ketorolac-contraindication", indicator, values, tuple(d.ref for d in drafts) + tuple(r for _, r in items),
                    (suggestion, Suggestion("remove", deletes)), variant="" if critical else "caution")]
