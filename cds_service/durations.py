"""The one duration normaliser: every date and duration shape of a medication course converts here.

Day arithmetic is on calendar dates, as recorded (the date part of a FHIR dateTime in its own offset).
A supply of N days starting on day S covers days S … S+N−1. Partial dates (``2024``, ``2024-02``) are
kept as an interval (earliest, latest) so a rule can ask "certainly before" or "certainly after".
"""

from __future__ import annotations

import math
import re
from datetime import date, timedelta
from typing import Any, NamedTuple

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")

# UCUM (and common free-text) duration units → days per unit.
_UNIT_DAYS = {
    "min": 1 / 1440,
    "minute": 1 / 1440,
    "minutes": 1 / 1440,
    "h": 1 / 24,
    "hr": 1 / 24,
    "hour": 1 / 24,
    "hours": 1 / 24,
    "d": 1,
    "day": 1,
    "days": 1,
    "wk": 7,
    "week": 7,
    "weeks": 7,
    "mo": 30,
    "month": 30,
    "months": 30,
    "a": 365,
    "year": 365,
    "years": 365,
}
MAX_DAYS = 36_500
# Timing.repeat.periodUnit → fraction of a day.
_PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "wk": 7, "mo": 30, "a": 365}


class FuzzyDate(NamedTuple):
    """A calendar date known to lie within [earliest, latest] (equal for a full date). Immutable and cheap to build
    (a snapshot makes hundreds per call)."""

    earliest: date
    latest: date

    @property
    def exact(self) -> bool:
        return self.earliest == self.latest

    def __str__(self) -> str:
        if self.exact:
            return self.earliest.isoformat()
        if self.earliest.month == 1 and self.latest.month == 12:
            return str(self.earliest.year)
        return self.earliest.strftime("%Y-%m")


def parse_date(value: Any) -> FuzzyDate | None:
    """FHIR date/dateTime/instant → FuzzyDate; None when unreadable."""
    if not isinstance(value, str):
        return None
    if _is_full(value):
        d = _full_date(value)
        return FuzzyDate(d, d) if d is not None else None
    m = _DATE.match(value.strip())
    if not m:
        return None
    year, month, day = int(m.group(1)), m.group(2), m.group(3)
    try:
        if day:
            d = date(year, int(month), int(day))
            return FuzzyDate(d, d)
        if month:
            first = date(year, int(month), 1)
            nxt = date(year + (first.month == 12), first.month % 12 + 1, 1)
            return FuzzyDate(first, nxt - timedelta(days=1))
        return FuzzyDate(date(year, 1, 1), date(year, 12, 31))
    except ValueError:
        return None


def _is_full(value: str) -> bool:
    """The common case, a full date or dateTime (``2026-11-22``, ``2026-11-22T08:00:00-05:00``): read at C speed."""
    return len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-" and (len(value) == 10 or value[10] == "T")


def _full_date(value: str) -> date | None:
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None  # shaped like a full date but not a real one (2025-02-30)


def exact_date(value: Any) -> date | None:
    """A full date, or None (partial or unreadable dates are not exact)."""
    if not isinstance(value, str):
        return None
    if _is_full(value):
        return _full_date(value)
    parsed = parse_date(value)
    return parsed.earliest if parsed and parsed.exact else None


def duration_days(quantity: Any) -> float | None:
    """A FHIR Duration/Quantity → days (float); None when the unit is unknown or value missing/negative."""
    if not isinstance(quantity, dict):
        return None
    value = quantity.get("value")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or not math.isfinite(value):
        return None
    unit = quantity.get("code") or quantity.get("unit")
    if not isinstance(unit, str):
        return None
    per = _UNIT_DAYS.get(unit.strip().lower()) if unit not in _UNIT_DAYS else _UNIT_DAYS[unit]
    if per is None:
        return None
    days = float(value * per)  # a float in both builds (compiled code converts an int for the annotation)
    return days if days <= MAX_DAYS else None  # beyond a century the record is unreadable, not a real plan


def calendar_days(days: float) -> int:
    """Whole calendar days a duration covers: 120 h → 5, 121 h → 6, 1 wk → 7."""
    return max(1, math.ceil(round(days, 6)))


def last_day(start: date, days: float) -> date:
    """Last calendar day of a supply of ``days`` starting on ``start`` (3 days from the 22nd → the 24th)."""
    return start + timedelta(days=calendar_days(days) - 1)


def span_days(first: date, last: date) -> int:
    """Calendar days from first to last inclusive."""
    return (last - first).days + 1


def doses_per_day(timing: Any) -> float | None:
    """Timing.repeat frequency/period → administrations per day (uses frequencyMax when given)."""
    if not isinstance(timing, dict):
        return None
    repeat = timing.get("repeat")
    if not isinstance(repeat, dict):
        return None
    freq = repeat.get("frequencyMax") or repeat.get("frequency") or 1
    period = repeat.get("period") or 1
    unit = repeat.get("periodUnit")
    if unit is None and repeat.get("when"):
        when = repeat["when"]
        return float(len(when)) if isinstance(when, list) else 1.0  # DSTU2: one event code, not a list
    per = _PERIOD_DAYS.get(unit) if isinstance(unit, str) else None
    if not isinstance(freq, (int, float)) or not isinstance(period, (int, float)) or per is None or period <= 0:
        return None
    return freq / (period * per)


def fhir_quantity_days(value: int, unit: str = "d") -> dict[str, Any]:
    """A UCUM Duration for ``value`` days (used in update suggestions)."""
    return {
        "value": value,
        "unit": "days" if unit == "d" else unit,
        "system": "http://unitsofmeasure.org",
        "code": unit,
    }
