"""Clinical thresholds: every number a rule uses, with its source beside it — one typed field each.

A site overrides any of them in configuration (``[thresholds]`` in the TOML file or ``BPCDS_THRESHOLD_<NAME>``);
unknown names are refused at start-up, and a rule that names one that does not exist fails type-checking (and the
start-up check of its declaration, ``catalogue.check``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _t(default: float, source: str) -> Any:
    return field(default=default, metadata={"source": source})


@dataclass(frozen=True)
class Thresholds:
    ketorolac_max_days: float = _t(
        5.0, "FDA ketorolac tromethamine label, boxed warning: combined oral + IV/IM use must not exceed 5 days"
    )
    ketorolac_lookback_days: float = _t(30.0, "rule catalogue: count ketorolac already given in the last 30 days")
    ketorolac_course_gap_days: float = _t(
        7.0,
        "FDA label: the 5-day limit is on the total duration of use, so a dose-free day does not end a course; rule "
        "catalogue: doses and orders up to 7 dose-free days apart are one course (a course that ended longer ago "
        "stays separate)",
    )
    ketorolac_oral_after_parenteral_hours: float = _t(
        48.0, "FDA label: oral ketorolac only as continuation of IV/IM dosing (catalogue: 48 h)"
    )
    ketorolac_oral_max_mg_day: float = _t(40.0, "FDA label: oral ketorolac maximum 40 mg/day")
    ketorolac_parenteral_max_mg_day: float = _t(120.0, "FDA label: IV/IM ketorolac maximum 120 mg/day")
    ketorolac_parenteral_reduced_max_mg_day: float = _t(
        60.0, "FDA label: 60 mg/day for age ≥ 65, weight < 50 kg or raised creatinine"
    )
    ketorolac_single_im_mg: float = _t(60.0, "FDA label, single-dose treatment: one 60 mg IM dose (patients < 65)")
    ketorolac_single_iv_mg: float = _t(30.0, "FDA label, single-dose treatment: one 30 mg IV dose (patients < 65)")
    ketorolac_reduced_single_im_mg: float = _t(30.0, "FDA label: single IM dose 30 mg in the reduced-dose group")
    ketorolac_reduced_single_iv_mg: float = _t(15.0, "FDA label: single IV dose 15 mg in the reduced-dose group")
    ketorolac_reduced_dose_age: float = _t(65.0, "FDA label: patients ≥ 65 years")
    ketorolac_reduced_dose_weight_kg: float = _t(50.0, "FDA label: patients < 50 kg")
    ketorolac_reduced_dose_egfr: float = _t(
        60.0, "rule catalogue: eGFR < 60 as proxy for moderately elevated serum creatinine"
    )
    ketorolac_contraindicated_egfr: float = _t(
        30.0, "rule catalogue: eGFR < 30 (advanced renal impairment, FDA label contraindication)"
    )
    lab_lookback_days: float = _t(365.0, "rule catalogue: latest eGFR / creatinine within 12 months")
    weight_lookback_days: float = _t(30.0, "rule catalogue: latest body weight within 30 days")
    imaging_early_days: float = _t(
        42.0, "ACR Appropriateness Criteria Low Back Pain 2021 var. 1–2; Choosing Wisely: first 6 weeks"
    )
    persistent_radicular_days: float = _t(
        42.0, "ACR 2021 variant 3: radicular pain persisting > 6 weeks despite conservative care"
    )
    imaging_repeat_days: float = _t(365.0, "rule catalogue: lumbar MRI/CT in the last 12 months")
    referral_radicular_days: float = _t(
        84.0, "NICE NG59 / National Back Pain and Radicular Pain Pathway 2017: specialist by 3 months"
    )
    conservative_care_lookback_days: float = _t(
        365.0, "project choice: evidence of conservative therapy within 12 months"
    )
    long_term_steroid_days: float = _t(90.0, "fracture-risk convention (≥ 3 months of systemic glucocorticoids)")
    fracture_risk_age_male: float = _t(65.0, "rule catalogue: older age (men ≥ 65) strengthens fracture risk")
    fracture_risk_age_female: float = _t(75.0, "rule catalogue: older age (women ≥ 75) strengthens fracture risk")
    fever_celsius: float = _t(
        38.0, "rule catalogue: fever is a body temperature (LOINC 8310-5) of 38.0 °C or more, dated in the episode"
    )
    chronic_back_pain_days: float = _t(
        84.0,
        "ACP 2017: chronic low back pain lasts more than 12 weeks — a code that means chronic back pain places the "
        "episode's start at least this long ago, whatever the record's dates",
    )
    nsaid_avoid_gestation_weeks: float = _t(
        20.0,
        "FDA Drug Safety Communication, 15 October 2020: avoid NSAIDs at 20 weeks of pregnancy or later (fetal kidney "
        "problems, low amniotic fluid)",
    )
    pregnancy_max_days: float = _t(
        301.0,
        "ACOG: a pregnancy is post-term after 42 weeks; a record of pregnancy (or a gestational age carried forward) "
        "past 43 weeks cannot describe a current pregnancy",
    )
    # further rules
    opioid_nonopioid_lookback_days: float = _t(
        90.0, "CDC 2022 recommendation 1: non-opioid therapy first (rule catalogue: 90 days)"
    )
    opioid_supply_warning_days: float = _t(
        7.0, "CDC 2022 recommendation 6: more than 7 days rarely needed for acute pain"
    )
    opioid_supply_info_days: float = _t(3.0, "CDC 2022 recommendation 6: 3 days or less often sufficient")
    alternative_supply_days: float = _t(
        7.0,
        "supply of a suggested replacement analgesic (naproxen, acetaminophen): NICE NG59 "
        "1.2.17–1.2.20 lowest effective dose for the shortest possible time, and ACP 2017's "
        "acute pain trials (1–2 weeks); the replaced draft's own supply when shorter",
    )
    acute_pain_days: float = _t(28.0, "ACP 2017: acute low back pain lasts less than 4 weeks")
    beers_age: float = _t(65.0, "AGS Beers Criteria 2023: avoid skeletal muscle relaxants at age ≥ 65")
    gabapentin_egfr_band_upper: float = _t(
        60.0, "gabapentin label, Table 1: no adjustment at CrCl ≥ 60 (eGFR used as its proxy)"
    )
    gabapentin_egfr_band_middle: float = _t(30.0, "gabapentin label, Table 1: band boundary CrCl 30")
    gabapentin_egfr_band_lower: float = _t(15.0, "gabapentin label, Table 1: band boundary CrCl 15")
    gabapentin_max_mg_egfr_30_59: float = _t(1400.0, "gabapentin label, Table 1: CrCl 30–59 → 400–1400 mg/day")
    gabapentin_max_mg_egfr_15_29: float = _t(700.0, "gabapentin label, Table 1: CrCl 15–29 → 200–700 mg/day")
    gabapentin_max_mg_egfr_below_15: float = _t(300.0, "gabapentin label, Table 1: CrCl < 15 → 100–300 mg/day")
    aspirin_cardioprotective_max_mg_day: float = _t(
        325.0, "rule catalogue: aspirin ≤ 325 mg/day ignored for NSAID duplication"
    )

    @classmethod
    def from_config(cls, overrides: dict[str, Any] | None = None) -> Thresholds:
        known = cls.names()
        for name in overrides or {}:
            if name not in known:
                raise ValueError(f"unknown threshold {name!r}")
        return cls(**{name: float(value) for name, value in (overrides or {}).items()})

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls))


def source(name: str) -> str:
    """The guideline or label a threshold's default comes from."""
    return next(f.metadata["source"] for f in dataclasses.fields(Thresholds) if f.name == name)
