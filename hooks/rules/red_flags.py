"""Red flags in back pain: urgent imaging and referral, by tier (ACR Appropriateness Criteria Low Back Pain 2021
variants 4–7; ACP/APS 2007 and ACP 2011 high-value imaging advice)."""

from __future__ import annotations

from .. import suggestions as sx
from ..catalogue import ALL_HOOKS, rule
from ..clinical import (
    EMERGENCY,
    FEVER_WITH,
    LUMBAR_IMAGING,
    RED_FLAG_KINDS,
    RISK,
    SPINE_REFERRAL,
    Episode,
    RedFlag,
    back_pain_context,
    draft_orders,
    fmt_date,
    prior_orders,
)
from ..context import RuleContext
from ..findings import Finding, Suggestion

# work-up → (study, priority)
WORKUP = {
    "mri-emergency": ("mri", "stat"),
    "mri-contrast-urgent": ("mri-contrast", "stat"),
    "mri-contrast": ("mri-contrast", "urgent"),
    "mri": ("mri", "urgent"),
    "xray": ("xray", "routine"),
}
WORKUP_ORDER = ["mri-emergency", "mri-contrast-urgent", "mri-contrast", "mri", "xray"]
# The summary, the detail and the suggestion label name the same study and specialty as the suggested ServiceRequests.
WORKUP_SHORT = {
    "mri-emergency": "emergency MRI and same-day neurosurgery referral",
    "mri-contrast-urgent": "urgent MRI with/without contrast, same-day neurosurgery referral",
    "mri-contrast": "MRI with and without contrast and orthopaedic spine referral",
    "mri": "MRI and orthopaedic spine referral",
    "xray": "lumbar radiographs",
}
WORKUP_TEXT = {
    "mri-emergency": "emergency MRI lumbar spine without contrast (CPT 72148) and same-day neurosurgery referral",
    "mri-contrast-urgent": (
        "urgent MRI lumbar spine without and with contrast (CPT 72158) and same-day neurosurgery referral"
    ),
    "mri-contrast": "MRI lumbar spine without and with contrast (CPT 72158) and orthopaedic spine referral",
    "mri": "MRI lumbar spine without contrast (CPT 72148) and orthopaedic spine referral",
    "xray": "lumbar spine radiographs first (CPT 72100)",
}


@rule(
    "imaging-red-flags",
    hooks=ALL_HOOKS,
    supersedes=("referral-spine", "imaging-repeat"),
    thresholds=(
        "fever_celsius",
        "long_term_steroid_days",
        "fracture_risk_age_male",
        "fracture_risk_age_female",
        "chronic_back_pain_days",
    ),
    lookback=("long_term_steroid_days",),
    valuesets=(
        *RED_FLAG_KINDS,
        *FEVER_WITH,
        "rf-fever",
        "rf-injection-drug-use",
        "body-temperature",
        *LUMBAR_IMAGING,
        *SPINE_REFERRAL,
    ),
    suggestions=(
        "order-mri-emergency",
        "order-mri-contrast-urgent",
        "order-mri-contrast",
        "order-mri",
        "order-xray",
        "imaging-only",
        "refer",
    ),
    describes="red flags needing urgent imaging or referral",
)
def imaging_red_flags(ctx: RuleContext) -> list[Finding]:
    """When: a back-pain patient has red flags — emergency tier (cauda equina signs, severe/progressive motor
    deficit, suspected spinal infection) or prompt tier (cancer or its history, unexplained weight loss,
    immunosuppression, fracture risk, other neurologic findings) — and no lumbar imaging or spine referral is
    under way (none drafted now, none on record since the flag).
    Injection drug use with no fever recorded (RISK tier) gives an info card asking for a temperature and inflammatory
    markers, with no order suggested.
    Then: critical (emergency tier) or warning (prompt tier), naming each flag and its record; suggest the
    indicated study (MRI without contrast for neurologic emergencies, MRI with and without contrast for cancer
    or infection, radiographs for fracture risk) and a spine referral.
    """
    s = ctx.snapshot
    ep = ctx.episode
    if not back_pain_context(s, ep, s.draft_refs):
        return []
    flags = _unaddressed(ctx, ep, ctx.red_flags)
    if not flags:
        return []
    listed = "\n".join(
        f"- **{f.label}** — {f.display} ({f.record}{_when(f)})"
        + (f"; with {f.with_display} ({f.with_record})" if f.with_record else "")
        for f in flags
    )
    records = tuple(dict.fromkeys(r for f in flags for r in f.records))
    serious = [f for f in flags if f.tier != RISK]
    if not serious:  # injection drug use without a recorded fever: ask for the work-up, order nothing yet
        return [Finding("imaging-red-flags", "info", {"flags": listed}, records, variant="risk")]
    emergency = any(f.tier == EMERGENCY for f in flags)
    workup = min({f.workup for f in serious}, key=WORKUP_ORDER.index)
    study, priority = WORKUP[workup]
    age_note = _age_note(ctx, flags)
    values = {
        "flags": listed,
        "first_flag": serious[0].label if not emergency else next(f.label for f in flags if f.tier == EMERGENCY),
        "workup": WORKUP_TEXT[workup],
        "workup_short": WORKUP_SHORT[workup],
        "age_note": age_note,
    }
    reason = sx.back_pain_reason()
    note = "Red flags: " + "; ".join(sorted({f.label for f in flags}))
    actions = [sx.imaging(s.patient_id, study, priority, note, reason)]
    referral_priority = "stat" if emergency else "urgent"
    if workup != "xray":
        actions.append(
            sx.referral(s.patient_id, "neurosurgeon" if emergency else "orthopaedic", referral_priority, note, reason)
        )
    options = [Suggestion(f"order-{workup}", tuple(actions), recommended=True)]
    if len(actions) > 1:
        options.append(Suggestion("imaging-only", (actions[0],)))
    elif workup == "xray":
        # the referral at the study's own priority (radiographs first for fracture risk: a referral is not more urgent)
        options.append(Suggestion("refer", (sx.referral(s.patient_id, "orthopaedic", priority, note, reason),)))
    return [
        Finding(
            "imaging-red-flags",
            "critical" if emergency else "warning",
            values,
            records,
            tuple(options),
            variant="emergency" if emergency else "prompt",
        )
    ]


def _unaddressed(ctx: RuleContext, ep: Episode | None, flags: list[RedFlag]) -> list[RedFlag]:
    """The flags no imaging or spine referral answers yet. On order hooks, one being drafted now answers them all (the
    clinician is acting). Otherwise each flag is judged on its own: answered by such an order on record on or after the
    flag's own date — a study done months before a new cauda equina sign does not answer it; an undated flag by one
    since the episode began, and by none when the episode's start is unknown too."""
    s = ctx.snapshot
    if ctx.ordering and draft_orders(s, LUMBAR_IMAGING | SPINE_REFERRAL):
        return []
    start = ep.earliest_start if ep is not None else None
    return [
        f
        for f in flags
        if (since := f.since or start) is None or not prior_orders(s, LUMBAR_IMAGING | SPINE_REFERRAL, since)
    ]


def _when(flag: RedFlag) -> str:
    if flag.since is None:
        return ""
    return f", {'observed' if flag.record.startswith('Observation/') else 'since'} {fmt_date(flag.since)}"


def _age_note(ctx: RuleContext, flags: list[RedFlag]) -> str:
    s, t = ctx.snapshot, ctx.thresholds
    if s.age is None or not any(f.kind in ("rf-fracture-risk", "rf-malignancy") for f in flags):
        return ""
    threshold = (
        t.fracture_risk_age_male if s.sex == "male" else t.fracture_risk_age_female if s.sex == "female" else None
    )
    if threshold is not None and s.age >= threshold:
        return f"\n\nAge {s.age} ({s.sex}) adds weight to the fracture/cancer risk."
    return ""
