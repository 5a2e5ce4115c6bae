"""Synthetic charts for the benchmark: prefetch payloads of three sizes (small ~20, typical ~350, large ~5,000
resources) shaped like an EHR's, and the hook request bodies that carry them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

SIZES = {"small": (5, 10, 4), "typical": (50, 200, 100), "large": (700, 3000, 1300)}  # conditions, meds, observations
CONDITION_CODES = [
    ("http://snomed.info/sct", "279039007", "Low back pain"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "M54.41", "Lumbago with sciatica, right side"),
    ("http://snomed.info/sct", "59621000", "Essential hypertension"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "E11.9", "Type 2 diabetes mellitus"),
    ("http://snomed.info/sct", "64859006", "Osteoporosis"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "J45.909", "Asthma, uncomplicated"),
]
MED_CODES = [
    ("834022", "Ketorolac Tromethamine 10 MG Oral Tablet"),
    ("314076", "lisinopril 10 MG Oral Tablet"),
    ("198014", "Naproxen 500 MG Oral Tablet"),
    ("312615", "Prednisone 20 MG Oral Tablet"),
    ("197361", "amlodipine 5 MG Oral Tablet"),
    ("310431", "gabapentin 300 MG Oral Capsule"),
    (None, "Vitamin D3 1000 unit capsule"),
]
OBS_CODES = [
    ("98979-8", "eGFR", "mL/min/{1.73_m2}", 72),
    ("2160-0", "Creatinine", "mg/dL", 0.9),
    ("29463-7", "Body weight", "kg", 74),
]


def synthetic_prefetch(size: str, pid: str = "bench-1", today: date | None = None) -> dict[str, Any]:
    n_cond, n_med, n_obs = SIZES[size]
    today = today or datetime.now(UTC).date()
    subject = {"reference": f"Patient/{pid}"}

    def day(n: int) -> str:
        return (today - timedelta(days=n)).isoformat()

    conditions = [
        {
            "resourceType": "Condition",
            "id": f"c{i}",
            "subject": subject,
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active" if i % 4 else "resolved",
                    }
                ]
            },
            "code": {"coding": [{"system": s, "code": c, "display": d}], "text": d},
            "onsetDateTime": day(30 + 17 * i),
        }
        for i, (s, c, d) in ((i, CONDITION_CODES[i % len(CONDITION_CODES)]) for i in range(n_cond))
    ]
    meds = []
    for i in range(n_med):
        code, display = MED_CODES[i % len(MED_CODES)]
        concept: dict[str, Any] = {"text": display}
        if code:
            concept["coding"] = [
                {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code, "display": display}
            ]
        meds.append(
            {
                "resourceType": "MedicationRequest",
                "id": f"m{i}",
                "status": "completed" if i % 3 else "active",
                "intent": "order",
                "subject": subject,
                "medicationCodeableConcept": concept,
                "authoredOn": day(40 + 9 * i),
                "dosageInstruction": [
                    {
                        "text": "as directed",
                        "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                        "route": {
                            "coding": [
                                {"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral route"}
                            ]
                        },
                        "doseAndRate": [
                            {
                                "doseQuantity": {
                                    "value": 1,
                                    "unit": "tablet",
                                    "system": "http://unitsofmeasure.org",
                                    "code": "{tbl}",
                                }
                            }
                        ],
                    }
                ],
                "dispenseRequest": {
                    "expectedSupplyDuration": {
                        "value": 30,
                        "unit": "days",
                        "system": "http://unitsofmeasure.org",
                        "code": "d",
                    },
                    "quantity": {"value": 60, "unit": "tablet", "system": "http://unitsofmeasure.org", "code": "{tbl}"},
                },
                "note": [{"text": "Synthetic benchmark order " + "x" * 200}],
            }
        )
    observations = [
        {
            "resourceType": "Observation",
            "id": f"o{i}",
            "status": "final",
            "subject": subject,
            "category": [
                {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": c, "display": d}]},
            "effectiveDateTime": day(5 * i),
            "valueQuantity": {"value": v, "unit": u, "system": "http://unitsofmeasure.org", "code": u},
        }
        for i, (c, d, u, v) in ((i, OBS_CODES[i % len(OBS_CODES)]) for i in range(n_obs))
    ]

    def searchset(rs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(rs),
            "entry": [
                {
                    "fullUrl": f"https://ehr.example.org/fhir/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in rs
            ],
        }

    empty = searchset([])
    return {
        "patient": {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1961-04-12"},
        "conditions": searchset(conditions),
        "medications": searchset(meds),
        "labs": searchset(observations),
        "findings": empty,
        "medicationStatements": empty,
        "medicationAdministrations": empty,
        "serviceRequests": empty,
        "procedures": empty,
        "imagingStudies": empty,
        "diagnosticReports": empty,
        "allergies": empty,
    }


def hook_body(hook: str, prefetch: dict[str, Any], pid: str = "bench-1") -> bytes:
    context: dict[str, Any] = {"userId": "Practitioner/bench", "patientId": pid}
    if hook != "patient-view":
        draft = {
            "resourceType": "MedicationRequest",
            "id": "draft-1",
            "status": "draft",
            "intent": "order",
            "subject": {"reference": f"Patient/{pid}"},
            "medicationCodeableConcept": {
                "coding": [
                    {
                        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                        "code": "834022",
                        "display": "Ketorolac Tromethamine 10 MG Oral Tablet",
                    }
                ]
            },
            "dispenseRequest": {
                "expectedSupplyDuration": {
                    "value": 10,
                    "unit": "days",
                    "system": "http://unitsofmeasure.org",
                    "code": "d",
                }
            },
        }
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]}
        if hook == "order-select":
            context["selections"] = ["MedicationRequest/draft-1"]
    return orjson.dumps({"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context, "prefetch": prefetch})
