"""The backpain-cds services: one definition per CDS service (id, hook, prefetch, rules)."""

from __future__ import annotations

import json

from cds_service.prefetch import PrefetchTemplate
from cds_service.registry import ServiceDefinition
from cds_service.terminology import CPT, LOINC, SNOMED, ValueSet

from .catalogue import describe
from .clinical import FINDINGS_KEY
from .engine import VALUESETS_DIR, Engine, Knowledge

_LABS = ",".join(
    f"http://loinc.org|{c}"
    for c in (
        "98979-8",
        "62238-1",
        "33914-3",
        "77147-7",
        "48642-3",
        "48643-1",
        "88293-6",
        "88294-4",
        "50044-7",
        "70969-1",
        "69405-9",
        "50210-4",
        "94677-2",
        "98980-6",  # eGFR
        "2160-0",
        "38483-4",
        "14682-9",
        "77140-2",
        "35203-9",  # serum creatinine
        "29463-7",
        "3141-9",
        "3142-7",
        "8350-1",
        "8351-9",  # body weight
        "8310-5",  # body temperature (fever with injection drug use or immunosuppression)
        "82810-3",
        "11884-4",
        "11885-1",
        "11886-9",
        "11778-8",
        "11779-6",
        "11780-4",
    )
)  # pregnancy status, gestational age, due date


def _tokens(pattern: str, systems: tuple[str, ...]) -> str:
    """The codes of the value sets whose files match ``pattern``, in ``systems``, as a FHIR token list (each once)."""
    codes: dict[tuple[str, str], None] = {}  # ordered, each once
    for path in sorted(VALUESETS_DIR.glob(pattern)):
        codes.update(
            ((c.system, c.code), None)
            for c in ValueSet.from_json(json.loads(path.read_text())).concepts
            if c.system in systems
        )
    return ",".join(f"{system}|{code}" for system, code in codes)


def _red_flag_findings() -> str:
    """SNOMED CT codes of every red-flag value set: findings recorded as Observations."""
    return _tokens("rf-*.json", (SNOMED,))


def _cross_sectional_reports() -> str:
    """LOINC, CPT and SNOMED CT codes of lumbar MRI and CT: radiology reports of earlier cross-sectional imaging
    (radiographs are left out: their 100-odd LOINC codes would double the URL, and no rule needs an earlier
    radiograph's report)."""
    return ",".join(_tokens(f"imaging-lumbar-{kind}.json", (LOINC, CPT, SNOMED)) for kind in ("mri", "ct"))


# Keys `patient`, `conditions` and `medications` are the names the public CDS Hooks sandbox uses.
# 2.0 tokens only: no {{today()}}, so date windows (last 30 days, 12 months) are applied by the snapshot.
# `patient=Patient/{id}` is the standard reference form; some servers answer a bare id with an empty Bundle.
PREFETCH = (
    PrefetchTemplate("patient", "Patient/{{context.patientId}}"),
    PrefetchTemplate("conditions", "Condition?patient=Patient/{{context.patientId}}"),
    PrefetchTemplate("medications", "MedicationRequest?patient=Patient/{{context.patientId}}"),
    PrefetchTemplate(
        "medicationStatements", "MedicationStatement?patient=Patient/{{context.patientId}}", required=False
    ),
    PrefetchTemplate(
        "medicationAdministrations", "MedicationAdministration?patient=Patient/{{context.patientId}}", required=False
    ),
    PrefetchTemplate("labs", "Observation?patient=Patient/{{context.patientId}}&code=" + _LABS, required=False),
    PrefetchTemplate(
        FINDINGS_KEY, "Observation?patient=Patient/{{context.patientId}}&code=" + _red_flag_findings(), required=False
    ),
    PrefetchTemplate("serviceRequests", "ServiceRequest?patient=Patient/{{context.patientId}}"),
    PrefetchTemplate("procedures", "Procedure?patient=Patient/{{context.patientId}}", required=False),
    PrefetchTemplate("imagingStudies", "ImagingStudy?patient=Patient/{{context.patientId}}", required=False),
    PrefetchTemplate(
        "diagnosticReports",
        "DiagnosticReport?patient=Patient/{{context.patientId}}&code=" + _cross_sectional_reports(),
        required=False,
    ),
    PrefetchTemplate("allergies", "AllergyIntolerance?patient=Patient/{{context.patientId}}", required=False),
)

# Which rules each service runs, in which order, and what its description lists come from the rules' declarations
# (hooks/catalogue.py): a service is its id, hook, title and the lead of its description.
SERVICES = (
    ("backpain-patient-view", "patient-view", "Low back pain: standing problems", "Flags"),
    ("backpain-order-select", "order-select", "Low back pain: order advice", "While ordering, flags"),
    (
        "backpain-order-sign",
        "order-sign",
        "Low back pain: order check before signing",
        "Before signing, over every draft order, flags",
    ),
)


USAGE = (
    "FHIR R4 data (DSTU2/STU3 shapes are read when prefetched). Send every prefetch key, or a fhirServer the "
    "service may read (patient, conditions, medications and serviceRequests are required; a missing required key "
    "is fetched, else 412). Cards cite their evidence; thresholds are site-configurable."
)


def build_services(knowledge: Knowledge) -> list[ServiceDefinition]:
    reader, engine = knowledge.reader(), Engine(knowledge)
    return [
        ServiceDefinition(
            id=sid,
            hook=hook,
            title=title,
            description=describe(hook, lead),
            prefetch=PREFETCH,
            reader=reader,
            evaluate=engine.evaluate,
            usage_requirements=USAGE,
        )
        for sid, hook, title, lead in SERVICES
    ]
