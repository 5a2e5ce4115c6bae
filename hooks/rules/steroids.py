"""Systemic corticosteroids for back pain (ACP 2017, NICE NG59, Cochrane 2022)."""

from __future__ import annotations

from cds_service.snapshot import MedicationCourse

from .. import suggestions as sx
from ..alternatives import replace_with
from ..catalogue import ALL_HOOKS, rule
from ..clinical import BACK_PAIN, back_pain_context
from ..context import RuleContext
from ..contraindications import (
    NSAID_CONTRAINDICATION_LOOKBACK,
    NSAID_CONTRAINDICATION_SETS,
    NSAID_CONTRAINDICATION_THRESHOLDS,
    nsaid_contraindications,
)
from ..findings import Finding, Suggestion

SYSTEMIC_STEROID_ROUTES = frozenset({"oral", "iv", "im", "sc", "parenteral"})
OTHER_INDICATIONS = frozenset({"steroid-other-indication"})


def is_systemic_steroid(c: MedicationCourse) -> bool:
    """Oral, IV/IM/SC, or a parenteral product with no route. Epidural, caudal, intra-articular, perineural and
    paravertebral use is local (a different recommendation). Route not readable → not systemic (no card)."""
    return "systemic-corticosteroids" in c.classes and c.route in SYSTEMIC_STEROID_ROUTES


@rule(
    "systemic-steroid-back-pain",
    hooks=ALL_HOOKS,
    thresholds=("alternative_supply_days", "chronic_back_pain_days", *NSAID_CONTRAINDICATION_THRESHOLDS),
    lookback=NSAID_CONTRAINDICATION_LOOKBACK,
    valuesets=("systemic-corticosteroids", "steroid-other-indication", *BACK_PAIN, *NSAID_CONTRAINDICATION_SETS),
    suggestions=("replace-naproxen", "replace-acetaminophen", "physio", "refer-physio", "remove", "stop"),
    describes="systemic steroids for back pain",
)
def systemic_steroid_back_pain(ctx: RuleContext) -> list[Finding]:
    """When: a systemic corticosteroid is being ordered (order-select/sign), or an active systemic course exists
    (patient-view), AND there is an active back-pain condition or the order's reason is back pain, AND no other
    steroid indication (an asthma or COPD exacerbation — stable asthma or COPD is none —, inflammatory arthritis, lupus,
    PMR/GCA, adrenal insufficiency, IBD, gout, transplant, active cancer, MS, anaphylaxis…) among active conditions or
    the order's reasons.
    Then: warning — systemic steroids should not be prescribed for low back pain, even radicular; suggest removing
    the order and naproxen, or a physiotherapy referral. With an NSAID contraindication (``nsaid_contraindications``)
    the replacement is acetaminophen and the detail says why no NSAID is advised. A course the service cannot stop (a
    MedicationStatement: the patient's own report) still gets the physiotherapy referral as a new order.
    """
    s = ctx.snapshot
    if ctx.ordering:
        courses = [c for c in s.draft_courses if c.ref in ctx.focus and is_systemic_steroid(c)]
    else:
        courses = [
            c
            for c in s.courses
            if not c.in_draft_orders
            and is_systemic_steroid(c)
            and c.status in ("active", "on-hold")
            and (c.end is None or c.end >= s.today)
        ]
    if not courses:
        return []
    ep = ctx.episode
    if not back_pain_context(s, ep, [c.ref for c in courses]):
        return []
    other = [c for c in s.conditions if c.active and c.valuesets & OTHER_INDICATIONS]
    if other or any(c.reason_valuesets & OTHER_INDICATIONS for c in courses):
        return []
    reasons = [c.display for c in ep.conditions] if ep else []
    reasons += sorted({"order reason: back pain" for c in courses if c.reason_valuesets & BACK_PAIN})
    values = {
        "orders": "; ".join(f"{c.display} ({c.route_text})" for c in courses),
        "conditions": ", ".join(reasons) or "back pain",
        "radicular": " (radicular)" if ep and ep.radicular else "",
    }
    contraindications = nsaid_contraindications(ctx, [c.ref for c in courses])
    values["instead"] = (
        "An NSAID is not advised here: "
        + "; ".join(c.text for c in contraindications)
        + ". Prefer acetaminophen and active physiotherapy."
        if contraindications
        else "Prefer an NSAID if not contraindicated, and active physiotherapy."
    )
    removable = [c for c in courses if c.in_draft_orders or c.ref.startswith("MedicationRequest/")]
    removal = tuple(
        sx.delete(c.ref, f"Remove the steroid order ({c.display})")
        if c.in_draft_orders
        else sx.stop(s.resources[c.ref], f"Stop {c.display}")
        for c in removable
    )
    options: list[Suggestion] = []
    # a new resource of another type: created first, then the steroid removed (clients stop at the first delete)
    physio = sx.referral(
        s.patient_id,
        "physio",
        "routine",
        "Low back pain: active physiotherapy instead of systemic steroids",
        sx.back_pain_reason(),
    )
    if removal:
        alternative = "acetaminophen" if contraindications else "naproxen"
        options.append(
            Suggestion(f"replace-{alternative}", replace_with(ctx, removable, alternative, "steroid"), recommended=True)
        )
        options.append(Suggestion("physio", (physio, *removal)))
        options.append(Suggestion("remove" if ctx.ordering else "stop", removal))
    else:  # nothing the service can stop (a patient-reported course): the referral alone
        options.append(Suggestion("refer-physio", (physio,), recommended=True))
    return [
        Finding(
            "systemic-steroid-back-pain",
            "warning",
            values,
            tuple(c.ref for c in courses) + tuple(c.ref for c in (ep.conditions if ep else ())),
            tuple(options),
            variant="" if ctx.ordering else "active",
        )
    ]
