"""The exact action list of every suggestion the service offers, and what the public CDS Hooks sandbox makes of it.

Each row: a situation, then for every card the labels and actions (type, resource type, id or resourceId, the code of
the drug or service). Replacements of a draft are one ``update`` of that draft (same id); a new resource of another type
is created before the order it replaces is removed; every update carries the whole resource and is valid FHIR R4.

Length: one table of every situation that offers a suggestion, so that a new one is added beside the others and the
sandbox's reading of every row is checked by the same two tests.
"""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.fhir_models import is_valid_r4
from tests.conftest import bundle, call, hook_request, patient
from tests.factories import (
    CPT,
    ICD10,
    KETOROLAC_INJ,
    KETOROLAC_ORAL,
    LBP,
    MRI_LUMBAR,
    PREDNISONE,
    SCIATICA,
    XR_LUMBAR,
    condition,
    draft,
    med_admin,
    med_request,
    observation,
    service_request,
)

LBP_10D = condition("lbp", *LBP, onset="2026-11-12")
NAPROXEN, IBUPROFEN, ACETAMINOPHEN = "198014", "197806", "198440"
OXY = ("1049621", "oxycodone hydrochloride 5 MG Oral Tablet")
GABA = ("310431", "gabapentin 300 MG Oral Capsule")
DIAZEPAM = ("197589", "Diazepam 5 MG Oral Tablet")
CYCLO = ("828348", "Cyclobenzaprine hydrochloride 10 MG Oral Tablet")
IBU = ("197806", "Ibuprofen 600 MG Oral Tablet")


def _code(resource: dict[str, Any]) -> str:
    concept = resource.get("medicationCodeableConcept") or resource.get("code") or {}
    return concept["coding"][0]["code"]


def _action(a: dict[str, Any]) -> tuple[str, ...]:
    if a["type"] == "delete":
        return ("delete", a["resourceId"])
    r = a["resource"]
    assert is_valid_r4(r), a  # strict in what we send
    assert a["description"]  # the spec: always send it
    ident = f"{r['resourceType']}/{r['id']}" if "id" in r else r["resourceType"]
    return (a["type"], ident, _code(r))


def suggestions(resp) -> dict[str, list[tuple[str, list[tuple[str, ...]]]]]:
    assert resp.status_code == 200, resp.get_json()
    return {
        c["source"]["topic"]["code"]: [
            (s["label"], [_action(a) for a in s["actions"]]) for s in c.get("suggestions", [])
        ]
        for c in resp.get_json()["cards"]
    }


def _order(client, drafts, hook="order-select", **prefetch):
    pre = {k: bundle(*v) if isinstance(v, list) else v for k, v in prefetch.items()}
    return call(client, hook_request(hook, drafts=drafts, prefetch=pre))


def _view(client, **prefetch):
    pre = {k: bundle(*v) if isinstance(v, list) else v for k, v in prefetch.items()}
    return call(client, hook_request("patient-view", prefetch=pre))


NAP = ("Replace with naproxen 500 mg twice daily",)
CASES: list[tuple[str, Any, dict[str, Any]]] = [
    (
        "ketorolac over the limit",
        lambda c: _order(c, [draft("k", *KETOROLAC_ORAL, supply_days=10, route="oral")]),
        {
            "ketorolac-duration": [
                ("Replace with naproxen 500 mg twice daily", [("update", "MedicationRequest/k", NAPROXEN)]),
                ("Shorten this order to 5 days (supply and duration)", [("update", "MedicationRequest/k", "834022")]),
            ]
        },
    ),
    (
        "ketorolac with no end date",
        lambda c: _order(c, [draft("k", *KETOROLAC_INJ, route="im")]),
        {
            "ketorolac-duration": [
                ("Shorten this order to 5 days (supply and duration)", [("update", "MedicationRequest/k", "1665461")]),
                ("Replace with naproxen 500 mg twice daily", [("update", "MedicationRequest/k", NAPROXEN)]),
            ]
        },
    ),
    (
        "two ketorolac orders over the limit",
        lambda c: _order(
            c,
            [
                draft("k1", *KETOROLAC_INJ, route="im", supply_days=3),
                draft("k2", *KETOROLAC_ORAL, supply_days=5, authored="2026-11-24"),
            ],
            hook="order-sign",
        ),
        {
            "ketorolac-duration": [
                (
                    "Replace with naproxen 500 mg twice daily",
                    [("update", "MedicationRequest/k1", NAPROXEN), ("delete", "MedicationRequest/k2")],
                )
            ]
        },
    ),
    (
        "active ketorolac past day 5",
        lambda c: _view(c, medications=[med_request("k", *KETOROLAC_ORAL, authored="2026-11-15", supply_days=10)]),
        {"ketorolac-duration": [("Stop the ketorolac order", [("update", "MedicationRequest/k", "834022")])]},
    ),
    (
        "oral ketorolac without parenteral",
        lambda c: _order(c, [draft("k", *KETOROLAC_ORAL, supply_days=3, route="oral")]),
        {
            "ketorolac-oral-start": [
                ("Replace with naproxen 500 mg twice daily", [("update", "MedicationRequest/k", NAPROXEN)]),
                ("Replace with ibuprofen 600 mg every 8 hours", [("update", "MedicationRequest/k", IBUPROFEN)]),
            ]
        },
    ),
    (
        "ketorolac contraindicated",
        lambda c: _order(
            c,
            [draft("k", *KETOROLAC_INJ, route="im", supply_days=2)],
            conditions=[condition("ckd", "N18.4", "Chronic kidney disease, stage 4 (severe)", system=ICD10)],
        ),
        {
            "ketorolac-contraindication": [
                ("Replace with acetaminophen 1 g every 8 hours", [("update", "MedicationRequest/k", ACETAMINOPHEN)]),
                ("Remove the ketorolac order", [("delete", "MedicationRequest/k")]),
            ]
        },
    ),
    (
        "ketorolac dose above the cap",
        lambda c: _order(
            c,
            [draft("k", *KETOROLAC_ORAL, supply_days=3, dose_mg=20, per_day=4)],
            medicationAdministrations=[med_admin("a", *KETOROLAC_INJ, "2026-11-22T06:00:00Z", route="iv")],
        ),
        {"ketorolac-dose": [("Change to 10 mg every 6 hours", [("update", "MedicationRequest/k", "834022")])]},
    ),
    (
        "steroid ordered for back pain",
        lambda c: _order(c, [draft("s", *PREDNISONE, supply_days=5, route="oral")], conditions=[LBP_10D]),
        {
            "systemic-steroid-back-pain": [
                ("Replace with naproxen 500 mg twice daily", [("update", "MedicationRequest/s", NAPROXEN)]),
                (
                    "Replace with physiotherapy referral",
                    [("create", "ServiceRequest", "308447003"), ("delete", "MedicationRequest/s")],
                ),
                ("Remove the steroid order", [("delete", "MedicationRequest/s")]),
            ]
        },
    ),
    (
        "steroid ordered with an NSAID contraindication",
        lambda c: _order(
            c,
            [draft("s", *PREDNISONE, supply_days=5, route="oral")],
            conditions=[LBP_10D, condition("ckd", "N18.4", "Chronic kidney disease, stage 4 (severe)", system=ICD10)],
        ),
        {
            "systemic-steroid-back-pain": [
                ("Replace with acetaminophen 1 g every 8 hours", [("update", "MedicationRequest/s", ACETAMINOPHEN)]),
                (
                    "Replace with physiotherapy referral",
                    [("create", "ServiceRequest", "308447003"), ("delete", "MedicationRequest/s")],
                ),
                ("Remove the steroid order", [("delete", "MedicationRequest/s")]),
            ]
        },
    ),
    (
        "patient-reported steroid for back pain",
        lambda c: _view(
            c,
            conditions=[LBP_10D],
            medications=[
                {
                    "resourceType": "MedicationStatement",
                    "id": "ms",
                    "status": "active",
                    "subject": {"reference": "Patient/p1"},
                    "medicationCodeableConcept": {
                        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": PREDNISONE[0]}]
                    },
                    "effectivePeriod": {"start": "2026-11-20"},
                    "dosage": [{"route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]}}],
                }
            ],
        ),
        {"systemic-steroid-back-pain": [("Refer to physiotherapy", [("create", "ServiceRequest", "308447003")])]},
    ),
    (
        "active steroid for back pain",
        lambda c: _view(
            c,
            conditions=[LBP_10D],
            medications=[med_request("s", *PREDNISONE, authored="2026-11-20", supply_days=10, route="oral")],
        ),
        {
            "systemic-steroid-back-pain": [
                (
                    "Replace with naproxen 500 mg twice daily",
                    [("create", "MedicationRequest", NAPROXEN), ("update", "MedicationRequest/s", "312615")],
                ),
                (
                    "Replace with physiotherapy referral",
                    [("create", "ServiceRequest", "308447003"), ("update", "MedicationRequest/s", "312615")],
                ),
                ("Stop the steroid order", [("update", "MedicationRequest/s", "312615")]),
            ]
        },
    ),
    (
        "early imaging",
        lambda c: _order(c, [service_request("xr", *XR_LUMBAR)], conditions=[LBP_10D]),
        {
            "imaging-early": [
                (
                    "Cancel imaging; refer to physiotherapy",
                    [("create", "ServiceRequest", "308447003"), ("delete", "ServiceRequest/xr")],
                ),
                ("Cancel the imaging order", [("delete", "ServiceRequest/xr")]),
            ]
        },
    ),
    (
        "cauda equina",
        lambda c: _view(c, conditions=[LBP_10D, condition("r", "R33.9", "Retention of urine", system=ICD10)]),
        {
            "imaging-red-flags": [
                (
                    "Order emergency MRI and same-day neurosurgery referral",
                    [("create", "ServiceRequest", "72148"), ("create", "ServiceRequest", "308482002")],
                ),
                ("Order the MRI only", [("create", "ServiceRequest", "72148")]),
            ]
        },
    ),
    (
        "fracture risk",
        lambda c: _view(c, conditions=[LBP_10D, condition("o", "64859006", "Osteoporosis")]),
        {
            "imaging-red-flags": [
                ("Order lumbar radiographs", [("create", "ServiceRequest", "72100")]),
                ("Refer to orthopaedic spine surgeon", [("create", "ServiceRequest", "308481009")]),
            ]
        },
    ),
    (
        "injection drug use, no fever",
        lambda c: _view(c, conditions=[LBP_10D, condition("i", "228388006", "Intravenous drug user")]),
        {"imaging-red-flags": []},
    ),
    (
        "radicular pain 8 weeks after naproxen",
        lambda c: _view(
            c,
            conditions=[condition("s", *SCIATICA, onset="2026-09-25")],
            medications=[
                med_request(
                    "n",
                    NAPROXEN,
                    "Naproxen 500 MG Oral Tablet",
                    authored="2026-10-01",
                    supply_days=14,
                    status="completed",
                )
            ],
        ),
        {
            "imaging-persistent-radicular": [
                ("Order MRI lumbar spine without contrast", [("create", "ServiceRequest", "72148")]),
                ("Refer to orthopaedic spine surgeon", [("create", "ServiceRequest", "308481009")]),
            ]
        },
    ),
    (
        "radicular pain 14 weeks after naproxen",
        lambda c: _view(
            c,
            conditions=[condition("s", *SCIATICA, onset="2026-08-16")],
            medications=[
                med_request(
                    "n",
                    NAPROXEN,
                    "Naproxen 500 MG Oral Tablet",
                    authored="2026-08-20",
                    supply_days=14,
                    status="completed",
                )
            ],
        ),
        {
            "referral-spine": [
                ("Refer to orthopaedic spine surgeon", [("create", "ServiceRequest", "308481009")]),
                (
                    "Order MRI lumbar spine and refer to orthopaedic spine surgeon",
                    [("create", "ServiceRequest", "72148"), ("create", "ServiceRequest", "308481009")],
                ),
            ]
        },
    ),
    (
        "repeat MRI",
        lambda c: _order(
            c,
            [service_request("mri", *MRI_LUMBAR)],
            conditions=[condition("s", *SCIATICA, onset="2026-05-01")],
            serviceRequests=[
                service_request("old", CPT, "72148", "MRI lumbar spine", status="completed", authored="2026-08-01")
            ],
        ),
        {"imaging-repeat": [("Cancel the repeat imaging order", [("delete", "ServiceRequest/mri")])]},
    ),
    (
        "opioid with a long supply",
        lambda c: _order(
            c, [draft("o", *OXY, supply_days=8, route="oral", dose_mg=5, per_day=4)], conditions=[LBP_10D]
        ),
        {
            "opioid-first-line": [
                ("Replace with naproxen 500 mg twice daily", [("update", "MedicationRequest/o", NAPROXEN)]),
                ("Shorten this order to 3 days (supply and duration)", [("update", "MedicationRequest/o", "1049621")]),
            ]
        },
    ),
    (
        "opioid on gabapentin",
        lambda c: _order(
            c,
            [draft("o", *OXY, supply_days=3, route="oral")],
            conditions=[LBP_10D],
            medications=[
                med_request("g", *GABA, authored="2026-10-01", route="oral"),
                med_request(
                    "n",
                    NAPROXEN,
                    "Naproxen 500 MG Oral Tablet",
                    authored="2026-11-12",
                    supply_days=5,
                    status="completed",
                ),
            ],
        ),
        {"opioid-sedative": [("Remove the new order", [("delete", "MedicationRequest/o")])]},
    ),
    (
        "two NSAIDs",
        lambda c: _order(
            c,
            [draft("n", NAPROXEN, "Naproxen 500 MG Oral Tablet", supply_days=10, route="oral")],
            conditions=[LBP_10D],
            medications=[med_request("i", *IBU, authored="2026-11-20", supply_days=10)],
        ),
        {"nsaid-duplicate": [("Remove the new NSAID order", [("delete", "MedicationRequest/n")])]},
    ),
    (
        "gabapentin without radicular pain",
        lambda c: _order(c, [draft("g", *GABA, supply_days=30, route="oral")], conditions=[LBP_10D]),
        {
            "gabapentinoid-nonradicular": [
                ("Replace with naproxen 500 mg twice daily", [("update", "MedicationRequest/g", NAPROXEN)]),
                ("Remove the gabapentinoid order", [("delete", "MedicationRequest/g")]),
            ]
        },
    ),
    (
        "gabapentin above the renal band",
        lambda c: _order(
            c,
            [draft("g", *GABA, supply_days=30, route="oral", dose_mg=600, per_day=3)],
            conditions=[condition("s", *SCIATICA, onset="2026-10-01")],
            labs=[observation("e", "98979-8", "eGFR", 25, "mL/min/{1.73_m2}", "2026-11-01")],
        ),
        {
            # GABA is the 300 mg capsule: the band's 700 mg once daily in whole capsules is 600 mg
            "gabapentinoid-renal-dose": [("Change to 600 mg once daily", [("update", "MedicationRequest/g", "310431")])]
        },
    ),
    (
        "muscle relaxant at 80",
        lambda c: _order(
            c,
            [draft("m", *CYCLO, supply_days=7, route="oral")],
            conditions=[LBP_10D],
            patient=patient("p1", birth="1946-01-01"),
        ),
        {"muscle-relaxant": [("Remove the muscle relaxant order", [("delete", "MedicationRequest/m")])]},
    ),
    (
        "benzodiazepine for back pain",
        lambda c: _order(c, [draft("d", *DIAZEPAM, supply_days=5, route="oral")], conditions=[LBP_10D]),
        {"benzodiazepine-back-pain": [("Remove the benzodiazepine order", [("delete", "MedicationRequest/d")])]},
    ),
    (
        "steroid repeated in the episode",
        lambda c: _order(
            c,
            [draft("p2", "259966", "Methylprednisolone 4 MG Oral Tablet", supply_days=6, route="oral")],
            conditions=[LBP_10D, condition("a", "J45.901", "Asthma with acute exacerbation", system=ICD10)],
            medications=[
                med_request("p1", *PREDNISONE, authored="2026-11-14", supply_days=5, status="stopped", route="oral")
            ],
        ),
        {"drug-class-repeat": [("Remove the repeat order", [("delete", "MedicationRequest/p2")])]},
    ),
]


@pytest.mark.parametrize("name, fire, expected", CASES, ids=[c[0] for c in CASES])
def test_every_suggestion_has_these_exact_actions(client, name, fire, expected):
    assert suggestions(fire(client)) == expected


# --- what the public CDS Hooks sandbox applies ----------------------------------------------------------------------


def sandbox_applies(suggestion: dict[str, Any]) -> tuple[str, str | None]:
    """The CDS Hooks sandbox's Rx View (src/reducers/medication-reducers.js, TAKE_SUGGESTION, commit 3b7e255):
    actions in order; the first create/update whose resource has a medicationCodeableConcept with ``text`` and
    ``coding[0].code`` replaces the order's medication (nothing else: not dose, not duration) and stops; the first
    delete clears the order and stops; anything else is skipped. Returns ("medication", code), ("cleared", None) or
    ("unchanged", None)."""
    for action in suggestion["actions"]:
        if action["type"] in ("create", "update"):
            concept = (action.get("resource") or {}).get("medicationCodeableConcept")
            if concept and concept.get("text") and (concept.get("coding") or [{}])[0].get("code"):
                return "medication", concept["coding"][0]["code"]
        elif action["type"] == "delete":
            return "cleared", None
    return "unchanged", None


DRUGS = {"naproxen": NAPROXEN, "ibuprofen": IBUPROFEN, "acetaminophen": ACETAMINOPHEN}


@pytest.mark.parametrize(
    "name, fire, expected",
    [
        c
        for c in CASES
        if c[0]
        in (
            "ketorolac over the limit",
            "ketorolac with no end date",
            "two ketorolac orders over the limit",
            "oral ketorolac without parenteral",
            "ketorolac contraindicated",
            "ketorolac dose above the cap",
            "steroid ordered for back pain",
            "steroid ordered with an NSAID contraindication",
            "opioid with a long supply",
            "gabapentin without radicular pain",
            "gabapentin above the renal band",
            "benzodiazepine for back pain",
        )
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_rx_view_of_the_sandbox_applies_what_each_label_says_it_can(client, name, fire, expected):
    """A replacement never empties the order in the sandbox (the defect of delete-then-create): it shows the new drug
    and the next order-select carries it. A removal clears the order. A change of supply or dose keeps the drug and
    changes nothing the sandbox shows — its Rx View applies only medications (documented in sandbox/README.md)."""
    for card in fire(client).get_json()["cards"]:
        for s in card.get("suggestions", []):
            outcome = sandbox_applies(s)
            label = s["label"]
            if label.startswith("Replace with physiotherapy"):
                assert outcome == ("cleared", None), (
                    label
                )  # the referral is not shown in Rx View; the steroid is removed
            elif label.startswith("Replace with "):
                assert outcome == ("medication", DRUGS[label.split()[2]]), label
            elif label.startswith("Remove"):
                assert outcome == ("cleared", None), label
            else:
                assert label.startswith(("Shorten", "Change to")) and outcome[0] == "medication", label
                assert outcome[1] == _code(s["actions"][0]["resource"])  # the same drug: nothing changes there


def _replacement(resp, label):
    return next(s for c in resp.get_json()["cards"] for s in c.get("suggestions", []) if s["label"] == label)["actions"]


@pytest.mark.parametrize(
    "draft_kw, days",
    [
        ({"supply_days": 10}, 7),  # a long supply is not inherited: alternative_supply_days
        ({"supply_days": 3}, 3),  # the draft's own shorter supply is kept
        ({"quantity": 40}, 7),  # a tablet count for the old drug: dropped, never an open-ended NSAID
    ],
)
def test_a_replacement_analgesic_has_a_bounded_supply(client, draft_kw, days):
    resp = _order(client, [draft("o", *OXY, route="oral", **draft_kw)], conditions=[LBP_10D])
    (action,) = _replacement(resp, "Replace with naproxen 500 mg twice daily")
    assert action["type"] == "update"
    assert action["resource"]["dispenseRequest"] == {
        "quantity": {"value": 2 * days, "unit": "tablet", "system": "http://unitsofmeasure.org", "code": "{tbl}"},
        "expectedSupplyDuration": {"value": days, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"},
    }
    assert is_valid_r4(action["resource"])


def test_a_created_replacement_counts_the_tablets_of_its_dose(client):
    """Acetaminophen 1 g (two 500 mg tablets) every 8 hours for 7 days is 42 tablets; created for a recorded order."""
    ckd4 = condition("ckd", "N18.4", "Chronic kidney disease, stage 4 (severe)", system=ICD10)
    resp = _view(
        client,
        conditions=[LBP_10D, ckd4],
        medications=[med_request("s", *PREDNISONE, authored="2026-11-20", supply_days=10)],
    )
    create, stop = _replacement(resp, "Replace with acetaminophen 1 g every 8 hours")
    assert create["type"] == "create" and stop["type"] == "update" and stop["resource"]["status"] == "stopped"
    assert create["resource"]["dispenseRequest"]["quantity"]["value"] == 42
    assert create["resource"]["dispenseRequest"]["expectedSupplyDuration"]["value"] == 7
