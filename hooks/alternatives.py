"""The alternatives a rule offers in place of a drug: naproxen, ibuprofen or acetaminophen, shaped so every client
applies them whole (``suggestions.replacement``), with NSAIDs offered only where ``nsaid_contraindications`` finds
none."""

from __future__ import annotations

from typing import Any

from cds_service.snapshot import MedicationCourse

from . import suggestions as sx
from .context import RuleContext
from .contraindications import nsaid_contraindications
from .findings import Suggestion


def replace_with(
    ctx: RuleContext, courses: list[MedicationCourse], name: str, label: str
) -> tuple[dict[str, Any], ...]:
    """Actions replacing ``courses`` (the ``label`` orders) by the alternative ``name`` (``suggestions.replacement``:
    the draft updated in place, or the new order created before the old ones are removed)."""
    s = ctx.snapshot
    display, text = sx.ALTERNATIVES[name][1], sx.ALTERNATIVES[name][4]
    return sx.replacement(
        s.patient_id,
        name,
        [(s.resources[c.ref], c.ref, c.in_draft_orders) for c in courses],
        f"Replace the {label} order with {display.lower()}: {text}",
        int(ctx.thresholds.alternative_supply_days),
    )


def alternative_analgesic(ctx: RuleContext, drafts: list[MedicationCourse], label: str) -> Suggestion:
    """Replace the drafts by naproxen 500 mg twice daily — or acetaminophen when an NSAID is contraindicated
    (``nsaid_contraindications``: every rule that suggests an NSAID checks the same reasons)."""
    name = "acetaminophen" if nsaid_contraindications(ctx, [d.ref for d in drafts]) else "naproxen"
    return Suggestion(f"replace-{name}", replace_with(ctx, drafts, name, label), recommended=True)
