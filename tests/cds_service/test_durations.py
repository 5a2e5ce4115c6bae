"""The one duration normaliser: partial dates, UCUM durations, calendar-day supplies, doses per day."""

from __future__ import annotations

from datetime import date

import pytest

from cds_service.durations import (
    FuzzyDate,
    calendar_days,
    doses_per_day,
    duration_days,
    last_day,
    parse_date,
    span_days,
)

TODAY = date(2026, 11, 22)


RETENTION = ("267064002", "Retention of urine")


_NEURO_FINDING = {
    "coding": [{"system": "http://snomed.info/sct", "code": "449813001", "display": "Numbness of saddle area"}]
}


_V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


@pytest.mark.parametrize(
    "quantity, days",
    [
        ({"value": 5, "code": "d"}, 5),
        ({"value": 120, "code": "h"}, 5),
        ({"value": 121, "code": "h"}, 121 / 24),
        ({"value": 1, "code": "wk"}, 7),
        ({"value": 1, "code": "mo"}, 30),
        ({"value": 3, "unit": "days"}, 3),
        ({"value": 2, "unit": "Weeks"}, 14),
        ({"value": 10, "code": "furlong"}, None),
        ({"value": -1, "code": "d"}, None),
        ({"code": "d"}, None),
        ({"value": 2912119, "code": "d"}, None),
        ({"value": 1e300, "code": "a"}, None),
        ("5 days", None),
        ({"value": True, "code": "d"}, None),
    ],
)
def test_duration_days(quantity, days):
    assert duration_days(quantity) == (pytest.approx(days) if days is not None else None)


@pytest.mark.parametrize("days, covered", [(5, 5), (120 / 24, 5), (121 / 24, 6), (7, 7), (0.5, 1), (4.0000001, 4)])
def test_calendar_days(days, covered):
    assert calendar_days(days) == covered


def test_supply_of_n_days_covers_start_to_start_plus_n_minus_1():
    assert last_day(TODAY, 3) == date(2026, 11, 24)  # a 3-day supply started today ends the day after tomorrow
    assert span_days(TODAY, last_day(TODAY, 5)) == 5
    assert span_days(TODAY, last_day(TODAY, 6)) == 6


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-11-22", FuzzyDate(date(2026, 11, 22), date(2026, 11, 22))),
        ("2026-11-21T23:30:00-05:00", FuzzyDate(date(2026, 11, 21), date(2026, 11, 21))),  # the date as recorded
        ("2024-02", FuzzyDate(date(2024, 2, 1), date(2024, 2, 29))),
        ("2024", FuzzyDate(date(2024, 1, 1), date(2024, 12, 31))),
        ("2024-02-30", None),
        ("yesterday", None),
        (None, None),
        (20240101, None),
    ],
)
def test_parse_date(value, expected):
    assert parse_date(value) == expected


@pytest.mark.parametrize(
    "timing, per_day",
    [
        ({"repeat": {"frequency": 4, "period": 1, "periodUnit": "d"}}, 4),
        ({"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}}, 4),
        ({"repeat": {"frequency": 1, "frequencyMax": 2, "period": 1, "periodUnit": "d"}}, 2),
        ({"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}}, 1 / 7),
        ({"repeat": {"when": ["MORN", "EVE"]}}, 2),
        ({"repeat": {"when": "HS"}}, 1),  # DSTU2: one event code, not a list (not len("HS") = 2)
        ({"code": {"text": "BID"}}, None),
        (None, None),
    ],
)
def test_doses_per_day(timing, per_day):
    assert doses_per_day(timing) == per_day
