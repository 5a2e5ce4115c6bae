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

from .findings import RuleContext
from .thresholds import Thresholds

BACK_PAIN = frozenset({"lbp-nonspecific", "lbp-radicular", "lbp-disc", "lbp-spondylosis", "lbp-stenosis"})
RADICULAR = frozenset({"lbp-radicular"})
LUMBAR_IMAGING = frozenset({"imaging-lumbar-mri", "imaging-lumbar-ct", "imaging-lumbar-xr"})
CROSS_SECTIONAL = frozenset({"imaging-lumbar-mri", "imaging-lumbar-ct"})
SPINE_REFERRAL = frozenset({"referral-spine"})
SYSTEMIC_ROUTES = frozenset({"oral", "iv", "im", "sc", "parenteral", "nasal", "rectal", "transdermal"})
PARENTERAL_ROUTES = frozenset({"iv", "im", "sc", "parenteral"})
CONSERVATIVE_CLASSES = frozenset({"nsaids", "ketorolac", "acetaminophen", "muscle-relaxants", "duloxetine"})

# Red-flag kinds: value set → (tier, label, recommended work-up)
EMERGENCY, PROMPT = "emergency", "prompt"
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
    conditions: tuple[ConditionFact, ...]
    radicular: bool
    earliest_start: date | None  # earliest possible episode start among dated conditions
    latest_start: date | None  # latest possible episode start (min of the conditions' latest bounds)
    fully_dated: bool

    def certainly_within(self, today: date, days: float) -> bool:
        """Episode started no more than ``days`` days ago, for certain."""
        return self.fully_dated and self.earliest_start is not None and (today - self.earliest_start).days <= days

    def certainly_older(self, today: date, days: float) -> bool:
        """Episode started more than ``days`` days ago, for certain."""
        return self.latest_start is not None and (today - self.latest_start).days > days

    @property
    def start_text(self) -> str:
        if self.earliest_start is None:
            return "unknown"
        if self.latest_start is None or self.earliest_start == self.latest_start:
            return self.earliest_start.isoformat()
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


def episode(s: PatientSnapshot) -> Episode | None:
    conditions = tuple(c for c in s.conditions if c.active and c.valuesets & BACK_PAIN)
    if not conditions:
        return None
    dated = [c.start for c in conditions if c.start is not None]
    return Episode(
        conditions=conditions,
        radicular=any(c.valuesets & RADICULAR for c in conditions),
        earliest_start=min((d.earliest for d in dated), default=None),
        latest_start=min((d.latest for d in dated), default=None),
        fully_dated=len(dated) == len(conditions),
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


def observed_in_episode(s: PatientSnapshot, ep: Episode | None) -> list[ObservationFact]:
    """Findings observed present on or after the episode's start (for certain: the earliest day a partial date allows)
    and not dated after today. An Observation is a moment, not a standing problem: one older than the episode belongs
    to another story, and with no dated episode nothing says which story it belongs to — then it is not read (a
    Condition carries its own clinical status instead). A partial date of this month ("2026-11") counts: what was
    observed cannot lie in the future."""
    if ep is None or ep.earliest_start is None:
        return []
    start = ep.earliest_start
    return [o for o in s.observations
            if o.asserted and o.effective is not None and start <= o.effective.earliest <= s.today]


def red_flags(s: PatientSnapshot, t: Thresholds, ep: Episode | None = None) -> list[RedFlag]:
    """Red flags from active Conditions (a history of cancer whatever its status), from findings observed during the
    back-pain episode (``observed_in_episode``), and from long-term systemic steroids."""
    sources = [_Source(c.ref, c.display, c.valuesets, c.start.earliest if c.start else None, c.active)
               for c in s.conditions if c.active or "rf-malignancy" in c.valuesets]  # history of cancer counts
    sources += [_Source(o.ref, o.display, o.asserted, o.effective.earliest, True)
                for o in observed_in_episode(s, ep) if o.effective is not None]
    flags: list[RedFlag] = []
    risk_factors: set[str] = set()
    fevers: list[_Source] = []
    for src in sources:
        for kind in sorted(src.kinds):
            if kind in RED_FLAG_KINDS:
                tier, label, workup = RED_FLAG_KINDS[kind]
                flags.append(RedFlag(kind, tier, label, workup, src.ref, src.display, src.since))
        if src.current:
            risk_factors |= src.kinds & FEVER_WITH
            if "rf-fever" in src.kinds:
                fevers.append(src)
    for src in fevers:
        if risk_factors:
            with_what = "IV drug use" if "rf-ivdu" in risk_factors else "immunosuppression"
            flags.append(RedFlag("rf-fever", EMERGENCY, f"fever with {with_what} (possible spinal infection)",
                                 "mri-contrast-urgent", src.ref, src.display, src.since))
    for course in long_term_steroids(s, t):
        flags.append(RedFlag("rf-fracture-risk", PROMPT, "fracture risk (long-term systemic steroids)", "xray",
                             course.ref, course.display, course.start))
    return flags


def long_term_steroids(s: PatientSnapshot, t: Thresholds) -> list[MedicationCourse]:
    out = []
    for c in s.courses:
        if ("systemic-corticosteroids" in c.classes and not c.in_draft_orders and c.route in SYSTEMIC_ROUTES
                and c.start is not None and (s.today - c.start).days >= t.long_term_steroid_days
                and (c.end is None or c.end >= s.today) and c.status in ("active", "on-hold", "completed")):
            out.append(c)
    return out


def latest(observations: Iterable[ObservationFact], valueset: str, today: date, days: float) -> ObservationFact | None:
    cutoff = today - timedelta(days=days)
    best: ObservationFact | None = None
    for o in observations:
        if valueset in o.valuesets and o.value is not None and o.effective is not None and cutoff <= o.effective.latest <= today:
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
        if "physical-therapy" in o.valuesets and not o.in_draft_orders and o.when is not None and o.when.latest >= cutoff:
            found.append(f"{o.display} ({o.when})")
    return found


def prior_orders(s: PatientSnapshot, sets: frozenset[str], since: date | None = None) -> list[OrderFact]:
    """Non-draft orders/procedures/studies in ``sets``, on or after ``since`` (undated ones count: they exist)."""
    return [o for o in s.orders if not o.in_draft_orders and o.valuesets & sets
            and (since is None or o.when is None or o.when.latest >= since)]


def draft_orders(s: PatientSnapshot, sets: frozenset[str], focus: frozenset[str] | None = None) -> list[OrderFact]:
    return [o for o in s.orders if o.in_draft_orders and o.valuesets & sets and (focus is None or o.ref in focus)]


def is_current(c: MedicationCourse, today: date) -> bool:
    """Being ordered now, or an active/on-hold course not yet past its planned end."""
    return (c.in_draft_orders or c.status in ("active", "on-hold", "in-progress")) and (c.end is None or c.end >= today)


def focused_drafts(ctx: RuleContext, valueset: str) -> list[MedicationCourse]:
    """Draft orders in focus (selections on order-select, every draft on order-sign) of a drug class, by a systemic route."""
    return [c for c in ctx.snapshot.draft_courses if c.ref in ctx.focus and valueset in c.classes and c.route != "local"]


def current_courses(ctx: RuleContext, valueset: str, exclude: Iterable[str] = ()) -> list[MedicationCourse]:
    """Current courses of a drug class (drafts count on order-sign, and on order-select when selected), systemic only."""
    skip = set(exclude)
    return [c for c in ctx.snapshot.courses
            if valueset in c.classes and c.ref not in skip and c.route != "local" and is_current(c, ctx.today)
            and (not c.in_draft_orders or c.ref in ctx.focus)]


def fmt_date(d: date | None) -> str:
    return d.isoformat() if d else "unknown"
