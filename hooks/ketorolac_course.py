"""The ketorolac course and dose, as the label counts them: every systemic route together, across dose-free days of
up to ``ketorolac_course_gap_days``, stopped orders to their known (or worst-case) end; the exposure a draft would
make (``planned_exposure``) and the notes its cards carry (a stop date not recorded, an oral start with no IV/IM
dose); the dose caps and who gets the reduced ones (``dose_problem``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cds_service.durations import span_days
from cds_service.snapshot import MedicationCourse, PatientSnapshot

from .clinical import PARENTERAL_ROUTES, fmt_date, is_current, latest_weight_kg
from .context import RuleContext

LOCAL = "local"


def is_systemic_ketorolac(c: MedicationCourse) -> bool:
    """Ketorolac by any systemic route; ophthalmic/local use is excluded. Unknown route counts (see detail)."""
    return "ketorolac" in c.classes and c.route != LOCAL


@dataclass(frozen=True)
class Exposure:
    """One ketorolac course: doses and orders no more than the gap threshold apart, merged (a dose-free day does not
    end a course: the label limits the total duration of use)."""

    first: date
    last: date | None  # None: open-ended (a course in it has no planned end)
    courses: tuple[MedicationCourse, ...]
    gaps: tuple[tuple[date, date], ...] = ()  # dose-free stretches inside the course (first and last free day)

    @property
    def days(self) -> int | None:
        return span_days(self.first, self.last) if self.last else None

    @property
    def routes(self) -> str:
        return ", ".join(sorted({c.route_text for c in self.courses}))

    @property
    def gaps_text(self) -> str:
        return "; ".join(
            f"{a.isoformat()}" + (f" to {b.isoformat()}" if b != a else "") + f" ({span_days(a, b)} "
            f"day{'s' if span_days(a, b) != 1 else ''})"
            for a, b in self.gaps
        )

    @property
    def unknown_stops(self) -> tuple[MedicationCourse, ...]:
        """Stopped courses whose stop date was not recorded (counted to the earlier of their planned end and today)."""
        return tuple(c for c in self.courses if not c.end_known)


# Complexity: the course-merging walk: each branch is one way a course ends (draft, stopped, open, active).
def exposures(  # noqa: C901
    s: PatientSnapshot, lookback_days: float, gap_days: float, include_drafts: frozenset[str]
) -> list[Exposure]:
    """Ketorolac courses of the last ``lookback_days`` (plus the given drafts), merged into exposures: a course that
    starts no more than ``gap_days`` dose-free days after the previous one ended continues it. Stopped orders count
    (FHIR ``stopped``: doses were given) to the end the snapshot gives them; entered-in-error, cancelled and
    never-started orders are not courses at all."""
    cutoff = s.today - timedelta(days=lookback_days)
    courses = []
    for c in s.courses:
        if not is_systemic_ketorolac(c) or c.start is None:
            continue
        if c.in_draft_orders:
            if c.ref in include_drafts:
                courses.append(c)
        elif (c.end or c.start) >= cutoff:
            courses.append(c)
    courses.sort(key=lambda c: c.start)  # type: ignore[arg-type, return-value]
    bridge = timedelta(days=int(gap_days) + 1)
    merged: list[Exposure] = []
    for c in courses:
        assert c.start is not None
        if c.end is not None:
            end: date | None = c.end
        elif c.in_draft_orders:
            end = None  # open-ended draft
        else:  # a recorded course with no end: it ran at least to today while it is still active
            end = max(c.start, s.today) if is_current(c, s.today) else c.start
        if merged and (merged[-1].last is None or c.start <= merged[-1].last + bridge):
            prev = merged[-1]
            gaps = prev.gaps
            if prev.last is not None and c.start > prev.last + timedelta(days=1):
                gaps += ((prev.last + timedelta(days=1), c.start - timedelta(days=1)),)
            last = None if prev.last is None or end is None else max(prev.last, end)
            merged[-1] = Exposure(prev.first, last, prev.courses + (c,), gaps)
        else:
            merged.append(Exposure(c.start, end, (c,)))
    return merged


@dataclass(frozen=True)
class Plan:
    """What the ketorolac being ordered adds up to: its exposure, the drafts in it, and the card values that show it."""

    exposure: Exposure
    drafts: tuple[MedicationCourse, ...]
    values: dict[str, Any]
    allowed: int  # days still allowed from today

    @property
    def open_ended(self) -> bool:
        return self.exposure.last is None


def planned_exposure(ctx: RuleContext) -> Plan | None:
    """The exposure of the ketorolac drafts in focus, with doses already given and every other draft of the call: the
    first that is open-ended or over the limit, else the first that holds a draft in focus."""
    s, t = ctx.snapshot, ctx.thresholds
    limit = int(t.ketorolac_max_days)
    drafts = ctx.focused_drafts("ketorolac")
    if not drafts:
        return None
    focused = {d.ref for d in drafts}
    plans: list[Plan] = []
    for exp in exposures(
        s, t.ketorolac_lookback_days, t.ketorolac_course_gap_days, frozenset(c.ref for c in s.draft_courses)
    ):
        in_exp = tuple(c for c in exp.courses if c.ref in focused)
        if not in_exp:
            continue
        given = [c for c in exp.courses if not c.in_draft_orders]
        what = "already given: " + ", ".join(sorted({c.display for c in given})) if given else "this order"
        first_text = f"{fmt_date(exp.first)} ({what})"
        allowed = max(0, limit - (s.today - exp.first).days)
        values: dict[str, Any] = {
            "limit": limit,
            "first_day": first_text,
            "routes": exp.routes,
            "allowed_from_today": allowed,
            "orders": "; ".join(f"{c.display} ({c.route_text})" for c in in_exp),
            "oral_note": oral_note(ctx, list(in_exp)),
            "gap_row": (
                f"\n| Dose-free days within the course | {exp.gaps_text} (a dose-free day does not end a course) |"
            )
            if exp.gaps
            else "",
            "stop_note": stop_note(exp, s.today),
        }
        if exp.last is None:
            open_ended = [c for c in in_exp if c.end is None]
            values["open_order"] = open_ended[0].display if open_ended else in_exp[0].display
        else:
            basis = next((c.end_basis for c in exp.courses if c.end == exp.last and c.end_basis), "planned end")
            values |= {"days": exp.days or 0, "last_day": f"{fmt_date(exp.last)} ({basis})"}
        plans.append(Plan(exp, in_exp, values, allowed))
    return next((p for p in plans if p.open_ended or p.values["days"] > limit), plans[0] if plans else None)


def stop_note(exp: Exposure, today: date) -> str:
    stopped = exp.unknown_stops
    if not stopped:
        return ""

    def counted(c: MedicationCourse) -> str:
        to = "today" if c.end is None or c.end >= today else f"its planned end, {fmt_date(c.end)}"
        return f"{c.display} (from {fmt_date(c.start)}, counted to {to})"

    names = "; ".join(counted(c) for c in stopped)
    return (
        f"\n\nStopped order{'s' if len(stopped) > 1 else ''} with no stop date recorded: {names}. "
        "Check the administration record."
    )


def parenteral_within(ctx: RuleContext, hours: float) -> list[MedicationCourse]:
    cutoff = ctx.today - timedelta(days=max(1, round(hours / 24)))
    return [
        c
        for c in ctx.snapshot.courses
        if "ketorolac" in c.classes
        and c.route in PARENTERAL_ROUTES
        and c.start
        and (c.in_draft_orders or (c.end or c.start) >= cutoff)
    ]


def oral_note(ctx: RuleContext, drafts: list[MedicationCourse]) -> str:
    if any(d.route == "oral" for d in drafts) and not parenteral_within(
        ctx, ctx.thresholds.ketorolac_oral_after_parenteral_hours
    ):
        return (
            "\n\nOral ketorolac is labelled only as continuation after IV or IM ketorolac, and no parenteral dose "
            f"was found in the last {ctx.thresholds.ketorolac_oral_after_parenteral_hours:g} hours."
        )
    return ""


DOSE_THRESHOLDS = (  # the label's dose caps and who gets the reduced ones (``dose_problem``)
    "ketorolac_oral_max_mg_day",
    "ketorolac_single_im_mg",
    "ketorolac_single_iv_mg",
    "ketorolac_parenteral_max_mg_day",
    "ketorolac_parenteral_reduced_max_mg_day",
    "ketorolac_reduced_single_im_mg",
    "ketorolac_reduced_single_iv_mg",
    "ketorolac_reduced_dose_age",
    "ketorolac_reduced_dose_weight_kg",
    "ketorolac_reduced_dose_egfr",
)


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


def dose_problem(ctx: RuleContext, c: MedicationCourse, reduced: list[str]) -> tuple[str, float, int | None] | None:
    """What a ketorolac order's computable dose exceeds — oral > 40 mg/day; IV/IM > 120 mg/day, or > 60 mg/day and a
    single IM dose > 30 mg or IV > 15 mg in the reduced-dose group (both named when both are exceeded); a one-time
    parenteral order (no frequency) over the label's single dose (IM 60 mg, IV 30 mg; 30 and 15 in the reduced-dose
    group) — with the label regimen within the caps (mg per dose, doses a day, None: once, as ordered); None when
    within them or not computable."""
    t = ctx.thresholds
    if c.daily_dose_mg is None and c.single_dose_mg is None:
        return None  # dose not computable
    if c.route in PARENTERAL_ROUTES and c.per_day is None and c.single_dose_mg is not None and not c.is_administration:
        iv = c.route == "iv"
        if reduced:
            once = t.ketorolac_reduced_single_iv_mg if iv else t.ketorolac_reduced_single_im_mg
        else:
            once = t.ketorolac_single_iv_mg if iv else t.ketorolac_single_im_mg
        if c.single_dose_mg <= once:
            return None
        return f"single {c.route_text} dose {c.single_dose_mg:g} mg (cap {once:g} mg)", once, None
    problems = []
    if c.route == "oral":
        cap, per_dose, per_day = t.ketorolac_oral_max_mg_day, 10, 4
        if c.daily_dose_mg is not None and c.daily_dose_mg > cap:
            problems.append(f"{c.daily_dose_mg:g} mg/day oral (cap {cap:g} mg/day)")
    elif c.route in PARENTERAL_ROUTES:
        cap = t.ketorolac_parenteral_reduced_max_mg_day if reduced else t.ketorolac_parenteral_max_mg_day
        per_dose, per_day = (15, 4) if reduced else (30, 4)
        single_cap = (
            (t.ketorolac_reduced_single_iv_mg if c.route == "iv" else t.ketorolac_reduced_single_im_mg)
            if reduced
            else None
        )
        if c.daily_dose_mg is not None and c.daily_dose_mg > cap:
            problems.append(f"{c.daily_dose_mg:g} mg/day {c.route_text} (cap {cap:g} mg/day)")
        if single_cap is not None and c.single_dose_mg is not None and c.single_dose_mg > single_cap:
            problems.append(f"single {c.route_text} dose {c.single_dose_mg:g} mg (cap {single_cap:g} mg)")
    return ("; ".join(problems), per_dose, per_day) if problems else None
