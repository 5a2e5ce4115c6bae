"""The ketorolac course as hooks/ketorolac_course.py counts it, through the duration card: dose-free days, stopped
orders, mg doses against tablet counts, and shortening an order (its quantity recomputed)."""

from __future__ import annotations

import pytest

from tests.conftest import topics
from tests.factories import KETOROLAC_ORAL, draft, med_admin, med_request
from tests.hooks.support import KETOROLAC_IV, LBP_10D, NAPROXEN_TRIED, OXY, card, order, view


def test_active_open_ended_ketorolac_counts_until_today(client):
    open_ended = med_request("k0", *KETOROLAC_ORAL, authored="2026-11-19", route="oral")  # active, no duration
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=5, route="oral")], medications=[open_ended])
    assert topics(resp) == [("ketorolac-duration", "critical")]
    assert "Ketorolac would run 8 days" in card(resp, "ketorolac-duration")["summary"]  # 19th → 26th


def test_stopped_ketorolac_order_counts_to_today_when_its_stop_date_was_not_recorded(client):
    # FHIR "stopped": doses were given. 11-20 → today (stop date unknown), IM today, oral 11-22..11-26: 7 days.
    stopped = med_request(
        "k0",
        "834022",
        "Ketorolac Tromethamine 10 MG Oral Tablet",
        authored="2026-11-20",
        supply_days=5,
        status="stopped",
    )
    given = med_admin(
        "a", "1665461", "1 ML Ketorolac Tromethamine 30 MG/ML Injection", "2026-11-22T06:00:00Z", route="im"
    )
    resp = order(
        client,
        [draft("k", "834022", "Ketorolac Tromethamine 10 MG Oral Tablet", supply_days=5, route="oral")],
        medications=[stopped],
        medicationAdministrations=[given],
    )
    assert topics(resp) == [("ketorolac-duration", "critical")]
    detail = card(resp, "ketorolac-duration")["detail"]
    assert "| First ketorolac dose | 2026-11-20 (already given: " in detail
    assert (
        "with no stop date recorded: Ketorolac Tromethamine 10 MG Oral Tablet (from 2026-11-20, counted to today)"
        in detail
    )


def test_a_stopped_order_whose_plan_ended_before_today_is_counted_to_its_planned_end(client):
    stopped = med_request(
        "k0", *KETOROLAC_ORAL, authored="2026-11-15", supply_days=3, status="stopped"
    )  # plan: 11-15..11-17
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=5, route="oral")], medications=[stopped])
    c = card(resp, "ketorolac-duration")  # 11-15..11-17, 4 dose-free days, 11-22..11-26: 12 days
    assert c["summary"].startswith("Ketorolac would run 12 days")
    assert "(from 2026-11-15, counted to its planned end, 2026-11-17)" in c["detail"]


def test_doses_on_non_consecutive_days_are_one_course(client):
    given = [
        med_admin("a1", *KETOROLAC_IV, "2026-11-19T09:00:00Z", route="im", dose_mg=30),
        med_admin("a2", *KETOROLAC_IV, "2026-11-21T09:00:00Z", route="iv", dose_mg=15),
    ]
    resp = order(
        client,
        [draft("k", *KETOROLAC_ORAL, supply_days=4, route="oral", dose_mg=10, per_day=4)],
        medicationAdministrations=given,
    )
    assert topics(resp) == [("ketorolac-duration", "critical")]
    c = card(resp, "ketorolac-duration")
    assert c["summary"].startswith("Ketorolac would run 7 days (limit 5")
    assert (
        "| First ketorolac dose | 2026-11-19 (already given: 1 ML Ketorolac Tromethamine 30 MG/ML Injection) |"
        in c["detail"]
    )
    assert (
        "| Dose-free days within the course | 2026-11-20 (1 day) (a dose-free day does not end a course) |"
        in c["detail"]
    )
    assert "| Planned last day | 2026-11-25 (4-day supply) |" in c["detail"]
    assert "| Routes | IM, IV, oral |" in c["detail"]
    assert "| Days allowed from today | 2 |" in c["detail"]


@pytest.mark.parametrize(
    "last_dose, fires",
    [
        ("2026-11-14", True),  # 7 dose-free days (11-15..11-21): one course
        ("2026-11-13", False),
    ],
)  # 8: a finished course of its own
def test_gap_threshold_boundary(client, last_dose, fires):
    given = [med_admin("a1", *KETOROLAC_IV, f"{last_dose}T09:00:00Z", route="im")]
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=3, route="oral")], medicationAdministrations=given)
    assert (("ketorolac-duration", "critical") in topics(resp)) is fires


def test_gap_threshold_is_site_configurable():
    from tests.hooks.conftest import InProcess

    site = InProcess(thresholds={"ketorolac_course_gap_days": 0})
    given = [med_admin("a1", *KETOROLAC_IV, "2026-11-19T09:00:00Z", route="im")]
    resp = order(site, [draft("k", *KETOROLAC_ORAL, supply_days=4, route="oral")], medicationAdministrations=given)
    assert ("ketorolac-duration", "critical") not in topics(resp)  # a site that resets the count after one free day


def test_exactly_five_days_with_a_gap_does_not_fire(client):
    given = [med_admin("a1", *KETOROLAC_IV, "2026-11-20T09:00:00Z", route="im")]  # 11-20, free 11-21, 11-22..11-24
    resp = order(client, [draft("k", *KETOROLAC_ORAL, supply_days=3, route="oral")], medicationAdministrations=given)
    assert topics(resp) == []


def test_patient_view_counts_the_course_across_a_dose_free_stretch(client):
    iv = med_request("iv", *KETOROLAC_IV, authored="2026-11-15", supply_days=2, status="completed", route="iv")
    oral = med_request("po", *KETOROLAC_ORAL, authored="2026-11-20", supply_days=5, route="oral")
    resp = view(client, medications=[iv, oral])
    assert topics(resp) == [("ketorolac-duration", "critical")]
    c = card(resp, "ketorolac-duration")
    assert c["summary"].startswith("Ketorolac is on day 8 (limit 5")
    assert "| Dose-free days within the course | 2026-11-17 to 2026-11-19 (3 days) |" in c["detail"]


def test_stopped_inpatient_iv_order_then_discharge_oral_prescription(client):
    inpatient = med_request(
        "iv", *KETOROLAC_IV, authored="2026-11-19", status="stopped", route="iv", dose_mg=15, per_day=4
    )
    resp = order(
        client,
        [draft("po", *KETOROLAC_ORAL, supply_days=5, route="oral", dose_mg=10, per_day=4)],
        medications=[inpatient],
    )
    assert topics(resp) == [("ketorolac-duration", "critical")]
    c = card(resp, "ketorolac-duration")
    assert c["summary"].startswith("Ketorolac would run 8 days")  # 11-19 → 11-26
    assert (
        "Stopped order with no stop date recorded: 1 ML Ketorolac Tromethamine 30 MG/ML Injection (from 2026-11-19, "
        "counted to today)"
    ) in c["detail"]


@pytest.mark.parametrize(
    "stop",
    [
        {"dispenseRequest": {"validityPeriod": {"start": "2026-11-18", "end": "2026-11-19"}}},
        {
            "extension": [
                {
                    "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-MedicationRequest.statusChanged",
                    "valueDateTime": "2026-11-19T14:00:00Z",
                }
            ]
        },
        {
            "statusReason": {
                "text": "pain controlled",
                "extension": [{"url": "https://ehr.example.org/fhir/discontinue-date", "valueDateTime": "2026-11-19"}],
            }
        },
    ],
)
def test_a_recorded_stop_date_ends_the_stopped_order(client, stop):
    inpatient = med_request("iv", *KETOROLAC_IV, authored="2026-11-18", status="stopped", route="iv") | stop
    resp = order(client, [draft("po", *KETOROLAC_ORAL, supply_days=5, route="oral")], medications=[inpatient])
    c = card(resp, "ketorolac-duration")
    assert c["indicator"] == "critical" and c["summary"].startswith("Ketorolac would run 9 days")  # 11-18 → 11-26
    assert "no stop date recorded" not in c["detail"]


def test_a_stopped_order_ends_on_its_last_administration_when_they_were_sent(client):
    inpatient = med_request("iv", *KETOROLAC_IV, authored="2026-11-10", status="stopped", route="iv")
    given = [med_admin(f"a{d}", *KETOROLAC_IV, f"2026-11-{d}T09:00:00Z", route="iv") for d in (10, 11, 12)]
    for a in given:
        a["request"] = {"reference": "MedicationRequest/iv"}
    drafts = [draft("po", *KETOROLAC_ORAL, supply_days=3, route="oral")]
    # last dose 11-12, then 9 dose-free days: the discharge prescription starts a course of its own
    assert topics(order(client, drafts, medications=[inpatient], medicationAdministrations=given)) == [
        ("ketorolac-oral-start", "warning")
    ]
    # without the administrations, the stop date is unknown: counted to today
    assert ("ketorolac-duration", "critical") in topics(order(client, drafts, medications=[inpatient]))


@pytest.mark.parametrize(
    "status, authored", [("entered-in-error", "2026-11-19"), ("cancelled", "2026-11-19"), ("stopped", "2026-11-25")]
)  # stopped before it started
def test_orders_that_were_never_given_never_count(client, status, authored):
    other = med_request("iv", *KETOROLAC_IV, authored=authored, status=status, route="iv", supply_days=3)
    resp = order(client, [draft("po", *KETOROLAC_ORAL, supply_days=5, route="oral")], medications=[other])
    assert ("ketorolac-duration", "critical") not in topics(resp)


def test_mg_dose_with_a_tablet_quantity_gives_the_supply(client):
    rx = draft("k", *KETOROLAC_ORAL, route="oral", dose_mg=10, per_day=4, quantity=40)  # 40 tablets, 10 mg q6h
    resp = order(
        client, [rx], medicationAdministrations=[med_admin("a", *KETOROLAC_IV, "2026-11-22T06:00:00Z", route="im")]
    )
    assert topics(resp) == [("ketorolac-duration", "critical")]
    c = card(resp, "ketorolac-duration")
    assert c["summary"].startswith("Ketorolac would run 10 days")
    assert "| Planned last day | 2026-12-01 (10-day supply (40 ÷ 1 per dose × 4 doses a day)) |" in c["detail"]
    assert "no end date" not in c["summary"]


def _shorten(resp):
    return next(
        s for c in resp.get_json()["cards"] for s in c.get("suggestions", []) if s["label"].startswith("Shorten")
    )


def test_shortening_a_mg_dose_order_recomputes_the_tablets(client):
    """40 tablets at 10 mg (one 10 mg tablet) every 6 hours, after IM ketorolac today: 5 days allowed (today counts)
    → 20 tablets, never 5 days × 4 doses × 10 (the mg) = 200."""
    rx = draft("k", *KETOROLAC_ORAL, route="oral", dose_mg=10, per_day=4, quantity=40)
    resp = order(
        client, [rx], medicationAdministrations=[med_admin("a", *KETOROLAC_IV, "2026-11-22T06:00:00Z", route="im")]
    )
    (action,) = _shorten(resp)["actions"]
    dispense = action["resource"]["dispenseRequest"]
    assert dispense["expectedSupplyDuration"]["value"] == 5
    assert dispense["quantity"] == {
        "value": 20,
        "unit": "tablet",
        "code": "{tbl}",
        "system": "http://unitsofmeasure.org",
    }
    assert action["description"] == "Limit the ketorolac order to 5 days"


def test_shortening_a_solution_order_counts_millilitres(client):
    """15 mg of a 30 mg/mL solution every 6 hours is 2 mL a day: 3 days allowed → 6 mL."""
    rx = draft("k", *KETOROLAC_IV, route="im", dose_mg=15, per_day=4, quantity=20)
    rx["dispenseRequest"]["quantity"] = {"value": 20, "unit": "mL", "code": "mL", "system": "http://unitsofmeasure.org"}
    given = [med_admin(f"a{i}", *KETOROLAC_IV, f"2026-11-{d}T06:00:00Z", route="im") for i, d in enumerate((20, 21))]
    resp = order(client, [rx], medicationAdministrations=given)
    (action,) = _shorten(resp)["actions"]
    assert action["resource"]["dispenseRequest"]["quantity"]["value"] == 6


def test_a_quantity_that_cannot_be_recomputed_is_removed_not_left_at_the_long_supply(client):
    rx = draft("k", *KETOROLAC_ORAL, route="oral", supply_days=10, quantity=40)  # no dose: tablets per day unknown
    resp = order(client, [rx])
    (action,) = _shorten(resp)["actions"]
    assert "quantity" not in action["resource"]["dispenseRequest"]
    assert action["resource"]["dispenseRequest"]["expectedSupplyDuration"]["value"] == 5
    assert (
        action["description"] == "Limit the ketorolac order to 5 days (quantity removed: set it for the shorter supply)"
    )


def test_strength_from_the_medication_resource_converts_a_mg_dose(client):
    med = {
        "resourceType": "Medication",
        "id": "toradol",
        "code": {"text": "Toradol tablets"},
        "ingredient": [
            {
                "itemCodeableConcept": {"text": "ketorolac tromethamine"},
                "strength": {
                    "numerator": {"value": 10, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"},
                    "denominator": {"value": 1, "unit": "tablet", "code": "{tbl}"},
                },
            }
        ],
    }
    rx = draft(
        "k", None, "x", route="oral", dose_mg=20, per_day=2, quantity=20
    )  # 20 mg = 2 tablets, twice a day: 5 days
    del rx["medicationCodeableConcept"]
    rx["medicationReference"] = {"reference": "Medication/toradol"}
    resp = order(
        client,
        [rx],
        medications=[med],
        medicationAdministrations=[med_admin("a", *KETOROLAC_IV, "2026-11-21T06:00:00Z", route="im")],
    )
    c = card(resp, "ketorolac-duration")  # 11-21 IM + 11-22..11-26
    assert c["indicator"] == "critical" and c["summary"].startswith("Ketorolac would run 6 days")
    assert "(5-day supply (20 ÷ 2 per dose × 2 doses a day))" in c["detail"]


FENTANYL_BUCCAL = ("668363", "Fentanyl 0.1 MG Buccal Tablet")


def test_a_microgram_dose_is_weighed_not_counted(client):
    """100 µg every 6 hours of a 0.1 mg buccal tablet, 40 tablets: shortened to 3 days is 12 tablets, never 1200 (the
    µg amount read as a count of tablets)."""
    rx = draft(
        "o", *FENTANYL_BUCCAL, route="oral", supply_days=10, quantity=40, per_day=4, dose_value=100, dose_unit="ug"
    )
    resp = order(client, [rx], conditions=[LBP_10D], medications=[NAPROXEN_TRIED])
    (action,) = _shorten(resp)["actions"]
    assert action["resource"]["dispenseRequest"]["quantity"]["value"] == 12
    assert action["resource"]["dispenseRequest"]["expectedSupplyDuration"]["value"] == 3


def test_a_measured_dose_against_a_count_of_items_is_not_converted(client):
    """5 mL every 6 hours against a quantity of 20 "each": no conversion is known, so the quantity is removed (never
    5 × 4 × 3 = 60 items), and a shortened order never dispenses more than the longer one did."""
    rx = draft("o", *OXY, route="oral", supply_days=10, quantity=20, per_day=4, dose_value=5, dose_unit="mL")
    rx["dispenseRequest"]["quantity"] = {
        "value": 20,
        "unit": "each",
        "code": "{each}",
        "system": "http://unitsofmeasure.org",
    }
    resp = order(client, [rx], conditions=[LBP_10D], medications=[NAPROXEN_TRIED])
    (action,) = _shorten(resp)["actions"]
    assert "quantity" not in action["resource"]["dispenseRequest"]
    assert action["description"].endswith("(quantity removed: set it for the shorter supply)")
