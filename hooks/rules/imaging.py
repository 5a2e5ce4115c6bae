"""Imaging and referral triggers without red flags — early imaging, persistent radicular pain, repeat imaging, referral
timing (ACR Appropriateness Criteria Low Back Pain 2021, ACP/APS 2007, NICE NG59); red flags: ``red_flags``."""

from __future__ import annotations

from datetime import date, timedelta

from .. import suggestions as sx
from ..catalogue import ORDER_HOOKS, rule
from ..clinical import (
    BACK_PAIN,
    CROSS_SECTIONAL,
    FINDINGS_KEY,
    LUMBAR_IMAGING,
    RADICULAR,
    SPINE_REFERRAL,
    conservative_care,
    draft_orders,
    fmt_date,
    prior_orders,
)
from ..context import RuleContext
from ..findings import Finding, Suggestion


@rule(
    "imaging-early",
    hooks=ORDER_HOOKS,
    thresholds=("imaging_early_days", "chronic_back_pain_days"),
    lookback=("long_term_steroid_days",),
    valuesets=(*LUMBAR_IMAGING, *BACK_PAIN),
    suggestions=("physio", "cancel"),
    describes="lumbar imaging in the first 6 weeks without red flags",
)
def imaging_early(ctx: RuleContext) -> list[Finding]:
    """When: a lumbar imaging order (MRI, CT, radiographs) is being ordered for back pain, the episode started
    no more than 42 days ago for certain (every back-pain condition dated by its onset), and no red flag of either tier
    (injection drug use counts: a risk tier of its own). Where a condition is dated only by when it was recorded (an
    upper bound on its onset), the card says "first recorded N days ago" and that the advice does not apply if the pain
    began more than 6 weeks ago; a chronic back-pain code (12 weeks or more) gives no card.
    Then: warning (ACR 2021 var. 1–2; Choosing Wisely); suggest cancelling the imaging and referring to
    physiotherapy, reassessing at 6 weeks. Unknown onset → no card. When the findings recorded as Observations could
    not be obtained (optional key unavailable), the card says the problem list had no red flag and the examination's
    findings were not read, instead of "no red flags".
    """
    s, t = ctx.snapshot, ctx.thresholds
    orders = draft_orders(s, LUMBAR_IMAGING, ctx.focus)
    if not orders:
        return []
    ep = ctx.episode
    if ep is None or ctx.red_flags:
        return []
    certain = ep.certainly_within(s.today, t.imaging_early_days)
    if not certain and not ep.recorded_within(s.today, t.imaging_early_days):
        return []  # onset unknown, older than 6 weeks, or a chronic back-pain code
    assert ep.earliest_start is not None
    reassess = ep.earliest_start + timedelta(days=int(t.imaging_early_days))
    onset_note = (
        ""
        if certain
        else (
            "\n\nThe onset was not recorded — only when the problem was recorded. If the pain began more than "
            f"{int(t.imaging_early_days) // 7} weeks ago, this advice does not apply."
        )
    )
    values = {
        "orders": "; ".join(o.display for o in orders),
        "episode_start": ep.start_text,
        "began": "began" if certain else "was first recorded",
        "onset_note": onset_note,
        "episode_days": (s.today - ep.earliest_start).days,
        "weeks": int(t.imaging_early_days) // 7,
        "reassess": fmt_date(reassess),
        "conditions": ", ".join(c.display for c in ep.conditions),
    }
    deletes = tuple(sx.delete(o.ref, f"Cancel {o.display}") for o in orders)
    physio = sx.referral(
        s.patient_id,
        "physio",
        "routine",
        f"Acute low back pain without red flags; reassess on {reassess.isoformat()}",
        sx.back_pain_reason(),
    )
    # Findings recorded as Observations could not be obtained: say what was checked rather than "no red flags".
    variant = "findings-unread" if FINDINGS_KEY in s.unavailable else ""
    return [
        Finding(
            "imaging-early",
            "warning",
            values,
            tuple(o.ref for o in orders) + tuple(c.ref for c in ep.conditions),
            (Suggestion("physio", (physio, *deletes), recommended=True), Suggestion("cancel", deletes)),
            variant,
        )
    ]


def mri_due(ctx: RuleContext) -> list[str]:
    """The conservative therapy on record when a radicular episode has lasted over 6 weeks for certain and no lumbar
    MRI/CT was done in 12 months (ordered, performed, an ImagingStudy or a radiology DiagnosticReport): MRI is then
    appropriate for a candidate for surgery or epidural injection. Empty when it is not."""
    s, t = ctx.snapshot, ctx.thresholds
    ep = ctx.episode
    if ep is None or not ep.radicular or not ep.certainly_older(s.today, t.persistent_radicular_days):
        return []
    if prior_orders(s, CROSS_SECTIONAL, s.today - timedelta(days=t.imaging_repeat_days)):
        return []
    return conservative_care(s, t)


MRI_NOTE = "Radicular pain > 6 weeks despite conservative care; candidate for surgery or epidural steroid injection?"


@rule(
    "imaging-persistent-radicular",
    hooks=("patient-view",),
    thresholds=("persistent_radicular_days", "imaging_repeat_days", "conservative_care_lookback_days"),
    lookback=("imaging_repeat_days", "conservative_care_lookback_days", "long_term_steroid_days"),
    valuesets=(*RADICULAR, *CROSS_SECTIONAL, "physical-therapy"),
    suggestions=("order-mri", "refer"),
    describes="persistent radicular pain without recent MRI",
)
def imaging_persistent_radicular(ctx: RuleContext) -> list[Finding]:
    """When (patient-view): a radicular back-pain episode started more than 42 days ago for certain, conservative
    therapy is on record (NSAID, acetaminophen, muscle relaxant, duloxetine, physical therapy), no lumbar MRI/CT in
    the last 12 months (ordered, performed, an ImagingStudy, or a radiology DiagnosticReport), and no red flag (the
    red-flag card covers those patients).
    Then: info — MRI is appropriate if the patient is a candidate for surgery or epidural steroid injection; suggest
    MRI lumbar spine without contrast, or a referral to an orthopaedic spine surgeon. On order hooks an MRI being
    ordered is appropriate: no card. (Superseded by referral-spine once a referral is due: one problem, one card, one
    referral.)
    """
    s = ctx.snapshot
    ep = ctx.episode
    therapy = mri_due(ctx)
    if ep is None or not therapy or ctx.red_flags:
        return []
    values = {
        "episode_start": ep.start_text,
        "weeks": ep.weeks_text(s.today),
        "conditions": ", ".join(c.display for c in ep.conditions if c.valuesets & {"lbp-radicular"}),
        "therapy": "\n".join(f"- {x}" for x in therapy[:6]),
    }
    reason = sx.back_pain_reason()
    return [
        Finding(
            "imaging-persistent-radicular",
            "info",
            values,
            tuple(c.ref for c in ep.conditions),
            (
                Suggestion(
                    "order-mri", (sx.imaging(s.patient_id, "mri", "routine", MRI_NOTE, reason),), recommended=True
                ),
                Suggestion("refer", (sx.referral(s.patient_id, "orthopaedic", "routine", MRI_NOTE, reason),)),
            ),
        )
    ]


@rule(
    "imaging-repeat",
    hooks=ORDER_HOOKS,
    thresholds=("imaging_repeat_days",),
    lookback=("imaging_repeat_days", "long_term_steroid_days"),
    valuesets=tuple(CROSS_SECTIONAL),
    suggestions=("cancel",),
    describes="lumbar MRI/CT repeated within 12 months",
)
def imaging_repeat(ctx: RuleContext) -> list[Finding]:
    """When: a lumbar MRI/CT is being ordered, a lumbar MRI/CT was done or ordered in the last 12 months (a
    ServiceRequest, Procedure, ImagingStudy or radiology DiagnosticReport), and no red flag has been recorded since that
    imaging (an undated red flag counts as possibly new: no card).
    Then: info — do not repeat MRI without new neurological findings or a surgical question; suggest cancelling.
    """
    s, t = ctx.snapshot, ctx.thresholds
    orders = draft_orders(s, CROSS_SECTIONAL, ctx.focus)
    if not orders:
        return []
    cutoff = s.today - timedelta(days=t.imaging_repeat_days)
    prior = [o for o in prior_orders(s, CROSS_SECTIONAL, cutoff) if o.when is not None]
    if not prior:
        return []
    last = max(prior, key=lambda o: o.when.latest)  # type: ignore[union-attr]
    last_date: date = last.when.latest  # type: ignore[union-attr]
    if any(f.since is None or f.since >= last_date for f in ctx.red_flags):
        return []
    months_ago = (s.today - last_date).days // 30
    values = {
        "orders": "; ".join(o.display for o in orders),
        "prior": f"{last.display} ({last.when}, {last.ref})",
        "months": int(t.imaging_repeat_days // 30),
        "prior_when": f"on {last.when} ({months_ago} month{'s' if months_ago != 1 else ''} ago)"
        if months_ago
        else f"on {last.when} (this month)",
    }
    deletes = tuple(sx.delete(o.ref, f"Cancel {o.display}") for o in orders)
    return [
        Finding(
            "imaging-repeat",
            "info",
            values,
            tuple(o.ref for o in orders) + (last.ref,),
            (Suggestion("cancel", deletes, recommended=True),),
        )
    ]


@rule(
    "referral-spine",
    hooks=("patient-view",),
    supersedes=("imaging-persistent-radicular",),
    thresholds=(
        "referral_radicular_days",
        "persistent_radicular_days",
        "imaging_repeat_days",
        "conservative_care_lookback_days",
    ),
    lookback=("imaging_repeat_days", "conservative_care_lookback_days"),
    valuesets=(*SPINE_REFERRAL, *RADICULAR, *CROSS_SECTIONAL),
    suggestions=("refer-orthopaedic", "mri-and-refer"),
    describes="overdue spine referral for radicular pain",
)
def referral_spine(ctx: RuleContext) -> list[Finding]:
    """When (patient-view): a radicular back-pain condition and either a severe or progressive motor deficit with no
    spine referral on record (refer within 2 weeks), or an episode of 12 weeks or more for certain with no spine or
    pain-management referral on record (specialist assessment by 3 months).
    Then: warning naming the patient's own duration; one referral suggestion — an orthopaedic spine surgeon, the
    specialty the summary names (urgent with a deficit) — and, when an MRI is also due (``mri_due``: over 6 weeks,
    conservative care tried, no MRI/CT in 12 months), the same referral with the MRI. It supersedes
    imaging-persistent-radicular, whose facts it carries: one problem, one card, and accepting it creates one referral.
    """
    s, t = ctx.snapshot, ctx.thresholds
    ep = ctx.episode
    if ep is None or not ep.radicular or prior_orders(s, SPINE_REFERRAL):
        return []
    deficit = [f for f in ctx.red_flags if f.kind == "rf-motor-deficit"]
    if deficit:
        values = {
            "why": f"severe or progressive motor deficit: {deficit[0].display} ({deficit[0].record})",
            "when": "within 2 weeks",
            "episode_start": ep.start_text,
        }
        priority, variant = "urgent", "deficit"
    elif ep.certainly_older(s.today, t.referral_radicular_days - 1):
        weeks = ep.weeks_text(s.today)
        values = {
            "why": f"radicular pain for {weeks} with no specialist referral",
            "weeks": weeks,
            "when": "now (specialist assessment by 3 months)",
            "episode_start": ep.start_text,
        }
        priority, variant = "routine", "persistent"
    else:
        return []
    values["conditions"] = ", ".join(c.display for c in ep.conditions if "lbp-radicular" in c.valuesets)
    reason = sx.back_pain_reason()
    note = "Radicular low back pain: " + values["why"]
    refer = sx.referral(s.patient_id, "orthopaedic", priority, note, reason)
    options = [Suggestion("refer-orthopaedic", (refer,), recommended=True)]
    therapy = mri_due(ctx) if variant == "persistent" else []
    values["mri"] = ""
    if therapy:
        values["mri"] = (
            "\n\nNo lumbar MRI or CT in the last 12 months, after conservative therapy:\n"
            + "\n".join(f"- {x}" for x in therapy[:6])
            + "\n\nMRI lumbar spine without contrast is appropriate if the patient is a candidate for surgery or "
            "epidural steroid injection (ACR 2021, variant 3)."
        )
        options.append(
            Suggestion("mri-and-refer", (sx.imaging(s.patient_id, "mri", "routine", MRI_NOTE, reason), refer))
        )
    return [
        Finding(
            "referral-spine",
            "warning",
            values,
            tuple(c.ref for c in ep.conditions),
            tuple(options),
            variant=variant,
            covers=("imaging-persistent-radicular",) if therapy else (),
        )
    ]
