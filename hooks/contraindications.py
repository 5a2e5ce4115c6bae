"""Why an NSAID must not be given: the ketorolac label's contraindications, which every rule also checks before it
suggests an NSAID (one list, ``nsaid_contraindications``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from .context import RuleContext

# What ``nsaid_contraindications`` reads — declared by every rule that calls it (directly or through an alternative).
NSAID_CONTRAINDICATION_SETS = (
    "gi-bleed-ulcer",
    "renal-severe",
    "bleeding-disorder",
    "anticoagulant-use",
    "egfr",
    "nsaids",
    "ketorolac",
    "ketorolac-interacting",
    "anticoagulants",
    "pregnancy",
    "pregnancy-status",
    "not-pregnant",
    "gestational-age",
    "delivery-date-estimated",
    "gestation-weeks",
    "pregnancy-third-trimester",
    "labour",
)
NSAID_CONTRAINDICATION_THRESHOLDS = (
    "ketorolac_contraindicated_egfr",
    "nsaid_avoid_gestation_weeks",
    "pregnancy_max_days",
)
NSAID_CONTRAINDICATION_LOOKBACK = ("lab_lookback_days", "pregnancy_max_days")


class Contraindication(NamedTuple):
    text: str  # "history of peptic ulcer / GI bleeding: <display>"
    ref: str  # the record it rests on
    critical: bool  # False: a caution (anticoagulant, a pregnancy before 20 weeks or of unknown age)
    kind: str = ""  # of a caution: "bleeding" (an anticoagulant) or "pregnancy"


# Complexity: one branch per contraindication of the ketorolac label, in the label's order.
def nsaid_contraindications(  # noqa: C901
    ctx: RuleContext, replacing: Iterable[str] = (), ketorolac: bool = False
) -> list[Contraindication]:
    """Why an NSAID must not be given — the ketorolac label's contraindications, which every rule also checks before it
    suggests an NSAID (naproxen, ibuprofen): peptic ulcer or GI bleeding (ever), advanced renal impairment (CKD 4–5,
    dialysis, AKI, or eGFR below ``ketorolac_contraindicated_egfr``), a bleeding disorder or cerebrovascular
    bleeding, an NSAID/aspirin allergy, a current other NSAID or aspirin (any dose), probenecid or pentoxifylline,
    pregnancy from ``nsaid_avoid_gestation_weeks`` weeks or labour (FDA 2020) — critical; an anticoagulant, or a
    pregnancy of unknown or earlier gestational age — a caution. ``replacing``: the orders the NSAID would replace
    (not counted as concurrent). ``ketorolac``: the drug in question is ketorolac itself (its other courses are then
    its own exposure, not a second NSAID)."""
    s, t = ctx.snapshot, ctx.thresholds
    skip = set(replacing)
    found: list[Contraindication] = []
    for c in s.conditions:
        if "gi-bleed-ulcer" in c.valuesets:
            found.append(Contraindication(f"history of peptic ulcer / GI bleeding: {c.display}", c.ref, True))
        elif c.active and "renal-severe" in c.valuesets:
            found.append(Contraindication(f"advanced renal impairment: {c.display}", c.ref, True))
        elif c.active and "bleeding-disorder" in c.valuesets:
            found.append(Contraindication(f"bleeding disorder or cerebrovascular bleeding: {c.display}", c.ref, True))
        elif c.active and "anticoagulant-use" in c.valuesets:
            found.append(Contraindication(f"anticoagulation: {c.display}", c.ref, False, "bleeding"))
    egfr = ctx.egfr
    if egfr is not None and egfr.value is not None and egfr.value < t.ketorolac_contraindicated_egfr:
        found.append(
            Contraindication(
                f"advanced renal impairment: eGFR {egfr.value:g} on {egfr.effective} "
                f"(< {t.ketorolac_contraindicated_egfr:g})",
                egfr.ref,
                True,
            )
        )
    for a in s.allergies:
        if a.valuesets & {"nsaids", "ketorolac"}:
            found.append(Contraindication(f"allergy or intolerance: {a.display}", a.ref, True))
    preg = ctx.pregnancy
    if preg is not None:
        late = preg.weeks is not None and preg.weeks >= t.nsaid_avoid_gestation_weeks
        found.append(Contraindication(preg.text, preg.record, late, "pregnancy"))
    classes = ("nsaids",) if ketorolac else ("nsaids", "ketorolac")
    for cls in classes:
        for course in ctx.current_courses(cls, exclude=skip):
            found.append(Contraindication(f"concurrent NSAID/aspirin: {course.display}", course.ref, True))
    for course in ctx.current_courses("ketorolac-interacting", exclude=skip):
        found.append(
            Contraindication(f"concurrent {', '.join(sorted(course.ingredients))}: {course.display}", course.ref, True)
        )
    for course in ctx.current_courses("anticoagulants", exclude=skip):
        found.append(Contraindication(f"concurrent anticoagulant: {course.display}", course.ref, False, "bleeding"))
    return sorted(found, key=lambda c: not c.critical)  # critical first, each group in record order
