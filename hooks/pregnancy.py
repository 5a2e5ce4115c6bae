"""A current pregnancy as the record states it (NSAIDs are avoided from 20 weeks: FDA 2020), from Conditions and
Observations with verified codes; gestational ages carried forward to today; stale records left out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from cds_service.snapshot import ConditionFact, PatientSnapshot

from .thresholds import Thresholds

PREGNANCY_CONDITIONS = frozenset({"pregnancy", "pregnancy-third-trimester", "gestation-weeks", "labour"})
_Z3A = re.compile(r"^Z3A\.(\d{2})$", re.I)
_Z3A_WEEKS = {"01": 0.0, "49": 43.0}  # "less than 8 weeks", "greater than 42 weeks"


@dataclass(frozen=True)
class Pregnancy:
    """A current pregnancy as the record states it: the record it rests on and, when a record says it, the gestational
    age today in weeks (at least: a trimester or a labour code gives a lower bound)."""

    record: str
    display: str
    weeks: float | None
    since: date | None  # the date of the record it rests on

    @property
    def text(self) -> str:
        when = f", {self.since.isoformat()}" if self.since else ""
        age = f"{int(self.weeks)} weeks or more today" if self.weeks is not None else "gestational age not recorded"
        return f"pregnancy ({age}): {self.display} ({self.record}{when})"


def _condition_weeks(c: ConditionFact) -> float | None:
    """Gestational age a pregnancy Condition states at its date: the weeks of an ICD-10-CM Z3A code, 28 for a third
    trimester code, 20 for preterm labour (labour before 37 weeks counts as preterm from 20 weeks)."""
    weeks = [
        _Z3A_WEEKS.get(m.group(1), float(m.group(1)))
        for _, code in c.codes
        if (m := _Z3A.match(code)) and m.group(1) != "00"
    ]  # Z3A.00: weeks not specified
    if "pregnancy-third-trimester" in c.valuesets:
        weeks.append(28.0)
    if "labour" in c.valuesets:
        weeks.append(20.0)
    return max(weeks, default=None)


# Complexity: one branch per record shape that states a pregnancy (codes, weeks, trimester, EDD, status).
def pregnancy(s: PatientSnapshot, t: Thresholds) -> Pregnancy | None:  # noqa: C901
    """A current pregnancy from active Conditions (pregnancy, trimester, weeks-of-gestation and preterm-labour codes)
    and Observations (pregnancy status answered 'pregnant', an estimated gestational age, an estimated delivery date).

    A record's gestational age is carried forward to today; a record that would now be past ``pregnancy_max_days`` (43
    weeks), or a record of pregnancy older than that, does not describe a current pregnancy. A pregnancy status answered
    'not pregnant' dated after every record of pregnancy ends it. When records disagree the highest gestational age is
    kept (the cautious reading)."""
    today, limit = s.today, t.pregnancy_max_days
    found: list[Pregnancy] = []

    def consider(
        record: str, display: str, when: date | None, weeks_then: float | None, measured: date | None = None
    ) -> None:
        """``weeks_then``: the gestational age on ``when``; ``measured``: when the record was made (default
        ``when``)."""
        elapsed = (today - when).days if when is not None else 0
        if elapsed < 0:
            return
        weeks = weeks_then + elapsed / 7 if weeks_then is not None else None
        if (weeks is not None and weeks * 7 > limit) or (weeks is None and elapsed > limit):
            return  # this pregnancy has ended
        found.append(Pregnancy(record, display, weeks, measured or when))

    for c in s.conditions:
        if c.active and c.valuesets & PREGNANCY_CONDITIONS:
            consider(c.ref, c.display, c.start.latest if c.start else None, _condition_weeks(c))
    ended: date | None = None
    for o in s.observations:
        when = o.effective.latest if o.effective else None
        unit = o.unit.strip().lower()
        if "pregnancy" in o.asserted:  # pregnancy status answered 'pregnant', or the finding itself
            consider(o.ref, o.display, when, None)
        elif "not-pregnant" in o.asserted and when is not None:
            ended = max(ended or when, when)
        elif "gestational-age" in o.valuesets and o.value is not None and unit in ("wk", "d", "week", "weeks", "days"):
            consider(
                o.ref, f"{o.display} {o.value:g} {o.unit}", when, o.value / 7 if unit in ("d", "days") else o.value
            )
        elif "delivery-date-estimated" in o.valuesets and o.value_date is not None and when is not None:
            weeks_today = 40 - (o.value_date.earliest - today).days / 7  # a due date is 40 weeks of gestation
            if weeks_today >= 0:
                consider(o.ref, f"{o.display} {o.value_date}", today, weeks_today, measured=when)
    if ended is not None:
        found = [p for p in found if p.since is not None and p.since > ended]
    if not found:
        return None
    return max(found, key=lambda p: -1.0 if p.weeks is None else p.weeks)
