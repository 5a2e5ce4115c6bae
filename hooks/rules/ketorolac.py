"""Ketorolac: combined duration, oral start, dose caps, contraindications (FDA ketorolac tromethamine label)."""

from __future__ import annotations

from datetime import timedelta

from cds_service.durations import span_days
from cds_service.snapshot import MedicationCourse

from .. import suggestions as sx
from ..alternatives import alternative_analgesic, replace_with
from ..catalogue import ALL_HOOKS, ORDER_HOOKS, rule
from ..clinical import fmt_date, is_current
from ..context import RuleContext
from ..contraindications import (
    NSAID_CONTRAINDICATION_LOOKBACK,
    NSAID_CONTRAINDICATION_SETS,
    NSAID_CONTRAINDICATION_THRESHOLDS,
    Contraindication,
    nsaid_contraindications,
)
from ..findings import Finding, Suggestion
from ..ketorolac_course import (
    DOSE_THRESHOLDS,
    Plan,
    dose_problem,
    exposures,
    parenteral_within,
    planned_exposure,
    reduced_dose_reasons,
    stop_note,
)


@rule(
    "ketorolac-contraindication",
    hooks=ORDER_HOOKS,
    supersedes=("ketorolac-duration", "ketorolac-oral-start", "ketorolac-dose"),
    thresholds=(
        "alternative_supply_days",
        "ketorolac_max_days",
        "ketorolac_lookback_days",
        "ketorolac_course_gap_days",
        *DOSE_THRESHOLDS,
        *NSAID_CONTRAINDICATION_THRESHOLDS,
    ),
    lookback=("ketorolac_lookback_days", "weight_lookback_days", *NSAID_CONTRAINDICATION_LOOKBACK),
    valuesets=(*NSAID_CONTRAINDICATION_SETS, "body-weight"),
    suggestions=("replace-acetaminophen", "remove"),
    describes=(
        "ketorolac contraindications (GI bleeding, renal, bleeding, pregnancy from 20 weeks, other NSAIDs, "
        "anticoagulants)"
    ),
)
def ketorolac_contraindication(ctx: RuleContext) -> list[Finding]:
    """When: a ketorolac draft and any NSAID contraindication (``clinical.nsaid_contraindications``): peptic ulcer or GI
    bleeding (ever), eGFR < 30 or CKD 4–5/dialysis/AKI, bleeding disorder or cerebrovascular bleeding,
    NSAID/aspirin/ketorolac allergy, a current other NSAID or aspirin, probenecid or pentoxifylline, pregnancy from 20
    weeks or preterm labour (critical); a current anticoagulant, or a pregnancy before 20 weeks or of unknown
    gestational age (warning — critical when the planned ketorolac would also run past its 5-day limit).
    Then: the contraindications found, each with its record, and the planned duration (first dose, planned last day,
    day count); suggest removing ketorolac and giving acetaminophen. One problem, one card: it silences the duration,
    oral-start and dose cards, so no card offers to keep, shorten or swap the ketorolac for another NSAID.
    Labour and delivery: read from a preterm-labour code (ICD-10-CM O60.0) and from a pregnancy of 20 weeks or more;
    delivery and postpartum codes are not read as labour (they stay on the record after the birth, when ketorolac is
    commonly given).
    """
    drafts = ctx.focused_drafts("ketorolac")
    if not drafts:
        return []
    found = nsaid_contraindications(ctx, [d.ref for d in drafts], ketorolac=True)
    if not found:
        return []
    plan = planned_exposure(ctx)
    limit = int(ctx.thresholds.ketorolac_max_days)
    over = plan is not None and not plan.open_ended and plan.values["days"] > limit
    critical = any(c.critical for c in found)
    values = {
        "orders": "; ".join(d.display for d in drafts),
        "reasons": "\n".join(f"- {c.text}" for c in found),
        "first_reason": _first_problem(found),
        "duration": _duration_text(plan, limit) + (dose_facts := _dose_text(ctx, drafts)),
        "days": plan.values.get("days", "") if plan else "",
    }
    if not critical:  # name only the cautions this record has (a man on warfarin has no pregnancy caution)
        kinds = [k for k in ("bleeding", "pregnancy") if any(c.kind == k for c in found)]
        values |= {
            "caution": " and ".join(kinds),
            "caution_advice": " ".join(_CAUTION_ADVICE[k] for k in kinds),
            "caution_evidence": "; ".join(_CAUTION_EVIDENCE[k] for k in kinds),
        }
    deletes = tuple(sx.delete(d.ref, f"Remove the ketorolac order ({d.display})") for d in drafts)
    suggestion = Suggestion(
        "replace-acetaminophen", replace_with(ctx, drafts, "acetaminophen", "ketorolac"), recommended=True
    )
    sources = tuple(d.ref for d in drafts) + tuple(c.ref for c in found)
    variant = "" if critical else "caution-over-limit" if over else "caution"
    covers: tuple[str, ...] = ("ketorolac-duration",) if plan is not None and (over or plan.open_ended) else ()
    if dose_facts:
        covers += ("ketorolac-dose",)  # its detail states the dose over the cap
    return [
        Finding(
            "ketorolac-contraindication",
            "critical" if critical or over else "warning",
            values,
            sources,
            (suggestion, Suggestion("remove", deletes)),
            variant=variant,
            covers=covers,
        )
    ]


def _first_problem(found: list[Contraindication]) -> str:
    """The first contraindication's kind, and how many other kinds there are (a CKD 4 code and an eGFR of 24 are one
    problem: advanced renal impairment)."""
    kinds = list(dict.fromkeys(c.text.split(":")[0].split(" (")[0] for c in found))
    return kinds[0] + (f", and {len(kinds) - 1} more" if len(kinds) > 1 else "")


# What a caution-tier card says for each caution it names (FDA ketorolac label, Warnings; FDA DSC October 2020).
_CAUTION_ADVICE = {
    "bleeding": "The label warns of bleeding with concurrent anticoagulants; acetaminophen avoids it.",
    "pregnancy": "The FDA advises avoiding NSAIDs from 20 weeks of pregnancy; acetaminophen avoids it.",
}
_CAUTION_EVIDENCE = {
    "bleeding": "FDA ketorolac tromethamine label, Warnings (hemorrhage)",
    "pregnancy": "FDA ketorolac tromethamine label, Warnings (pregnancy); FDA Drug Safety Communication, "
    "October 2020: avoid NSAIDs from 20 weeks of pregnancy",
}


@rule(
    "ketorolac-duration",
    hooks=ALL_HOOKS,
    supersedes=("ketorolac-oral-start",),
    thresholds=(
        "alternative_supply_days",
        "ketorolac_max_days",
        "ketorolac_lookback_days",
        "ketorolac_course_gap_days",
        "ketorolac_oral_after_parenteral_hours",
        *NSAID_CONTRAINDICATION_THRESHOLDS,
    ),
    lookback=("ketorolac_lookback_days", *NSAID_CONTRAINDICATION_LOOKBACK),
    valuesets=("ketorolac", *NSAID_CONTRAINDICATION_SETS),
    suggestions=("replace-naproxen", "replace-acetaminophen", "shorten", "stop"),
    describes="ketorolac past its 5-day combined limit (all routes, across dose-free days and stopped orders)",
)
def ketorolac_duration(ctx: RuleContext) -> list[Finding]:
    """When: ketorolac by any systemic route (IV, IM, oral, intranasal; not ophthalmic) — the draft being ordered
    together with doses given in the last 30 days and the courses it continues (a gap of up to
    ``ketorolac_course_gap_days`` dose-free days does not end a course; stopped orders count) — spans more than 5
    calendar days from first exposure to planned last day (order-select/sign), or an active course is already past
    day 5 (patient-view).
    Then: critical card with the arithmetic (first dose, dose-free days bridged, planned last day, and any stopped order
    whose stop date was not recorded); suggest naproxen (or acetaminophen when NSAIDs are contraindicated), or
    shortening the draft to the days still allowed. A draft with no end date, when no duration can be derived at all:
    warning asking for ≤ 5 days. (Superseded by ketorolac-contraindication, whose detail then carries these facts: no
    card offers to keep or shorten a contraindicated drug.)
    """
    if not ctx.ordering:
        return _ketorolac_duration_active(ctx, int(ctx.thresholds.ketorolac_max_days))
    plan = planned_exposure(ctx)
    if plan is None:
        return []
    s, limit = ctx.snapshot, int(ctx.thresholds.ketorolac_max_days)
    draft = plan.drafts[0]
    sources = tuple(c.ref for c in plan.exposure.courses)
    shorten: tuple[Suggestion, ...] = ()
    if plan.allowed >= 1 and len(plan.drafts) == 1:
        shorten = (
            Suggestion(
                "shorten",
                (sx.bounded_duration(s.resources[draft.ref], plan.allowed, draft.units_per_day),),
                label_values={"days": plan.allowed},
            ),
        )
    # replacing the ketorolac replaces all of it: a current order of the same course is stopped too (a renewal beside
    # an order still running would otherwise leave it running, and count it as a second NSAID against the alternative)
    running = [
        c
        for c in plan.exposure.courses
        if not c.in_draft_orders and c.ref.startswith("MedicationRequest/") and is_current(c, s.today)
    ]
    alternative = alternative_analgesic(ctx, [*plan.drafts, *running], "ketorolac")
    covers = ("ketorolac-oral-start",) if plan.values["oral_note"] else ()  # its detail states the oral-start fact
    if plan.open_ended:
        return [
            Finding(
                "ketorolac-duration",
                "warning",
                plan.values,
                sources,
                shorten + (alternative,),
                variant="open-ended",
                covers=covers,
            )
        ]
    if plan.values["days"] <= limit:
        return []
    # the advice names the alternative the card offers (acetaminophen when another NSAID course is current)
    values = plan.values | (
        {"switch_to": "another NSAID", "advice": _NAPROXEN_ADVICE}
        if alternative.key == "replace-naproxen"
        else {"switch_to": "acetaminophen", "advice": _ACETAMINOPHEN_ADVICE}
    )
    return [Finding("ketorolac-duration", "critical", values, sources, (alternative,) + shorten, covers=covers)]


_NAPROXEN_ADVICE = (
    "If an NSAID is still wanted, naproxen 500 mg twice daily with food has no fixed duration limit; consider GI "
    "protection and renal function."
)
_ACETAMINOPHEN_ADVICE = (
    "A ketorolac or other NSAID course is still current, so no second NSAID is suggested beside it: "
    "acetaminophen 1 g every 8 hours (max 3 g/day) is the alternative; naproxen may follow once it has "
    "stopped."
)


def _ketorolac_duration_active(ctx: RuleContext, limit: int) -> list[Finding]:
    s, t = ctx.snapshot, ctx.thresholds
    for exp in exposures(s, t.ketorolac_lookback_days, t.ketorolac_course_gap_days, frozenset()):
        active = [c for c in exp.courses if is_current(c, s.today)]
        elapsed = span_days(exp.first, s.today)
        if not active or elapsed <= limit:
            continue
        alternative = (
            "acetaminophen"
            if nsaid_contraindications(ctx, [c.ref for c in exp.courses], ketorolac=True)
            else "acetaminophen, or naproxen with GI protection and renal monitoring"
        )
        values = {
            "limit": limit,
            "days": elapsed,
            "first_day": fmt_date(exp.first),
            "routes": exp.routes,
            "last_day": fmt_date(exp.last) if exp.last else "not recorded (open-ended)",
            "orders": "; ".join(f"{c.display} ({c.route_text})" for c in active),
            "alternative": alternative,
            "gap_row": f"\n| Dose-free days within the course | {exp.gaps_text} |" if exp.gaps else "",
            "stop_note": stop_note(exp, s.today),
            "limit_day": fmt_date(exp.first + timedelta(days=limit - 1)),
        }
        stops = tuple(
            Suggestion("stop", (sx.stop(s.resources[c.ref], f"Stop {c.display}"),), recommended=True)
            for c in active
            if c.ref.startswith("MedicationRequest/")
        )
        return [
            Finding(
                "ketorolac-duration", "critical", values, tuple(c.ref for c in exp.courses), stops[:1], variant="active"
            )
        ]
    return []


@rule(
    "ketorolac-dose",
    hooks=ORDER_HOOKS,
    thresholds=DOSE_THRESHOLDS,
    lookback=("lab_lookback_days", "weight_lookback_days"),
    valuesets=("ketorolac", "egfr", "body-weight"),
    suggestions=("cap-dose",),
    describes="ketorolac doses above the label cap",
)
def ketorolac_dose(ctx: RuleContext) -> list[Finding]:
    """When: a ketorolac draft whose dose is computable exceeds the label cap (``dose_problem``) — oral > 40 mg/day;
    IV/IM > 120 mg/day, or > 60 mg/day (single IM > 30 mg, IV > 15 mg) at age ≥ 65, weight < 50 kg or eGFR < 60; a
    one-time injection (no frequency) over the single-dose treatment (IM 60 mg, IV 30 mg; 30/15 in that group).
    Then: warning with the computed dose and the cap; suggest updating the order to the capped label regimen — for a
    one-time order the dose only, its timing as ordered.
    """
    reduced = reduced_dose_reasons(ctx)
    findings = []
    for c in ctx.focused_drafts("ketorolac"):
        checked = dose_problem(ctx, c, reduced)
        if checked is None:
            continue
        problem, per_dose, per_day = checked
        regimen = f"{per_dose:g} mg once" if per_day is None else f"{per_dose:g} mg every {24 // per_day} hours"
        values = {
            "order": c.display,
            "problem": problem,
            "reduced": ("Reduced-dose group: " + ", ".join(reduced) + ".") if reduced and c.route != "oral" else "",
            "dose": regimen,
        }
        # a one-time order keeps its timing: only the dose changes (never a standing regimen it did not ask for)
        action = sx.set_dose(ctx.snapshot.resources[c.ref], per_dose, per_day, f"Set the ketorolac dose to {regimen}")
        findings.append(
            Finding(
                "ketorolac-dose",
                "warning",
                values,
                (c.ref,),
                (Suggestion("cap-dose", (action,), recommended=True, label_values={"dose": values["dose"]}),),
            )
        )
    return findings[:1]


@rule(
    "ketorolac-oral-start",
    hooks=ORDER_HOOKS,
    thresholds=("alternative_supply_days", "ketorolac_oral_after_parenteral_hours", *NSAID_CONTRAINDICATION_THRESHOLDS),
    lookback=NSAID_CONTRAINDICATION_LOOKBACK,
    valuesets=("ketorolac", *NSAID_CONTRAINDICATION_SETS),
    suggestions=("replace-naproxen", "replace-ibuprofen", "replace-acetaminophen"),
    describes="oral ketorolac not preceded by IV/IM ketorolac",
)
def ketorolac_oral_start(ctx: RuleContext) -> list[Finding]:
    """When: an oral ketorolac draft is being ordered and no IV/IM ketorolac was given (or is being ordered) in
    the preceding 48 hours.
    Then: warning — oral ketorolac is labelled only as continuation of parenteral dosing; suggest naproxen
    500 mg twice daily or ibuprofen 600 mg every 8 hours (acetaminophen when an NSAID is contraindicated).
    (Superseded by ketorolac-duration, whose detail states the same fact, and by ketorolac-contraindication.)
    """
    oral = [c for c in ctx.focused_drafts("ketorolac") if c.route == "oral"]
    if not oral or parenteral_within(ctx, ctx.thresholds.ketorolac_oral_after_parenteral_hours):
        return []
    blocked = nsaid_contraindications(ctx, [d.ref for d in oral])
    options: list[Suggestion] = []
    names = ["acetaminophen"] if blocked else ["naproxen", "ibuprofen"]
    for i, name in enumerate(names):
        options.append(Suggestion(f"replace-{name}", replace_with(ctx, oral, name, "ketorolac"), recommended=i == 0))
    values = {
        "orders": "; ".join(c.display for c in oral),
        "hours": f"{ctx.thresholds.ketorolac_oral_after_parenteral_hours:g}",
    }
    return [Finding("ketorolac-oral-start", "warning", values, tuple(c.ref for c in oral), tuple(options))]


def _dose_text(ctx: RuleContext, drafts: list[MedicationCourse]) -> str:
    """The dose facts the contraindication card carries in place of a dose card of its own (one problem, one card)."""
    reduced = reduced_dose_reasons(ctx)
    found = [(d, p[0]) for d in drafts if (p := dose_problem(ctx, d, reduced))]
    return "".join(f"\n\nThe dose is also above the label maximum: {problem} ({d.display})." for d, problem in found)


def _duration_text(plan: Plan | None, limit: int) -> str:
    """The duration facts the contraindication card carries in place of a duration card of its own."""
    if plan is None:
        return ""
    v = plan.values
    if plan.open_ended:
        head = (
            f"**Planned ketorolac exposure: no end date** ({v['open_order']}; limit {limit} days, all routes combined)."
        )
        rows = ""
    else:
        verdict = f"over the {limit}-day limit" if v["days"] > limit else f"within the {limit}-day limit"
        head = f"**Planned ketorolac exposure: {v['days']} days** ({verdict}, all routes combined)."
        rows = f"\n| Planned last day | {v['last_day']} |"
    return (
        f"\n\n{head}\n\n| | |\n|---|---|\n| First ketorolac dose | {v['first_day']} |{rows}{v['gap_row']}\n"
        f"| Routes | {v['routes']} |{v['stop_note']}"
    )
