"""Opioid-first-line, opioid-sedative, nsaid-duplicate."""

from __future__ import annotations

import pytest

from tests.conftest import topics
from tests.factories import draft, med_request
from tests.hooks.support import LBP_10D, NAPROXEN_TRIED, OXY, OXY_ER, SCIATICA_OLD, card, order, view


def test_long_acting_opioid_for_acute_pain(client):
    resp = order(
        client, [draft("o", *OXY_ER, supply_days=3, route="oral")], conditions=[LBP_10D], medications=[NAPROXEN_TRIED]
    )
    assert topics(resp) == [("opioid-first-line", "warning")]
    c = card(resp, "opioid-first-line")
    assert c["summary"].startswith("Opioid for back pain: long-acting opioid for acute pain.")
    assert "12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet" in c["detail"]


@pytest.mark.parametrize(
    "supply, expected", [(3, []), (5, [("opioid-first-line", "info")]), (8, [("opioid-first-line", "warning")])]
)
def test_opioid_supply_bands_after_a_non_opioid(client, supply, expected):
    resp = order(
        client, [draft("o", *OXY, supply_days=supply, route="oral")], conditions=[LBP_10D], medications=[NAPROXEN_TRIED]
    )
    assert topics(resp) == expected


def test_opioid_shorten_suggestion_updates_the_supply(client):
    resp = order(
        client,
        [draft("o", *OXY, supply_days=8, route="oral", dose_mg=5, per_day=4)],
        conditions=[LBP_10D],
        medications=[NAPROXEN_TRIED],
    )
    # naproxen was already tried in this episode: the supply is the problem, so shortening is offered first
    shorten, alternative = card(resp, "opioid-first-line")["suggestions"]
    assert shorten["label"] == "Shorten this order to 3 days (supply and duration)" and shorten["isRecommended"] is True
    assert alternative["label"] == "Replace with naproxen 500 mg twice daily" and not alternative.get("isRecommended")
    assert shorten["actions"][0]["resource"]["dispenseRequest"]["expectedSupplyDuration"]["value"] == 3


def test_buprenorphine_is_not_evaluated(client):
    bup = draft("b", None, "Buprenorphine 8 MG Sublingual Tablet", text_only=True, supply_days=30)
    assert topics(order(client, [bup], conditions=[LBP_10D])) == []


def test_patient_view_active_opioid_with_benzodiazepine(client):
    meds = [
        med_request("o", *OXY, authored="2026-11-15", route="oral"),
        med_request("d", "197591", "Diazepam 5 MG Oral Tablet", authored="2026-11-10", route="oral"),
    ]
    resp = view(client, conditions=[LBP_10D], medications=meds)
    assert topics(resp) == [("opioid-sedative", "warning")]
    assert card(resp, "opioid-sedative")["summary"].startswith("Opioid and benzodiazepine are both active")


def test_sedative_ordered_for_a_patient_on_an_opioid(client):
    resp = order(
        client,
        [draft("g", "310431", "gabapentin 300 MG Oral Capsule", supply_days=30, route="oral")],
        conditions=[SCIATICA_OLD],
        medications=[med_request("o", *OXY, authored="2026-11-20", route="oral")],
    )
    assert topics(resp) == [("opioid-sedative", "warning")]
    assert card(resp, "opioid-sedative")["suggestions"][0]["actions"][0]["resourceId"] == "MedicationRequest/g"


@pytest.mark.parametrize(
    "aspirin, fires", [(dict(dose_mg=81, per_day=1), False), (dict(dose_mg=650, per_day=4), True), (dict(), False)]
)
def test_aspirin_counts_only_above_325_mg_per_day(client, aspirin, fires):
    current = med_request("asa", None, "aspirin tablet", authored="2026-11-01", route="oral", text_only=True, **aspirin)
    resp = order(
        client,
        [draft("n", "198014", "Naproxen 500 MG Oral Tablet", supply_days=10, route="oral")],
        conditions=[LBP_10D],
        medications=[current],
    )
    assert (topics(resp) == [("nsaid-duplicate", "warning")]) is fires
