#!/usr/bin/env python3
"""Authoring aid (run it from the project's virtualenv): writes the synthetic patient bundles in sandbox/patients/ (US
Core-shaped FHIR R4).

    python sandbox/make_patients.py

Dates are relative ("@today-9d", "@now-1d", "@today-52y") and resolved when a bundle is loaded, so the files
never age. This writes only the *.bundle.json files; the *.expected.json files beside them are written by hand
from the clinical catalogue (docs: sandbox/README.md) and are never generated.

Length: it is the patients' data — 47 records, one short builder chain each, read top to bottom by patient number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cds_service.terminology import CPT, ICD10CM, LOINC, RXNORM, SNOMED

OUT = Path(__file__).parent / "patients"
ICD10 = ICD10CM

UCUM = "http://unitsofmeasure.org"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
ROUTES = {
    "oral": ("26643006", "Oral route"),
    "iv": ("47625008", "Intravenous route"),
    "im": ("78421000", "Intramuscular route"),
    "epidural": ("404820008", "Epidural route"),
    "ophthalmic": ("54485002", "Ophthalmic use"),
}


class P:
    def __init__(self, pid: str, given: str, family: str, gender: str, age: str) -> None:
        self.pid = pid
        self.resources: list[dict[str, Any]] = [
            {
                "resourceType": "Patient",
                "id": pid,
                "meta": {"profile": [US_CORE + "us-core-patient"]},
                "identifier": [{"system": "urn:oid:2.16.840.1.113883.4.642.99", "value": f"MRN-{pid}"}],
                "name": [{"use": "official", "family": family, "given": [given]}],
                "gender": gender,
                "birthDate": f"@today-{age}",
            }
        ]
        self.n = 0

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{self.pid}-{prefix}{self.n}"

    def _subject(self) -> dict[str, str]:
        return {"reference": f"Patient/{self.pid}"}

    def condition(
        self,
        system: str,
        code: str,
        display: str,
        onset: str | None = None,
        status: str = "active",
        recorded: str | None = None,
    ) -> P:
        r: dict[str, Any] = {
            "resourceType": "Condition",
            "id": self._id("cond"),
            "meta": {"profile": [US_CORE + "us-core-condition-problems-health-concerns"]},
            "clinicalStatus": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]
            },
            "verificationStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}
                ]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                            "code": "problem-list-item",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
            "subject": self._subject(),
        }
        if onset:
            r["onsetDateTime"] = onset
        if recorded:
            r["recordedDate"] = recorded
        self.resources.append(r)
        return self

    def med(
        self,
        code: str | None,
        display: str,
        authored: str,
        *,
        status: str = "active",
        route: str | None = None,
        supply: float | None = None,
        dose_mg: float | None = None,
        per_day: float | None = None,
    ) -> P:
        concept: dict[str, Any] = {"text": display}
        if code:
            concept["coding"] = [{"system": RXNORM, "code": code, "display": display}]
        r: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": self._id("mr"),
            "meta": {"profile": [US_CORE + "us-core-medicationrequest"]},
            "status": status,
            "intent": "order",
            "medicationCodeableConcept": concept,
            "subject": self._subject(),
            "authoredOn": authored,
            "requester": {"display": "Dr. Replay"},
        }
        dosage = _dosage(route, dose_mg, per_day)
        if dosage:
            r["dosageInstruction"] = [dosage]
        if supply:
            r["dispenseRequest"] = {
                "expectedSupplyDuration": {"value": supply, "unit": "days", "system": UCUM, "code": "d"}
            }
        self.resources.append(r)
        return self

    def statement(self, code: str | None, display: str, start: str, status: str = "active") -> P:
        concept: dict[str, Any] = {"text": display}
        if code:
            concept["coding"] = [{"system": RXNORM, "code": code, "display": display}]
        self.resources.append(
            {
                "resourceType": "MedicationStatement",
                "id": self._id("ms"),
                "status": status,
                "medicationCodeableConcept": concept,
                "subject": self._subject(),
                "effectivePeriod": {"start": start},
                "dateAsserted": start,
            }
        )
        return self

    def given(self, code: str, display: str, when: str, route: str, dose_mg: float | None = None) -> P:
        dosage: dict[str, Any] = {
            "route": {"coding": [{"system": SNOMED, "code": ROUTES[route][0], "display": ROUTES[route][1]}]}
        }
        if dose_mg is not None:
            dosage["dose"] = {"value": dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}
        self.resources.append(
            {
                "resourceType": "MedicationAdministration",
                "id": self._id("ma"),
                "status": "completed",
                "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}]},
                "subject": self._subject(),
                "effectiveDateTime": when,
                "dosage": dosage,
            }
        )
        return self

    def lab(self, code: str, display: str, value: float, unit: str, when: str) -> P:
        self.resources.append(
            {
                "resourceType": "Observation",
                "id": self._id("obs"),
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "vital-signs" if code in ("29463-7", "8310-5") else "laboratory",
                            }
                        ]
                    }
                ],
                "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                "subject": self._subject(),
                "effectiveDateTime": when,
                "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            }
        )
        return self

    def finding(self, code: str, display: str, when: str, **extra: Any) -> P:
        """A finding recorded at examination as an Observation (SNOMED CT code; no value: it was observed)."""
        r: dict[str, Any] = {
            "resourceType": "Observation",
            "id": self._id("obs"),
            "status": "final",
            "category": [
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "exam"}]}
            ],
            "code": {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display},
            "subject": self._subject(),
            "effectiveDateTime": when,
        }
        self.resources.append(r | extra)
        return self

    def order(self, system: str, code: str, display: str, when: str, status: str = "completed") -> P:
        self.resources.append(
            {
                "resourceType": "ServiceRequest",
                "id": self._id("sr"),
                "status": status,
                "intent": "order",
                "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
                "subject": self._subject(),
                "authoredOn": when,
            }
        )
        return self

    def procedure(self, system: str, code: str, display: str, when: str) -> P:
        self.resources.append(
            {
                "resourceType": "Procedure",
                "id": self._id("proc"),
                "status": "completed",
                "code": {"coding": [{"system": system, "code": code, "display": display}]},
                "subject": self._subject(),
                "performedDateTime": when,
            }
        )
        return self

    def report(self, code: str, display: str, when: str, status: str = "final") -> P:
        """A radiology report (US Core DiagnosticReport for report and note, category Radiology)."""
        self.resources.append(
            {
                "resourceType": "DiagnosticReport",
                "id": self._id("dr"),
                "status": status,
                "category": [{"coding": [{"system": LOINC, "code": "LP29684-5", "display": "Radiology"}]}],
                "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
                "subject": self._subject(),
                "effectiveDateTime": when,
                "conclusion": "See report.",
            }
        )
        return self

    def bundle(self) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{r['resourceType']}-{r['id']}", "resource": r} for r in self.resources],
        }


def _dosage(route: str | None, dose_mg: float | None, per_day: float | None) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if per_day:
        d["timing"] = {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}}
    if route:
        d["route"] = {"coding": [{"system": SNOMED, "code": ROUTES[route][0], "display": ROUTES[route][1]}]}
    if dose_mg:
        d["doseAndRate"] = [{"doseQuantity": {"value": dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}}]
    return d


KETO_ORAL = ("834022", "Ketorolac Tromethamine 10 MG Oral Tablet")
KETO_INJ = ("1665461", "1 ML Ketorolac Tromethamine 30 MG/ML Injection")
LBP = (SNOMED, "279039007", "Low back pain (finding)")
NAPROXEN = ("198014", "Naproxen 500 MG Oral Tablet")
MRI = (CPT, "72148", "MRI lumbar spine without contrast")
PT = (SNOMED, "91251008", "Physical therapy procedure (regime/therapy)")


def patients() -> dict[str, P]:
    ps: dict[str, P] = {}
    # --- the five seed situations ---------------------------------------------------------------------------------
    ps["01-seed-spondylosis-ketorolac"] = (
        P("bp01", "Maria", "Alvarez", "female", "52y")
        .condition(ICD10, "M47.816", "Spondylosis without myelopathy or radiculopathy, lumbar region", "@today-120d")
        .condition(SNOMED, "202708005", "Prolapsed lumbar intervertebral disc (disorder)", "@today-120d")
        .procedure(*PT, "@today-60d")
        .order(SNOMED, "308447003", "Referral to physiotherapist (procedure)", "@today-75d")
        .med(*KETO_ORAL, "@today-9d", route="oral", supply=10, dose_mg=10, per_day=4)
    )
    ps["02-seed-recurrent-radicular-after-epidural"] = (
        P("bp02", "James", "Okafor", "male", "45y")
        .condition(ICD10, "M54.16", "Radiculopathy, lumbar region", "@today-300d", status="recurrence")
        .order(SNOMED, "306265007", "Referral to pain management specialist (procedure)", "@today-280d")
        .order(*MRI, "@today-150d")
        .given("1358617", "methylprednisolone acetate 80 MG/ML Injectable Suspension", "@now-120d", "epidural", 80)
        .med(*NAPROXEN, "@today-100d", status="completed", route="oral", supply=30, dose_mg=500, per_day=2)
    )
    ps["03-seed-ed-many-drugs"] = (
        P("bp03", "Aisha", "Rahman", "female", "38y")
        .condition(ICD10, "M54.50", "Low back pain, unspecified", "@today-4d")
        .med(
            "312615",
            "Prednisone 20 MG Oral Tablet",
            "@today-4d",
            status="completed",
            route="oral",
            supply=3,
            dose_mg=40,
            per_day=1,
        )
        .given("1812194", "1 ML Dexamethasone phosphate 4 MG/ML Injection", "@now-1d", "im", 4)
        .given("994841", "Orphenadrine Citrate 100 MG Oral Tablet", "@now-2d", "oral", 100)
        .given("994841", "Orphenadrine Citrate 100 MG Oral Tablet", "@now-1d", "oral", 100)
        .given("310431", "gabapentin 300 MG Oral Capsule", "@now-1d", "oral", 300)
        .given(*KETO_INJ, "@now-1d", "im", 30)
    )
    ps["04-seed-red-flag-assessment"] = (
        P("bp04", "Helen", "Brooks", "female", "68y")
        .condition(SNOMED, "279039007", "Low back pain (finding)", "@today-21d")
        .condition(ICD10, "Z85.3", "Personal history of malignant neoplasm of breast", "@today-6y")
        .condition(ICD10, "R63.4", "Abnormal weight loss", "@today-14d")
        .lab("29463-7", "Body weight", 58, "kg", "@today-3d")
    )
    ps["05-seed-failed-conservative-care"] = (
        P("bp05", "Daniel", "Kim", "male", "50y")
        .condition(ICD10, "M54.41", "Lumbago with sciatica, right side", "@today-100d")
        .med(*NAPROXEN, "@today-90d", status="completed", route="oral", supply=30, dose_mg=500, per_day=2)
        .med(
            "828350",
            "Cyclobenzaprine hydrochloride 10 MG Oral Tablet [Flexeril]",
            "@today-80d",
            status="completed",
            supply=10,
        )
        .order(SNOMED, "308447003", "Referral to physiotherapist (procedure)", "@today-70d")
    )
    # --- ketorolac -------------------------------------------------------------------------------------------------
    ps["06-ketorolac-iv-then-oral"] = (
        P("bp06", "Robert", "Nguyen", "male", "41y")
        .condition(*LBP, "@today-2d")
        .given("1665459", "2 ML Ketorolac Tromethamine 30 MG/ML Injection", "@now-1d", "iv", 30)
    )
    ps["07-ketorolac-exactly-five-days"] = (
        P("bp07", "Sofia", "Rossi", "female", "36y").condition(*LBP, "@today-1d").given(*KETO_INJ, "@now-2h", "im", 30)
    )
    ps["08-ketorolac-ophthalmic-only"] = (
        P("bp08", "Thomas", "Weber", "male", "59y")
        .condition(*LBP, "@today-3d")
        .med(
            None,
            "Acular (ketorolac tromethamine 0.5 % Ophthalmic Solution)",
            "@today-10d",
            route="ophthalmic",
            supply=14,
        )
    )
    ps["09-ketorolac-open-ended-brand"] = P("bp09", "Grace", "Mensah", "female", "44y").condition(*LBP, "@today-2d")
    ps["10-ketorolac-ckd4-gi-bleed"] = (
        P("bp10", "Walter", "Schmidt", "male", "72y")
        .condition(*LBP, "@today-5d")
        .condition(ICD10, "N18.4", "Chronic kidney disease, stage 4 (severe)", "@today-3y")
        .condition(
            ICD10, "K25.4", "Chronic or unspecified gastric ulcer with hemorrhage", "@today-4y", status="resolved"
        )
        .lab("98979-8", "eGFR (CKD-EPI 2021)", 24, "mL/min/{1.73_m2}", "@today-40d")
    )
    ps["11-ketorolac-elderly-iv-dose"] = (
        P("bp11", "Edith", "Clarke", "female", "80y")
        .condition(*LBP, "@today-1d")
        .lab("98979-8", "eGFR (CKD-EPI 2021)", 55, "mL/min/{1.73_m2}", "@today-60d")
        .lab("29463-7", "Body weight", 61, "kg", "@today-2d")
    )
    ps["12-ketorolac-on-warfarin"] = (
        P("bp12", "Samuel", "Adeyemi", "male", "63y")
        .condition(*LBP, "@today-3d")
        .med("855332", "Warfarin Sodium 5 MG Oral Tablet", "@today-200d", route="oral", dose_mg=5, per_day=1)
    )
    # --- steroids --------------------------------------------------------------------------------------------------
    ps["13-steroid-for-sciatica"] = P("bp13", "Laura", "Fischer", "female", "47y").condition(
        ICD10, "M54.32", "Sciatica, left side", "@today-14d"
    )
    ps["14-steroid-asthma-exacerbation"] = (
        P("bp14", "Kevin", "O'Brien", "male", "33y")
        .condition(*LBP, "@today-10d")
        .condition(ICD10, "J45.901", "Unspecified asthma with (acute) exacerbation", "@today-1d")
    )
    ps["15-steroid-epidural-injection"] = (
        P("bp15", "Priya", "Sharma", "female", "55y")
        .condition(SNOMED, "128196005", "Lumbar radiculopathy (disorder)", "@today-90d")
        .order(SNOMED, "306265007", "Referral to pain management specialist (procedure)", "@today-60d")
    )
    ps["16-steroid-statement-medrol"] = (
        P("bp16", "George", "Papadopoulos", "male", "58y")
        .condition(*LBP, "@today-12d")
        .statement(None, "Medrol 4 mg dosepak (methylprednisolone) tablets", "@today-2d")
    )
    # --- imaging ---------------------------------------------------------------------------------------------------
    ps["17-imaging-early-mri"] = P("bp17", "Emily", "Johansson", "female", "39y").condition(*LBP, "@today-14d")
    ps["18-imaging-at-43-days"] = P("bp18", "Michael", "Brown", "male", "46y").condition(*LBP, "@today-43d")
    ps["19-imaging-unknown-onset"] = P("bp19", "Olivia", "Martin", "female", "51y").condition(*LBP)
    ps["20-cauda-equina"] = (
        P("bp20", "Peter", "Novak", "male", "49y")
        .condition(ICD10, "M51.16", "Intervertebral disc disorders with radiculopathy, lumbar region", "@today-20d")
        .condition(ICD10, "R33.9", "Retention of urine, unspecified", "@today-1d")
    )
    ps["21-spinal-infection-risk"] = (
        P("bp21", "Jordan", "Lee", "male", "34y")
        .condition(*LBP, "@today-7d")
        .condition(ICD10, "R50.9", "Fever, unspecified", "@today-2d")
        .condition(ICD10, "F11.20", "Opioid dependence, uncomplicated", "@today-2y")
    )
    ps["22-osteoporosis-elderly"] = (
        P("bp22", "Margaret", "Evans", "female", "81y")
        .condition(*LBP, "@today-5d")
        .condition(SNOMED, "102447009", "Postmenopausal osteoporosis (disorder)", "@today-8y")
    )
    ps["23-repeat-mri"] = (
        P("bp23", "Carlos", "Mendes", "male", "52y")
        .condition(SNOMED, "23056005", "Sciatica (disorder)", "@today-200d")
        .order(*MRI, "@today-90d")
        .order(SNOMED, "308481009", "Referral to orthopedic surgeon (procedure)", "@today-85d")
    )
    ps["24-referral-overdue"] = P("bp24", "Fatima", "Hussain", "female", "61y").condition(
        ICD10, "M54.17", "Radiculopathy, lumbosacral region", "@today-120d"
    )
    ps["36-saddle-numbness-observed"] = (
        P("bp36", "Grace", "Whitfield", "female", "44y")
        .condition(*LBP, "@today-10d")
        .finding("449813001", "Numbness of saddle area (finding)", "@now-1d")
        .finding("267064002", "Retention of urine (disorder)", "@now-1d", valueBoolean=False)
    )
    ps["37-weight-loss-before-this-episode"] = (
        P("bp37", "Owen", "Fraser", "male", "53y")
        .condition(*LBP, "@today-10d")
        .finding("422868009", "Unexplained weight loss (finding)", "@today-2y")
    )
    ps["27-ketorolac-oral-start"] = P("bp27", "Noah", "Garcia", "male", "31y").condition(*LBP, "@today-1d")
    # --- further rules ----------------------------------------------------------------------------------------------
    ps["28-opioid-on-gabapentin"] = (
        P("bp28", "Victor", "Hale", "male", "57y")
        .condition(*LBP, "@today-12d")
        .med("310431", "gabapentin 300 MG Oral Capsule", "@today-60d", route="oral", dose_mg=300, per_day=3)
    )
    ps["29-gabapentin-nonradicular"] = P("bp29", "Ruth", "Okonkwo", "female", "48y").condition(*LBP, "@today-20d")
    ps["30-gabapentin-renal"] = (
        P("bp30", "Harold", "Fischer", "male", "74y")
        .condition(ICD10, "M54.16", "Radiculopathy, lumbar region", "@today-30d")
        .lab("98979-8", "eGFR (CKD-EPI 2021)", 25, "mL/min/{1.73_m2}", "@today-20d")
    )
    ps["31-muscle-relaxant-older-on-nsaid"] = (
        P("bp31", "Irene", "Kowalski", "female", "71y")
        .condition(*LBP, "@today-6d")
        .med(*NAPROXEN, "@today-5d", route="oral", supply=14, dose_mg=500, per_day=2)
    )
    ps["32-benzodiazepine-for-back-pain"] = P("bp32", "Marcus", "Bell", "male", "42y").condition(*LBP, "@today-9d")
    ps["33-benzodiazepine-with-anxiety"] = (
        P("bp33", "Nadia", "Petrova", "female", "37y")
        .condition(*LBP, "@today-9d")
        .condition(ICD10, "F41.1", "Generalized anxiety disorder", "@today-3y")
    )
    ps["34-nsaid-duplicate-with-low-dose-aspirin"] = (
        P("bp34", "Stefan", "Lindqvist", "male", "60y")
        .condition(*LBP, "@today-15d")
        .med("197806", "Ibuprofen 600 MG Oral Tablet", "@today-7d", route="oral", supply=14, dose_mg=600, per_day=3)
        .med("243670", "Aspirin 81 MG Oral Tablet", "@today-400d", route="oral", dose_mg=81, per_day=1)
    )
    ps["35-opioid-after-nsaid-short"] = (
        P("bp35", "Lucia", "Romero", "female", "45y")
        .condition(*LBP, "@today-20d")
        .med(*NAPROXEN, "@today-15d", status="completed", route="oral", supply=10, dose_mg=500, per_day=2)
    )
    # --- records as EHRs really write them (clinical fidelity) -----------------------------------------------------
    ps["38-ketorolac-dose-free-days"] = (
        P("bp38", "Ines", "Moreau", "female", "43y")
        .condition(*LBP, "@today-4d")
        .given(*KETO_INJ, "@now-3d", "im", 30)
        .given(*KETO_INJ, "@now-1d", "iv", 15)
    )
    ps["39-ketorolac-stopped-inpatient-order"] = (
        P("bp39", "Dmitri", "Volkov", "male", "50y")
        .condition(*LBP, "@today-5d")
        .med(*KETO_INJ, "@today-3d", status="stopped", route="iv", dose_mg=15, per_day=4)
    )
    ps["40-ketorolac-mg-dose-quantity"] = (
        P("bp40", "Hannah", "Berg", "female", "35y").condition(*LBP, "@today-1d").given(*KETO_INJ, "@now-3h", "im", 30)
    )
    ps["41-ketorolac-pregnant-24-weeks"] = (
        P("bp41", "Amara", "Osei", "female", "31y")
        .condition(*LBP, "@today-6d")
        .condition(ICD10, "Z3A.23", "23 weeks gestation of pregnancy", recorded="@today-7d")
    )
    ps["42-mri-report-last-year"] = (
        P("bp42", "Yusuf", "Demir", "male", "47y")
        .condition(SNOMED, "23056005", "Sciatica (disorder)", "@today-200d")
        .med(*NAPROXEN, "@today-150d", status="completed", route="oral", supply=30, dose_mg=500, per_day=2)
        .report("24968-0", "MR Lumbar spine", "@today-60d")
    )
    ps["43-chronic-back-pain-recorded-recently"] = P("bp43", "Beatrice", "Lund", "female", "58y").condition(
        SNOMED, "278860009", "Chronic low back pain (finding)", recorded="@today-10d"
    )
    ps["44-stable-copd-prednisone"] = (
        P("bp44", "Frank", "Doyle", "male", "67y")
        .condition(*LBP, "@today-9d")
        .condition(ICD10, "J44.9", "Chronic obstructive pulmonary disease, unspecified", "@today-6y")
    )
    ps["45-injection-drug-use-febrile"] = (
        P("bp45", "Tyler", "Reed", "male", "29y")
        .condition(*LBP, "@today-5d")
        .condition(SNOMED, "228388006", "Intravenous drug user (finding)", "@today-1y")
        .lab("8310-5", "Body temperature", 38.6, "Cel", "@now-1d")
    )
    ps["46-injection-drug-use-afebrile"] = (
        P("bp46", "Dana", "Hollis", "female", "33y")
        .condition(*LBP, "@today-5d")
        .condition(SNOMED, "228388006", "Intravenous drug user (finding)", "@today-1y")
        .lab("8310-5", "Body temperature", 37.0, "Cel", "@now-1d")
    )
    ps["47-incomplete-toradol-draft"] = P("bp47", "Leon", "Fabre", "male", "40y").condition(*LBP, "@today-2d")
    # --- nothing to flag -------------------------------------------------------------------------------------------
    ps["25-no-back-pain"] = (
        P("bp25", "Arthur", "Lewis", "male", "66y")
        .condition(SNOMED, "59621000", "Essential hypertension (disorder)", "@today-10y")
        .med("314076", "lisinopril 10 MG Oral Tablet", "@today-300d", route="oral", dose_mg=10, per_day=1)
    )
    ps["26-back-pain-nothing-to-flag"] = (
        P("bp26", "Chloe", "Dubois", "female", "29y")
        .condition(*LBP, "@today-10d")
        .med(*NAPROXEN, "@today-8d", route="oral", supply=14, dose_mg=500, per_day=2)
    )
    return ps


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, p in patients().items():
        (OUT / f"{name}.bundle.json").write_text(json.dumps(p.bundle(), indent=1) + "\n")
    print(f"wrote {len(patients())} bundles to {OUT}")


if __name__ == "__main__":
    main()
