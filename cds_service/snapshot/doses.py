"""What a medication record says of its dose and route, as plain data: the route words of dose forms and free text, the
strength one unit of a product holds (from its name or its Medication's ingredient), the dose as written and in mg,
and how many dispensed units a day of doses uses."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

from .fields import _obj, _str

# Dose-form and free-text route words → (route class, label). Order matters: local forms first.
ROUTE_WORDS: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(p, re.I), cls, label)
    for p, cls, label in [
        (r"ophthalm|eye drop|\bocular\b|intraocular|intravitreal", "local", "ophthalmic"),
        (
            r"epidural|caudal|intrathecal|intra-?articular|perineural|paravertebral|intradiscal|intralesional|"
            r"intrabursal|periarticular|intrasynovial|intratendinous|intraspinal",
            "local",
            "local injection",
        ),
        (r"topical|cream|ointment|\bgel\b|lotion|\botic\b|\bfoam\b|dental|paste|\benema\b", "local", "topical"),
        (r"inhal|nebuli", "local", "inhaled"),
        (r"nasal", "nasal", "intranasal"),
        (r"transdermal|\bpatch\b", "transdermal", "transdermal"),
        (r"rectal|suppositor", "rectal", "rectal"),
        (r"intravenous|\bi\.?v\.?\b", "iv", "IV"),
        (r"intramuscular|\bi\.?m\.?\b", "im", "IM"),
        (r"subcutaneous|\bs\.?c\.?\b|\bsq\b", "sc", "SC"),
        (r"injection|injectable|syringe|cartridge|\bvial\b|auto-?injector", "parenteral", "injection"),
        (
            r"\boral\b|tablet|\btabs?\b|capsule|\bcaps?\b|by "
            r"mouth|\bp\.?o\.?\b|syrup|elixir|chewable|lozenge|sublingual|buccal",
            "oral",
            "oral",
        ),
    ]
]
ROUTE_LABELS = {
    "oral": "oral",
    "iv": "IV",
    "im": "IM",
    "sc": "SC",
    "parenteral": "injection",
    "nasal": "intranasal",
    "rectal": "rectal",
    "transdermal": "transdermal",
    "local": "local",
}
STRENGTH_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*MG(?:\s*/\s*(\d+(?:\.\d+)?)?\s*(ML|ACTUAT))?", re.I)
COUNT_UNITS = {
    "tab",
    "tabs",
    "tablet",
    "tablets",
    "{tbl}",
    "{tablet}",
    "{pill}",
    "pill",
    "cap",
    "caps",
    "capsule",
    "capsules",
    "{cap}",
    "{capsule}",
    "1",
    "{each}",
    "each",
    "ea",
    "{dose}",
    "dose",
}
WEIGHED = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001, "µg": 0.001, "μg": 0.001}  # unit → mg (UCUM and text)


class Strength(NamedTuple):
    """What one unit of a product holds: ``mg`` per tablet/capsule (``per`` ""), or ``mg`` per ``per_amount`` mL
    (``per`` "ML") or per actuation (``per`` "ACTUAT")."""

    mg: float
    per_amount: float | None
    per: str


class Dose(NamedTuple):
    mg: float | None = None  # per administration, when readable
    per_day: float | None = None
    amount: float | None = None  # as written
    unit: str = ""  # as written, lower-case
    strength: Strength | None = None  # of the product

    @property
    def count_unit(self) -> str | None:
        """The unit when the dose is counted (tablets, capsules, doses…), not weighed (mg, µg) or measured (mL)."""
        return self.unit if self.unit in COUNT_UNITS else None

    def units_per_dose(self, quantity_unit: str) -> float | None:
        """How many of a dispensed quantity's units one dose uses: the dose as written when it counts the same units
        (tablets for tablets; a unit-less quantity counts what the dose counts), or a weighed dose converted with the
        product's strength (10 mg of a 10 mg tablet is one tablet; 15 mg of a 30 mg/mL solution is 0.5 mL)."""
        if self.amount is None:
            return None
        if self.count_unit is not None:
            if quantity_unit in COUNT_UNITS or quantity_unit in (self.count_unit, ""):
                return self.amount
            return None
        if self.mg is None and self.unit == quantity_unit:  # measured in the quantity's own unit (5 mL of mL)
            return self.amount
        if self.mg is None or self.strength is None or self.strength.mg <= 0:
            return None  # a µg or mL dose is never a count of tablets or "each"
        if not self.strength.per and (quantity_unit in COUNT_UNITS or quantity_unit == ""):
            return self.mg / self.strength.mg
        if self.strength.per == "ML" and quantity_unit == "ml":
            return self.mg / (self.strength.mg / (self.strength.per_amount or 1))
        return None


def units_per_day(resource: dict[str, Any], dose: Dose) -> float | None:
    """How many of the order's dispensed units (``dispenseRequest.quantity``'s unit) a day of doses uses: 4 tablets for
    "10 mg every 6 hours" of a 10 mg tablet. None without a quantity, or when the dose does not convert to its unit."""
    quantity = _obj(_obj(resource, "dispenseRequest"), "quantity")
    if not quantity or not dose.per_day:
        return None
    per_dose = dose.units_per_dose(_str(quantity.get("code") or quantity.get("unit")).strip().lower())
    return per_dose * dose.per_day if per_dose else None


@lru_cache(maxsize=4096)
def name_strength(name: str) -> Strength | None:
    """The one strength in a product name: ``10 MG Oral Tablet`` → 10 mg per unit, ``30 MG/ML`` → 30 mg per mL; None
    when the name has no strength or more than one (a combination product: which ingredient a mg dose means is unknown).

    Product names repeat across orders and calls, so the answer is memoised (names only, no patient data)."""
    found = STRENGTH_PATTERN.findall(name)
    if len(found) != 1:
        return None
    mg, per_amount, per = found[0]
    return Strength(float(mg), float(per_amount) if per_amount else None, per.upper())


COUNT_DENOMINATORS = COUNT_UNITS | {"tablet", "{tablet}", "capsule", "{capsule}", "tab", "{tab}"}


def ratio_strength(ratio: Any) -> Strength | None:
    """A Medication ingredient's ``strength`` Ratio: mg (or g) per one countable unit, or per so many mL."""
    numerator, denominator = _obj(ratio, "numerator"), _obj(ratio, "denominator")
    value, per = numerator.get("value"), denominator.get("value", 1)
    if (
        not isinstance(value, (int, float))
        or not isinstance(per, (int, float))
        or isinstance(value, bool)
        or value <= 0
        or per <= 0
    ):
        return None
    unit = _str(numerator.get("code") or numerator.get("unit")).strip().lower()
    mg = value * 1000 if unit == "g" else value if unit == "mg" else None
    if mg is None:
        return None
    per_unit = _str(denominator.get("code") or denominator.get("unit")).strip().lower()
    if per_unit == "ml":
        return Strength(float(mg), float(per), "ML")
    if per_unit in COUNT_DENOMINATORS or not per_unit:
        return Strength(float(mg) / per, None, "")
    return None
