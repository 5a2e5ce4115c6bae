"""The rule catalogue, declared once per rule: ``@rule(topic, hooks=…, supersedes=…, thresholds=…, lookback=…,
valuesets=…, suggestions=…, describes=…)`` on the rule function. Everything else is derived from the declarations:

- which rules a hook runs, in order (a superseding rule before those it silences; otherwise the catalogue's order:
  the modules as ``hooks.rules`` lists them, each rule in the order it is written),
- what supersedes what (one problem, one card),
- how far back the snapshot reads (the longest ``lookback`` threshold, plus a month),
- the services' descriptions (``describes``),
- and the start-up check (``check``): every topic has a template, every suggestion a label, every threshold and value
  set exists — else the service refuses to start.

Adding a rule touches its module (function and declaration), its template, its tests and its patients: nothing else.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from cds_service.terminology import Terminology

from .context import RuleContext
from .findings import Finding
from .thresholds import Thresholds

Rule = Callable[[RuleContext], list[Finding]]
RuleFn = TypeVar("RuleFn", bound=Rule)
ORDER_HOOKS = ("order-select", "order-sign")
ALL_HOOKS = ("patient-view", *ORDER_HOOKS)
HISTORY_MARGIN_DAYS = 31  # records a month older than the longest look-back are still read (a course overlapping it)


@dataclass(frozen=True)
class RuleSpec:
    fn: Rule
    topic: str
    hooks: tuple[str, ...]
    supersedes: tuple[str, ...]  # topics this rule's card silences in the same response (its card carries their facts)
    thresholds: tuple[str, ...]  # the thresholds it reads
    lookback: tuple[str, ...]  # thresholds (in days) that say how far back it reads records
    valuesets: tuple[str, ...]  # the value sets it reads
    suggestions: tuple[str, ...]  # the suggestion keys it offers (each must have a label in its template)
    describes: str  # what it flags, for the service description

    @property
    def order(self) -> tuple[int, int]:
        """Catalogue order: the rule modules in ``hooks.rules.MODULES`` order, then the order of definition."""
        from .rules import MODULES

        module = self.fn.__module__.rsplit(".", 1)[-1]
        return (MODULES.index(module) if module in MODULES else len(MODULES), self.fn.__code__.co_firstlineno)


RULES: list[RuleSpec] = []


def rule(
    topic: str,
    *,
    hooks: Sequence[str],
    supersedes: Sequence[str] = (),
    thresholds: Sequence[str] = (),
    lookback: Sequence[str] = (),
    valuesets: Sequence[str] = (),
    suggestions: Sequence[str] = (),
    describes: str,
) -> Callable[[RuleFn], RuleFn]:
    """Declare a rule: the topic of the card it produces and everything the engine derives from (see the module)."""

    def declare(fn: RuleFn) -> RuleFn:
        if any(spec.topic == topic for spec in RULES):
            raise ValueError(f"topic {topic!r} declared twice")
        unknown = set(hooks) - set(ALL_HOOKS)
        if unknown:
            raise ValueError(f"{topic}: unknown hooks {sorted(unknown)}")
        RULES.append(
            RuleSpec(
                fn,
                topic,
                tuple(hooks),
                tuple(supersedes),
                tuple(thresholds),
                tuple(lookback),
                tuple(valuesets),
                tuple(suggestions),
                describes,
            )
        )
        return fn

    return declare


def _rules() -> list[RuleSpec]:
    from . import rules  # noqa: F401 - importing the rule modules declares them

    return RULES


def supersedes() -> dict[str, tuple[str, ...]]:
    """topic → the topics its card silences (one problem, one card)."""
    return {spec.topic: spec.supersedes for spec in _rules() if spec.supersedes}


def rules_for(hook: str) -> list[RuleSpec]:
    """The rules a hook runs: each superseding rule before the rules it silences (so those are not even run when it
    fires), otherwise in catalogue order."""
    specs = sorted((s for s in _rules() if hook in s.hooks), key=lambda s: s.order)
    topics = {s.topic for s in specs}
    before: dict[str, set[str]] = {s.topic: set() for s in specs}  # topic → topics that must come first
    for s in specs:
        for silenced in s.supersedes:
            if silenced in topics:
                before[silenced].add(s.topic)
    ordered: list[RuleSpec] = []
    placed: set[str] = set()
    while len(ordered) < len(specs):
        ready = next((s for s in specs if s.topic not in placed and before[s.topic] <= placed), None)
        if ready is None:
            raise ValueError(f"supersedes form a cycle among {sorted(topics - placed)}")
        ordered.append(ready)
        placed.add(ready.topic)
    return ordered


def history_days(thresholds: Thresholds) -> int:
    """How far back the snapshot reads finished courses and observations: the longest declared look-back, plus a
    month."""
    names = {name for spec in _rules() for name in spec.lookback}
    return int(max(getattr(thresholds, name) for name in names)) + HISTORY_MARGIN_DAYS


def describe(hook: str, lead: str) -> str:
    """A service description from what its rules flag: ``lead`` + each rule's ``describes``."""
    return f"{lead}: " + "; ".join(spec.describes for spec in rules_for(hook)) + "."


class _Templates(Protocol):
    def topics(self) -> Iterable[str]: ...
    def suggestion_labels(self, topic: str) -> dict[str, str]: ...


def check(templates: _Templates, terminology: Terminology) -> None:
    """The start-up check of every declaration: fails loudly (ValueError) when a rule's topic has no template, one of
    its suggestions no label, or a threshold or value set it names does not exist, or a rule is not declared as a
    rule."""
    problems: list[str] = []
    have = set(templates.topics())
    names = Thresholds.names()
    for spec in _rules():
        if spec.topic not in have:
            problems.append(f"{spec.topic}: no card template")
            continue
        labels = templates.suggestion_labels(spec.topic)
        problems += [f"{spec.topic}: suggestion {key!r} has no label" for key in spec.suggestions if key not in labels]
        problems += [
            f"{spec.topic}: unknown threshold {n!r}" for n in (*spec.thresholds, *spec.lookback) if n not in names
        ]
        problems += [f"{spec.topic}: unknown value set {v!r}" for v in spec.valuesets if v not in terminology.valuesets]
        doc = inspect.getdoc(spec.fn) or ""
        if not (re.search(r"^When\b", doc, re.M) and re.search(r"^Then\b", doc, re.M)):
            problems.append(f"{spec.topic}: the rule has no When/Then docstring")
    if problems:
        raise ValueError("rule catalogue: " + "; ".join(problems))


def offered(spec: RuleSpec, findings: Iterable[Finding]) -> None:
    """A finding's topic and suggestion keys are the ones its rule declared (checked on every call: cheap, and a rule
    that drifts from its declaration fails its tests instead of sending an unlabelled button)."""
    for f in findings:
        if f.topic != spec.topic:
            raise ValueError(f"{spec.fn.__name__} returned a {f.topic!r} finding; it declares {spec.topic!r}")
        undeclared = [s.key for s in f.suggestions if s.key not in spec.suggestions]
        if undeclared:
            raise ValueError(f"{spec.topic}: suggestions {undeclared} not declared")
