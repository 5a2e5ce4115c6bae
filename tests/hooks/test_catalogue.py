"""The rule catalogue: each rule declared once, and everything derived from the declarations."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cds_service.cards import CardRenderer
from hooks import catalogue
from hooks.engine import Knowledge
from hooks.findings import Finding, Suggestion
from hooks.thresholds import Thresholds

PATIENT_VIEW = [
    "ketorolac-duration",
    "systemic-steroid-back-pain",
    "imaging-red-flags",
    "referral-spine",
    "imaging-persistent-radicular",
    "opioid-sedative",
]
ORDERS = [
    "ketorolac-contraindication",
    "ketorolac-duration",
    "ketorolac-dose",
    "ketorolac-oral-start",
    "systemic-steroid-back-pain",
    "imaging-red-flags",
    "imaging-early",
    "imaging-repeat",
    "opioid-first-line",
    "opioid-sedative",
    "nsaid-duplicate",
    "gabapentinoid-nonradicular",
    "gabapentinoid-renal-dose",
    "muscle-relaxant",
    "benzodiazepine-back-pain",
    "drug-class-repeat",
]


@pytest.mark.parametrize(
    "hook, topics", [("patient-view", PATIENT_VIEW), ("order-select", ORDERS), ("order-sign", ORDERS)]
)
def test_each_hook_runs_its_rules_in_catalogue_order_superseding_rules_first(hook, topics):
    assert [s.topic for s in catalogue.rules_for(hook)] == topics


def test_what_supersedes_what_comes_from_the_declarations():
    assert catalogue.supersedes() == {
        "ketorolac-contraindication": ("ketorolac-duration", "ketorolac-oral-start", "ketorolac-dose"),
        "ketorolac-duration": ("ketorolac-oral-start",),
        "imaging-red-flags": ("referral-spine", "imaging-repeat"),
        "referral-spine": ("imaging-persistent-radicular",),
    }
    for hook in catalogue.ALL_HOOKS:  # a superseding rule always runs before the rules it silences
        order = [s.topic for s in catalogue.rules_for(hook)]
        for topic, silenced in catalogue.supersedes().items():
            for other in silenced:
                if topic in order and other in order:
                    assert order.index(topic) < order.index(other)


def test_the_snapshot_reads_as_far_back_as_the_longest_declared_look_back():
    assert catalogue.history_days(Thresholds()) == 365 + 31
    assert catalogue.history_days(Thresholds.from_config({"conservative_care_lookback_days": 500})) == 531


def test_the_declarations_pass_the_start_up_check():
    catalogue.check(CardRenderer(), Knowledge.load().terminology)


class _Templates:
    def __init__(self, renderer: CardRenderer, drop_topic: str = "", drop_label: tuple[str, str] = ("", "")) -> None:
        self.r, self.drop_topic, self.drop_label = renderer, drop_topic, drop_label

    def topics(self):
        return [t for t in self.r.topics() if t != self.drop_topic]

    def suggestion_labels(self, topic):
        return {k: v for k, v in self.r.suggestion_labels(topic).items() if (topic, k) != self.drop_label}


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda r, t: (_Templates(r, drop_topic="nsaid-duplicate"), t), "nsaid-duplicate: no card template"),
        (
            lambda r, t: (_Templates(r, drop_label=("ketorolac-dose", "cap-dose")), t),
            "ketorolac-dose: suggestion 'cap-dose' has no label",
        ),
        (lambda r, t: (_Templates(r), t.without("opioids")), "opioid-first-line: unknown value set 'opioids'"),
    ],
)
def test_the_start_up_check_fails_loudly(break_it, message):
    terminology = Knowledge.load().terminology
    templates, terms = break_it(CardRenderer(), _Terms(terminology))
    with pytest.raises(ValueError, match=message):
        catalogue.check(templates, terms)


class _Terms:
    def __init__(self, terminology) -> None:
        self.valuesets = dict(terminology.valuesets)

    def without(self, vs_id: str) -> _Terms:
        del self.valuesets[vs_id]
        return self


def test_an_unknown_threshold_in_a_declaration_is_refused():
    at, spec = next((i, s) for i, s in enumerate(catalogue.RULES) if s.topic == "nsaid-duplicate")
    catalogue.RULES[at] = dataclasses.replace(spec, thresholds=("asprin_max",))
    try:
        with pytest.raises(ValueError, match="nsaid-duplicate: unknown threshold 'asprin_max'"):
            catalogue.check(CardRenderer(), Knowledge.load().terminology)
    finally:
        catalogue.RULES[at] = spec


def test_a_finding_must_be_of_its_rules_topic_and_offer_only_declared_suggestions():
    spec = next(s for s in catalogue.RULES if s.topic == "nsaid-duplicate")
    catalogue.offered(spec, [Finding("nsaid-duplicate", "warning", {}, (), (Suggestion("remove", ()),))])
    with pytest.raises(ValueError, match="not declared"):
        catalogue.offered(spec, [Finding("nsaid-duplicate", "warning", {}, (), (Suggestion("shorten", ()),))])
    with pytest.raises(ValueError, match="declares 'nsaid-duplicate'"):
        catalogue.offered(spec, [Finding("imaging-early", "warning", {}, ())])


def test_a_topic_is_declared_once():
    with pytest.raises(ValueError, match="declared twice"):
        catalogue.rule("nsaid-duplicate", hooks=("order-select",), describes="x")(lambda ctx: [])


def test_every_rule_module_is_in_the_catalogue_order():
    from hooks.rules import MODULES

    modules = {p.stem for p in (Path(catalogue.__file__).parent / "rules").glob("*.py") if p.stem != "__init__"}
    assert set(MODULES) == modules
