"""Further rules for adjuvant drugs: gabapentinoids, muscle relaxants, benzodiazepines, and repeating a drug class
(NICE NG59, gabapentin label Table 1, ACP 2017, AGS Beers Criteria)."""

from __future__ import annotations

from cds_service.snapshot import MedicationCourse

from .. import suggestions as sx
from ..alternatives import alternative_analgesic
from ..catalogue import ORDER_HOOKS, rule
from ..clinical import RADICULAR, SYSTEMIC_ROUTES, back_pain_context, fmt_date, is_current
from ..context import RuleContext
from ..contraindications import (
    NSAID_CONTRAINDICATION_LOOKBACK,
    NSAID_CONTRAINDICATION_SETS,
    NSAID_CONTRAINDICATION_THRESHOLDS,
)
from ..findings import Finding, Suggestion

REPEAT_CLASSES = {
    "systemic-corticosteroids": "systemic corticosteroid",
    "muscle-relaxants": "muscle relaxant",
    "gabapentinoids": "gabapentinoid",
    "opioids": "opioid",
    "benzodiazepines": "benzodiazepine",
}


def _has_indication(ctx: RuleContext, valueset: str, drafts: list[MedicationCourse]) -> bool:
    return any(c.active and valueset in c.valuesets for c in ctx.snapshot.conditions) or any(
        valueset in d.reason_valuesets for d in drafts
    )


def _remove(drafts: list[MedicationCourse], recommended: bool = True) -> Suggestion:
    return Suggestion("remove", tuple(sx.delete(d.ref, f"Remove {d.display}") for d in drafts), recommended=recommended)


@rule(
    "gabapentinoid-nonradicular",
    hooks=ORDER_HOOKS,
    thresholds=("alternative_supply_days", *NSAID_CONTRAINDICATION_THRESHOLDS),
    lookback=NSAID_CONTRAINDICATION_LOOKBACK,
    valuesets=("gabapentinoids", "neuropathic-indication", "lbp-radicular", *NSAID_CONTRAINDICATION_SETS),
    suggestions=("replace-naproxen", "replace-acetaminophen", "remove"),
    describes="gabapentinoids for back pain without radicular pain",
)
def gabapentinoid_nonradicular(ctx: RuleContext) -> list[Finding]:
    """When: gabapentin or pregabalin is being ordered for back pain, with no radicular condition (or radicular reason
    on the order) and no other neuropathic or seizure indication (epilepsy, diabetic or other polyneuropathy,
    postherpetic neuralgia, fibromyalgia, restless legs…).
    Then: warning — no benefit for non-radicular low back pain, with dizziness and somnolence (NICE NG59); suggest
    an NSAID (or acetaminophen) instead.
    """
    s = ctx.snapshot
    drafts = ctx.focused_drafts("gabapentinoids")
    ep = ctx.episode
    if not drafts or not back_pain_context(s, ep, [d.ref for d in drafts]):
        return []
    if (
        (ep is not None and ep.radicular)
        or any(d.reason_valuesets & RADICULAR for d in drafts)
        or _has_indication(ctx, "neuropathic-indication", drafts)
    ):
        return []
    values = {
        "orders": "; ".join(d.display for d in drafts),
        "conditions": ", ".join(c.display for c in ep.conditions) if ep else "back pain (order reason)",
    }
    return [
        Finding(
            "gabapentinoid-nonradicular",
            "warning",
            values,
            tuple(d.ref for d in drafts),
            (alternative_analgesic(ctx, drafts, "gabapentinoid"), _remove(drafts, recommended=False)),
        )
    ]


@rule(
    "gabapentinoid-renal-dose",
    hooks=ORDER_HOOKS,
    thresholds=(
        "gabapentin_egfr_band_upper",
        "gabapentin_egfr_band_middle",
        "gabapentin_egfr_band_lower",
        "gabapentin_max_mg_egfr_30_59",
        "gabapentin_max_mg_egfr_15_29",
        "gabapentin_max_mg_egfr_below_15",
    ),
    lookback=("lab_lookback_days",),
    valuesets=("gabapentinoids", "egfr"),
    suggestions=("cap-dose",),
    describes="gabapentin above the renal dose band",
)
def gabapentinoid_renal_dose(ctx: RuleContext) -> list[Finding]:
    """When: gabapentin is being ordered with a computable daily dose above the band for the latest eGFR (12 months):
    30–59 → 1400 mg/day, 15–29 → 700 mg/day, < 15 → 300 mg/day (gabapentin label, Table 1). No eGFR or no readable
    dose → no card.
    Then: warning with the dose, the eGFR and the band; suggest updating the order to the band's maximum in whole
    units of the ordered product (600 mg tablets in the 700 mg/day band: 600 mg once daily — the update keeps the
    product, so its dose must be one the product can make). When even one unit is above the band, no update is
    offered and the card says another strength is needed (clinical decision: README).
    """
    s, t = ctx.snapshot, ctx.thresholds
    egfr = ctx.egfr
    upper, middle, lower = t.gabapentin_egfr_band_upper, t.gabapentin_egfr_band_middle, t.gabapentin_egfr_band_lower
    if egfr is None or egfr.value is None or egfr.value >= upper:
        return []
    # suggested regimens are the band maxima as label dosing (twice daily in the middle band, once daily below)
    if egfr.value >= middle:
        cap, per_day, band = t.gabapentin_max_mg_egfr_30_59, 2, f"{middle:g}–{upper - 1:g}"
    elif egfr.value >= lower:
        cap, per_day, band = t.gabapentin_max_mg_egfr_15_29, 1, f"{lower:g}–{middle - 1:g}"
    else:
        cap, per_day, band = t.gabapentin_max_mg_egfr_below_15, 1, f"below {lower:g}"
    for d in ctx.focused_drafts("gabapentinoids"):
        if d.ingredients != {"gabapentin"} or d.daily_dose_mg is None or d.daily_dose_mg <= cap:
            continue
        # the band's dose in whole tablets of the ordered product (600 mg tablets cannot make 700 mg)
        dose = cap / per_day if not d.unit_mg else (cap / per_day // d.unit_mg) * d.unit_mg
        values = {
            "order": d.display,
            "daily": f"{d.daily_dose_mg:g}",
            "egfr": f"{egfr.value:g}",
            "egfr_date": str(egfr.effective),
            "band": band,
            "cap": f"{cap:g}",
        }
        if dose <= 0:  # even one tablet is above the band: another strength is needed, no update can fix this order
            values["regimen"] = f"at most {cap:g} mg/day (a strength below the {d.unit_mg:g} mg ordered)"
            return [Finding("gabapentinoid-renal-dose", "warning", values, (d.ref, egfr.ref), ())]
        regimen = values["regimen"] = f"{dose:g} mg {'twice' if per_day == 2 else 'once'} daily"
        action = sx.set_dose(s.resources[d.ref], dose, per_day, f"Set gabapentin to {regimen}")
        return [
            Finding(
                "gabapentinoid-renal-dose",
                "warning",
                values,
                (d.ref, egfr.ref),
                (Suggestion("cap-dose", (action,), recommended=True, label_values={"regimen": regimen}),),
            )
        ]
    return []


@rule(
    "muscle-relaxant",
    hooks=ORDER_HOOKS,
    thresholds=("beers_age",),
    valuesets=("muscle-relaxants", "nsaids", "ketorolac", "lbp-radicular"),
    suggestions=("remove",),
    describes="muscle relaxants with radicular pain, an NSAID, or from age 65 (Beers)",
)
def muscle_relaxant(ctx: RuleContext) -> list[Finding]:
    """When: a skeletal muscle relaxant is being ordered for back pain and the pain is radicular, or an NSAID is
    current, or the patient is 65 or older.
    Then: info (warning at age ≥ 65: AGS Beers, avoid) — no evidence of benefit in radicular pain (ACP 2017), no
    added benefit over an NSAID alone, sedation and falls; suggest removing the order.
    """
    s, t = ctx.snapshot, ctx.thresholds
    drafts = ctx.focused_drafts("muscle-relaxants")
    ep = ctx.episode
    if not drafts or not back_pain_context(s, ep, [d.ref for d in drafts]):
        return []
    reasons = []
    older = s.age is not None and s.age >= t.beers_age
    if older:
        reasons.append(
            f"age {s.age}: AGS Beers Criteria advise avoiding muscle relaxants (sedation, falls, anticholinergic "
            "effects)"
        )
    if ep is not None and ep.radicular:
        reasons.append("radicular pain: muscle relaxants have no evidence of benefit")
    nsaids = ctx.current_courses("nsaids") + ctx.current_courses("ketorolac")
    if nsaids:
        reasons.append(
            f"already on an NSAID ({nsaids[0].display}): adding a muscle relaxant has not shown extra benefit"
        )
    if not reasons:
        return []
    values = {
        "orders": "; ".join(d.display for d in drafts),
        "reasons": "\n".join(f"- {r}" for r in reasons),
        "age": s.age,
    }
    return [
        Finding(
            "muscle-relaxant",
            "warning" if older else "info",
            values,
            tuple(d.ref for d in drafts),
            (_remove(drafts),),
            variant="older" if older else "",
        )
    ]


@rule(
    "benzodiazepine-back-pain",
    hooks=ORDER_HOOKS,
    valuesets=("benzodiazepines", "benzodiazepine-indication"),
    suggestions=("remove",),
    describes="benzodiazepines for back pain",
)
def benzodiazepine_back_pain(ctx: RuleContext) -> list[Finding]:
    """When: a benzodiazepine is being ordered for back pain or sciatica and no anxiety, panic, seizure, withdrawal or
    insomnia indication is recorded (active condition or order reason).
    Then: warning — NICE NG59: do not offer benzodiazepines for low back pain or sciatica; suggest removing the order.
    """
    s = ctx.snapshot
    drafts = ctx.focused_drafts("benzodiazepines")
    ep = ctx.episode
    if (
        not drafts
        or not back_pain_context(s, ep, [d.ref for d in drafts])
        or _has_indication(ctx, "benzodiazepine-indication", drafts)
    ):
        return []
    values = {
        "orders": "; ".join(d.display for d in drafts),
        "conditions": ", ".join(c.display for c in ep.conditions) if ep else "back pain (order reason)",
    }
    return [Finding("benzodiazepine-back-pain", "warning", values, tuple(d.ref for d in drafts), (_remove(drafts),))]


@rule(
    "drug-class-repeat",
    hooks=ORDER_HOOKS,
    valuesets=tuple(REPEAT_CLASSES),
    suggestions=("remove",),
    describes="a drug class repeated within the episode",
)
def drug_class_repeat(ctx: RuleContext) -> list[Finding]:
    """When: a systemic corticosteroid, muscle relaxant, gabapentinoid, opioid or benzodiazepine is being ordered and
    the same class was already given in this back-pain episode (a course or administration on or after the episode
    start, which must be known) — unless it is the renewal of a current course of the same drug.
    Then: info naming the earlier courses (and their stop reason when recorded); suggest removing the repeat order.
    """
    s = ctx.snapshot
    ep = ctx.episode
    if ep is None or ep.earliest_start is None:
        return []
    findings_for: list[tuple[MedicationCourse, str, list[MedicationCourse]]] = []
    for cls, label in REPEAT_CLASSES.items():
        for d in ctx.focused_drafts(cls):
            if d.route not in SYSTEMIC_ROUTES:
                continue
            earlier = [
                c
                for c in s.courses
                if not c.in_draft_orders
                and cls in c.classes
                and c.route in SYSTEMIC_ROUTES
                and c.start is not None
                and c.start >= ep.earliest_start
            ]
            if not earlier or any(c.ingredients & d.ingredients and is_current(c, s.today) for c in earlier):
                continue
            findings_for.append((d, label, earlier))
    if not findings_for:
        return []
    drafts = [d for d, _, _ in findings_for]
    lines = []
    for d, label, earlier in findings_for:
        tried = "; ".join(
            f"{c.display} ({fmt_date(c.start)}, {c.status}{', ' + c.stop_reason if c.stop_reason else ''})"
            for c in earlier
        )
        lines.append(f"- **{d.display}** — {label} already given in this episode: {tried}")
    values = {"repeats": "\n".join(lines), "episode_start": ep.start_text, "first_class": findings_for[0][1]}
    sources = tuple(d.ref for d in drafts) + tuple(c.ref for _, _, earlier in findings_for for c in earlier)
    return [Finding("drug-class-repeat", "info", values, sources, (_remove(drafts),))]
