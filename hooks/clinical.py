"""Clinical reading of a PatientSnapshot: the back-pain episode, red flags, renal function, conservative care.

Everything here is a pure function of the snapshot and thresholds. Uncertainty is explicit: an episode whose
start is not known for certain answers neither "within 6 weeks" nor "older than 6 weeks".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

from cds_service.snapshot import ConditionFact, MedicationCourse, ObservationFact, OrderFact, PatientSnapshot

from .thresholds import Thresholds

BACK_PAIN = frozenset({"lbp-nonspecific", "lbp-radicular", "lbp-disc", "lbp-spondylosis", "lbp-stenosis"})
RADICULAR = frozenset({"lbp-radicular"})
CHRONIC = "lbp-chronic"  # codes that mean chronic back pain (12 weeks or more)
LUMBAR_IMAGING = frozenset({"imaging-lumbar-mri", "imaging-lumbar-ct", "imaging-lumbar-xr"})
CROSS_SECTIONAL = frozenset({"imaging-lumbar-mri", "imaging-lumbar-ct"})
SPINE_REFERRAL = frozenset({"referral-spine"})
SYSTEMIC_ROUTES = frozenset({"oral", "iv", "im", "sc", "parenteral", "nasal", "rectal", "transdermal"})
PARENTERAL_ROUTES = frozenset({"iv", "im", "sc", "parenteral"})
CONSERVATIVE_CLASSES = frozenset({"nsaids", "ketorolac", "acetaminophen", "muscle-relaxants", "duloxetine"})

# Red-flag kinds: value set → (tier, label, recommended work-up). RISK: a risk factor that is no red flag by itself but
# makes "no imaging in the first 6 weeks" unsafe advice (injection drug use without a recorded fever).
EMERGENCY, PROMPT, RISK = "emergency", "prompt", "risk"
RED_FLAG_KINDS: dict[str, tuple[str, str, str]] = {
    "rf-cauda-equina": (EMERGENCY, "cauda equina signs", "mri-emergency"),
    "rf-motor-deficit": (EMERGENCY, "severe or progressive motor deficit", "mri-emergency"),
    "rf-spinal-infection": (EMERGENCY, "suspected spinal infection", "mri-contrast-urgent"),
    "rf-malignancy": (PROMPT, "cancer or history of cancer", "mri-contrast"),
    "rf-weight-loss": (PROMPT, "unexplained weight loss", "mri-contrast"),
    "rf-immunosuppression": (PROMPT, "immunosuppression", "mri-contrast"),
    "rf-infection-other": (PROMPT, "infection elsewhere (osteomyelitis/abscess)", "mri-contrast"),
    "rf-fracture-risk": (PROMPT, "fracture risk", "xray"),
    "rf-neuro-finding": (PROMPT, "neurologic finding", "mri"),
}
FEVER_WITH = frozenset({"rf-ivdu", "rf-immunosuppression"})
FINDINGS_KEY = "findings"  # the optional prefetch key of red-flag findings recorded as Observations


@dataclass(frozen=True)
class Episode:
    """The back-pain episode and what its records say of its start. ``recordedDate`` is only an upper bound on onset
    (the problem was on the list by then), and a code that means chronic back pain puts the start 12 weeks back or
    more."""

    conditions: tuple[ConditionFact, ...]
    radicular: bool
    earliest_start: date | None  # earliest day any record's dates allow (the window for findings and earlier courses)
    latest_start: date | None  # the episode began on or before this day, for certain
    fully_dated: bool  # every condition carries a date
    onset_recorded: bool = True  # every condition states its onset (not only when it was recorded)
    chronic: bool = False  # a condition's code means chronic back pain

    def certainly_within(self, today: date, days: float) -> bool:
        """Episode started no more than ``days`` days ago, for certain (every onset recorded, no chronic code)."""
        return (
            self.fully_dated
            and self.onset_recorded
            and not self.chronic
            and self.earliest_start is not None
            and (today - self.earliest_start).days <= days
        )

    def recorded_within(self, today: date, days: float) -> bool:
        """Every back-pain record is dated within ``days`` days, but some only by when it was recorded: the onset is not
        known (a card may say so, never assert it)."""
        return (
            self.fully_dated
            and not self.onset_recorded
            and not self.chronic
            and self.earliest_start is not None
            and (today - self.earliest_start).days <= days
        )

    def certainly_older(self, today: date, days: float) -> bool:
        """Episode started more than ``days`` days ago, for certain."""
        return self.latest_start is not None and (today - self.latest_start).days > days

    def weeks_text(self, today: date) -> str:
        """How long the episode has lasted, in the patient's own figure: "14 weeks" when its start is known, "at
        least 14 weeks" when only bounded (a recorded date, a chronic code, a partial date). Needs ``latest_start``."""
        assert self.latest_start is not None
        weeks = (today - self.latest_start).days // 7
        exact = self.onset_recorded and not self.chronic and self.earliest_start == self.latest_start
        return f"{weeks} week{'s' if weeks != 1 else ''}" if exact else f"at least {weeks} weeks"

    @property
    def start_text(self) -> str:
        if self.latest_start is None:
            return "unknown"
        if self.chronic:
            return f"on or before {self.latest_start.isoformat()} (chronic back pain: 12 weeks or more)"
        if not self.onset_recorded:
            return f"on or before {self.latest_start.isoformat()} (date recorded; onset not recorded)"
        if self.earliest_start is None or self.earliest_start == self.latest_start:
            return self.latest_start.isoformat()
        return f"between {self.earliest_start.isoformat()} and {self.latest_start.isoformat()}"


@dataclass(frozen=True)
class RedFlag:
    kind: str  # value-set id (or "rf-fever" with a risk factor)
    tier: str
    label: str
    workup: str
    record: str  # "Condition/123" or "MedicationRequest/…"
    display: str
    since: date | None
    with_record: str = ""  # fever: the risk factor's record ("Condition/…"), named beside the fever's
    with_display: str = ""

    @property
    def records(self) -> tuple[str, ...]:
        return (self.record, self.with_record) if self.with_record else (self.record,)


def episode(s: PatientSnapshot, t: Thresholds) -> Episode | None:
    """The active back-pain conditions as one episode. Its start: the earliest onset, or the date a condition was
    recorded when that is all there is (an upper bound on its onset); a chronic back-pain code places it at least
    ``chronic_back_pain_days`` ago whatever the dates say."""
    conditions = tuple(c for c in s.conditions if c.active and c.valuesets & BACK_PAIN)
    if not conditions:
        return None
    chronic = any(CHRONIC in c.valuesets for c in conditions)
    dated = [c.start for c in conditions if c.start is not None]
    latest = [d.latest for d in dated]
    if chronic:
        latest.append(s.today - timedelta(days=int(t.chronic_back_pain_days)))
    latest_start = min(latest, default=None)
    earliest_start = min((d.earliest for d in dated), default=latest_start)
    if earliest_start is not None and latest_start is not None and earliest_start > latest_start:
        earliest_start = latest_start  # a chronic code over a recent date: the code wins
    return Episode(
        conditions=conditions,
        radicular=any(c.valuesets & RADICULAR for c in conditions),
        earliest_start=earliest_start,
        latest_start=latest_start,
        fully_dated=len(dated) == len(conditions),
        onset_recorded=all(c.onset is not None for c in conditions),
        chronic=chronic,
    )


def back_pain_context(s: PatientSnapshot, ep: Episode | None, refs: Iterable[str] = ()) -> bool:
    """An active back-pain condition, or a draft order whose reason is one."""
    if ep is not None:
        return True
    by_ref = {c.ref: c.reason_valuesets for c in s.courses} | {o.ref: o.reason_valuesets for o in s.orders}
    return any(by_ref.get(ref, frozenset()) & BACK_PAIN for ref in refs)


class _Source(NamedTuple):
    """A record that may carry red flags: an active Condition (or a history of cancer), or a finding observed during
    the episode."""

    ref: str
    display: str
    kinds: frozenset[str]
    since: date | None
    current: bool  # counts as a risk factor for fever (an active condition, or observed during the episode)


def in_episode(s: PatientSnapshot, ep: Episode | None) -> list[ObservationFact]:
    """Observations dated on or after the episode's start (for certain: the earliest day a partial date allows) and not
    after today (see ``observed_in_episode``)."""
    if ep is None or ep.earliest_start is None:
        return []
    start = ep.earliest_start
    return [o for o in s.observations if o.effective is not None and start <= o.effective.earliest <= s.today]


def observed_in_episode(s: PatientSnapshot, ep: Episode | None) -> list[ObservationFact]:
    """Findings observed present on or after the episode's start (for certain: the earliest day a partial date allows)
    and not dated after today. An Observation is a moment, not a standing problem: one older than the episode belongs
    to another story, and with no dated episode nothing says which story it belongs to — then it is not read (a
    Condition carries its own clinical status instead). A partial date of this month ("2026-11") counts: what was
    observed cannot lie in the future."""
    return [o for o in in_episode(s, ep) if o.asserted]


def celsius(o: ObservationFact) -> float | None:
    """A body temperature in °C (UCUM Cel or [degF], and their common spellings); None when the unit is unknown."""
    if o.value is None:
        return None
    unit = o.unit.strip().lower().replace("°", "")
    if unit in ("cel", "c", "degc"):
        return o.value
    if unit in ("[degf]", "f", "degf"):
        return (o.value - 32) * 5 / 9
    return None


def temperatures(s: PatientSnapshot, ep: Episode | None) -> list[tuple[ObservationFact, float]]:
    """Body temperatures (LOINC 8310-5) measured during the episode, in °C, latest first."""
    readings = [
        (o, c) for o in in_episode(s, ep) if "body-temperature" in o.valuesets and (c := celsius(o)) is not None
    ]
    return sorted(readings, key=lambda r: r[0].effective.latest if r[0].effective else date.min, reverse=True)


# Complexity: one branch per red-flag source of the rule catalogue (conditions, findings, temperatures, steroids).
def red_flags(s: PatientSnapshot, t: Thresholds, ep: Episode | None = None) -> list[RedFlag]:  # noqa: C901
    """Red flags from active Conditions (a history of cancer whatever its status), from findings observed during the
    back-pain episode (``observed_in_episode``), and from long-term systemic steroids. Fever — a fever record, or a body
    temperature of ``fever_celsius`` or more measured during the episode — counts with IV drug use or immunosuppression
    (possible spinal infection). Injection drug use with no fever recorded is a RISK-tier flag: no red flag by itself,
    but a reason not to advise against imaging (ACR 2021), and the card asks for a temperature and inflammatory
    markers."""
    sources = [
        _Source(c.ref, c.display, c.valuesets, c.start.earliest if c.start else None, c.active)
        for c in s.conditions
        if c.active or "rf-malignancy" in c.valuesets
    ]  # history of cancer counts
    sources += [
        _Source(o.ref, o.display, o.asserted, o.effective.earliest, True)
        for o in observed_in_episode(s, ep)
        if o.effective is not None
    ]
    flags: list[RedFlag] = []
    risk_factors: list[_Source] = []
    fevers: list[_Source] = []
    for src in sources:
        for kind in sorted(src.kinds):
            if kind in RED_FLAG_KINDS:
                tier, label, workup = RED_FLAG_KINDS[kind]
                flags.append(RedFlag(kind, tier, label, workup, src.ref, src.display, src.since))
        if src.current:
            if src.kinds & FEVER_WITH:
                risk_factors.append(src)
            if "rf-fever" in src.kinds:
                fevers.append(src)
    readings = temperatures(s, ep) if ep is not None else []
    fevers += [
        _Source(
            o.ref,
            f"{o.display or 'Body temperature'} {value:.1f} °C",
            frozenset({"rf-fever"}),
            o.effective.earliest if o.effective else None,
            True,
        )
        for o, value in readings
        if value >= t.fever_celsius
    ]
    if risk_factors:  # drug use first (the record named beside the fever), then immunosuppression
        risk = min(risk_factors, key=lambda r: ("rf-injection-drug-use" not in r.kinds, "rf-ivdu" not in r.kinds))
        # only an injection-drug-use record says "IV"; a substance-use disorder code (opioid dependence…) says what it
        # is
        with_what = (
            "IV drug use"
            if "rf-injection-drug-use" in risk.kinds
            else "drug use"
            if "rf-ivdu" in risk.kinds
            else "immunosuppression"
        )
        for src in fevers:
            flags.append(
                RedFlag(
                    "rf-fever",
                    EMERGENCY,
                    f"fever with {with_what} (possible spinal infection)",
                    "mri-contrast-urgent",
                    src.ref,
                    src.display,
                    src.since,
                    risk.ref,
                    risk.display,
                )
            )
    if not (fevers and risk_factors):
        for src in sources:
            if src.current and "rf-injection-drug-use" in src.kinds:
                latest_temp = (
                    f"latest temperature {readings[0][1]:.1f} °C on {readings[0][0].effective}"
                    if readings
                    else "no temperature recorded in this episode"
                )
                flags.append(
                    RedFlag(
                        "rf-injection-drug-use",
                        RISK,
                        f"injection drug use: spinal infection risk ({latest_temp})",
                        "infection-workup",
                        src.ref,
                        src.display,
                        src.since,
                    )
                )
                break
    for course in long_term_steroids(s, t):
        flags.append(
            RedFlag(
                "rf-fracture-risk",
                PROMPT,
                "fracture risk (long-term systemic steroids)",
                "xray",
                course.ref,
                course.display,
                course.start,
            )
        )
    return flags


def long_term_steroids(s: PatientSnapshot, t: Thresholds) -> list[MedicationCourse]:
    out = []
    for c in s.courses:
        if (
            "systemic-corticosteroids" in c.classes
            and not c.in_draft_orders
            and c.route in SYSTEMIC_ROUTES
            and c.start is not None
            and (s.today - c.start).days >= t.long_term_steroid_days
            and (c.end is None or c.end >= s.today)
            and c.status in ("active", "on-hold", "completed")
        ):
            out.append(c)
    return out


def latest(observations: Iterable[ObservationFact], valueset: str, today: date, days: float) -> ObservationFact | None:
    cutoff = today - timedelta(days=days)
    best: ObservationFact | None = None
    for o in observations:
        if (
            valueset in o.valuesets
            and o.value is not None
            and o.effective is not None
            and cutoff <= o.effective.latest <= today
        ):
            if best is None or o.effective.latest > best.effective.latest:  # type: ignore[union-attr]
                best = o
    return best


def latest_egfr(s: PatientSnapshot, t: Thresholds) -> ObservationFact | None:
    return latest(s.observations, "egfr", s.today, t.lab_lookback_days)


def latest_weight_kg(s: PatientSnapshot, t: Thresholds) -> float | None:
    o = latest(s.observations, "body-weight", s.today, t.weight_lookback_days)
    if o is None or o.value is None:
        return None
    unit = o.unit.lower()
    if unit in ("kg", ""):
        return o.value
    if unit in ("g",):
        return o.value / 1000
    if unit in ("[lb_av]", "lb", "lbs"):
        return o.value * 0.45359237
    return None


def conservative_care(s: PatientSnapshot, t: Thresholds) -> list[str]:
    """Records showing conservative therapy within the lookback (drug courses, physical therapy)."""
    cutoff = s.today - timedelta(days=t.conservative_care_lookback_days)
    found = []
    for c in s.courses:
        if c.classes & CONSERVATIVE_CLASSES and not c.in_draft_orders and c.start is not None and c.start >= cutoff:
            found.append(f"{c.display} (from {c.start.isoformat()})")
    for o in s.orders:
        if (
            "physical-therapy" in o.valuesets
            and not o.in_draft_orders
            and o.when is not None
            and o.when.latest >= cutoff
        ):
            found.append(f"{o.display} ({o.when})")
    return found


def prior_orders(s: PatientSnapshot, sets: frozenset[str], since: date | None = None) -> list[OrderFact]:
    """Non-draft orders/procedures/studies in ``sets``, on or after ``since`` (undated ones count: they exist)."""
    return [
        o
        for o in s.orders
        if not o.in_draft_orders and o.valuesets & sets and (since is None or o.when is None or o.when.latest >= since)
    ]


def draft_orders(s: PatientSnapshot, sets: frozenset[str], focus: frozenset[str] | None = None) -> list[OrderFact]:
    return [o for o in s.orders if o.in_draft_orders and o.valuesets & sets and (focus is None or o.ref in focus)]


def is_current(c: MedicationCourse, today: date) -> bool:
    """Being ordered now, or an active/on-hold course not yet past its planned end."""
    return (c.in_draft_orders or c.status in ("active", "on-hold", "in-progress")) and (c.end is None or c.end >= today)


def fmt_date(d: date | None) -> str:
    return d.isoformat() if d else "unknown"
