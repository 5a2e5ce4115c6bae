"""Further analgesic rules: opioids first-line and with sedatives, duplicate NSAIDs (CDC 2022, FDA 2019, labelling)."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

from cds_service.durations import span_days
from cds_service.snapshot import MedicationCourse

from .. import suggestions as sx
from ..alternatives import alternative_analgesic
from ..catalogue import ALL_HOOKS, ORDER_HOOKS, rule
from ..clinical import back_pain_context
from ..context import RuleContext
from ..contraindications import (
    NSAID_CONTRAINDICATION_LOOKBACK,
    NSAID_CONTRAINDICATION_SETS,
    NSAID_CONTRAINDICATION_THRESHOLDS,
)
from ..findings import Finding, Suggestion

MOUD = frozenset({"buprenorphine", "methadone"})  # may be opioid use disorder treatment: not evaluated
NON_OPIOID = frozenset({"nsaids", "ketorolac", "acetaminophen", "muscle-relaxants", "duloxetine"})
SEDATIVES = ("gabapentinoids", "benzodiazepines")
_LONG_ACTING = re.compile(r"\b(12|24) HR\b|extended release|\bER\b|\bSR\b|\bCR\b|\bLA\b|transdermal|\bpatch\b", re.I)


def _opioid_drafts(ctx: RuleContext) -> list[MedicationCourse]:
    return [c for c in ctx.focused_drafts("opioids") if not c.ingredients & MOUD]


def _current_opioids(ctx: RuleContext) -> list[MedicationCourse]:
    return [c for c in ctx.current_courses("opioids") if not c.ingredients & MOUD]


def _current_sedatives(ctx: RuleContext) -> list[MedicationCourse]:
    return [c for cls in SEDATIVES for c in ctx.current_courses(cls)]


@rule(
    "opioid-first-line",
    hooks=ORDER_HOOKS,
    thresholds=(
        "alternative_supply_days",
        "opioid_nonopioid_lookback_days",
        "opioid_supply_warning_days",
        "opioid_supply_info_days",
        "acute_pain_days",
        *NSAID_CONTRAINDICATION_THRESHOLDS,
    ),
    lookback=("opioid_nonopioid_lookback_days", *NSAID_CONTRAINDICATION_LOOKBACK),
    valuesets=("opioids", "physical-therapy", *NSAID_CONTRAINDICATION_SETS),
    suggestions=("replace-naproxen", "replace-acetaminophen", "shorten"),
    describes="opioids not first-line, with long supplies, or long-acting for acute pain",
)
def opioid_first_line(ctx: RuleContext) -> list[Finding]:
    """When: an opioid (not buprenorphine or methadone, which may treat opioid use disorder) is being ordered for back
    pain and: no non-opioid therapy (NSAID, acetaminophen, muscle relaxant, duloxetine, physical therapy) in the last 90
    days; or a supply over 7 days (over 3 days: info); or a long-acting opioid while the episode is under 4 weeks.
    Then: warning (info when the only reason is a 4–7 day supply); suggest a non-opioid, or limiting the supply to 3
    days — recommended first when a non-opioid was already tried (clinical decision: README).
    """
    drafts = _opioid_drafts(ctx)
    s, t = ctx.snapshot, ctx.thresholds
    ep = ctx.episode
    if not drafts or not back_pain_context(s, ep, [d.ref for d in drafts]):
        return []
    draft_refs = {d.ref for d in drafts}
    cutoff = ctx.today - timedelta(days=t.opioid_nonopioid_lookback_days)
    tried = [
        c
        for c in s.courses
        if c.classes & NON_OPIOID
        and c.ref not in draft_refs
        and c.start is not None
        and ((c.end or c.start) >= cutoff)
        and (not c.in_draft_orders or c.ref in ctx.focus)
    ]
    therapy = [
        o for o in s.orders if "physical-therapy" in o.valuesets and o.when is not None and o.when.latest >= cutoff
    ]
    reasons: list[tuple[str, str]] = []  # (short form for the summary, full text for the detail)
    warning = False
    if not tried and not therapy:
        reasons.append(
            (
                "no non-opioid therapy tried first",
                f"no non-opioid therapy (NSAID, acetaminophen, muscle relaxant, duloxetine, physical therapy) "
                f"recorded in the last {t.opioid_nonopioid_lookback_days:g} days",
            )
        )
        warning = True
    longest = max((span_days(d.start, d.end) for d in drafts if d.start and d.end), default=None)
    if longest is not None and longest > t.opioid_supply_info_days:
        reasons.append(
            (
                f"{longest}-day supply",
                f"{longest}-day supply (CDC: 3 days or less is often enough; more than 7 rarely needed)",
            )
        )
        warning = warning or longest > t.opioid_supply_warning_days
    acute = ep is not None and ep.certainly_within(ctx.today, t.acute_pain_days)
    long_acting = [d for d in drafts if d.route == "transdermal" or _LONG_ACTING.search(d.display)]
    if long_acting and acute:
        reasons.append(
            ("long-acting opioid for acute pain", f"long-acting opioid ({long_acting[0].display}) for acute pain")
        )
        warning = True
    if not reasons:
        return []
    options = [alternative_analgesic(ctx, drafts, "opioid")]
    if longest is not None and longest > t.opioid_supply_info_days and len(drafts) == 1:
        shorten = Suggestion(
            "shorten",
            (
                sx.bounded_duration(
                    s.resources[drafts[0].ref], int(t.opioid_supply_info_days), drafts[0].units_per_day, what="opioid"
                ),
            ),
            recommended=bool(tried or therapy),
            label_values={"days": int(t.opioid_supply_info_days)},
        )
        if shorten.recommended:  # a non-opioid was already tried: the supply is the problem, not the choice of drug
            options = [shorten, dataclasses.replace(options[0], recommended=False)]
        else:
            options.append(shorten)
    values = {
        "orders": "; ".join(d.display for d in drafts),
        "reasons": "\n".join(f"- {full}" for _, full in reasons),
        "first_reason": reasons[0][0],
    }
    return [Finding("opioid-first-line", "warning" if warning else "info", values, tuple(draft_refs), tuple(options))]


@rule(
    "opioid-sedative",
    hooks=ALL_HOOKS,
    valuesets=("opioids", "gabapentinoids", "benzodiazepines"),
    suggestions=("remove",),
    describes="opioids overlapping a gabapentinoid or a benzodiazepine",
)
def opioid_sedative(ctx: RuleContext) -> list[Finding]:
    """When: an opioid overlaps a gabapentinoid or a benzodiazepine — one of them being ordered while the other is
    current (order hooks), or both current (patient-view). Buprenorphine/methadone are not evaluated.
    Then: warning (respiratory depression; FDA 2019, CDC 2022 rec 11); suggest removing the drug being ordered.
    """
    if ctx.ordering:
        new_opioids = _opioid_drafts(ctx)
        new_sedatives = [c for cls in SEDATIVES for c in ctx.focused_drafts(cls)]
        ordered = new_opioids + new_sedatives
        if not ordered:
            return []
        opioids = new_opioids or _current_opioids(ctx)
        sedatives = new_sedatives or _current_sedatives(ctx)
    else:
        ordered, opioids, sedatives = [], _current_opioids(ctx), _current_sedatives(ctx)
    if not opioids or not sedatives:
        return []
    values = {
        "opioids": "; ".join(c.display for c in opioids),
        "sedatives": "; ".join(c.display for c in sedatives),
        "sedative_class": "benzodiazepine"
        if any("benzodiazepines" in c.classes for c in sedatives)
        else "gabapentinoid",
    }
    options = (
        (Suggestion("remove", tuple(sx.delete(c.ref, f"Remove {c.display}") for c in ordered)),) if ordered else ()
    )
    return [
        Finding(
            "opioid-sedative",
            "warning",
            values,
            tuple(c.ref for c in opioids + sedatives),
            options,
            variant="" if ctx.ordering else "active",
        )
    ]


@rule(
    "nsaid-duplicate",
    hooks=ORDER_HOOKS,
    thresholds=("aspirin_cardioprotective_max_mg_day",),
    valuesets=("nsaids",),
    suggestions=("remove",),
    describes="two NSAIDs at once",
)
def nsaid_duplicate(ctx: RuleContext) -> list[Finding]:
    """When: a systemic NSAID is being ordered while another systemic NSAID with a different ingredient is current (or
    ordered with it). Aspirin at ≤ 325 mg/day (cardioprotective) is ignored, and so is aspirin whose daily dose cannot
    be read; ketorolac is covered by ketorolac-contraindication.
    Then: warning — more GI and renal harm, no added benefit; suggest removing the new NSAID.
    """
    drafts = [d for d in ctx.focused_drafts("nsaids") if not _low_dose_aspirin(ctx, d)]
    if not drafts:
        return []
    draft_refs = {d.ref for d in drafts}
    others = [
        c
        for c in ctx.current_courses("nsaids", exclude=draft_refs)
        if not _low_dose_aspirin(ctx, c) and not c.ingredients <= set().union(*(d.ingredients for d in drafts))
    ]
    if not others:
        return []
    values = {"orders": "; ".join(d.display for d in drafts), "current": "; ".join(c.display for c in others)}
    return [
        Finding(
            "nsaid-duplicate",
            "warning",
            values,
            tuple(draft_refs) + tuple(c.ref for c in others),
            (Suggestion("remove", tuple(sx.delete(d.ref, f"Remove {d.display}") for d in drafts), recommended=True),),
        )
    ]


def _low_dose_aspirin(ctx: RuleContext, c: MedicationCourse) -> bool:
    if c.ingredients != {"aspirin"}:
        return False
    return c.daily_dose_mg is None or c.daily_dose_mg <= ctx.thresholds.aspirin_cardioprotective_max_mg_day
