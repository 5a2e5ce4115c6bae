#!/usr/bin/env python3
"""Derive the project's value-set files (hooks/valuesets/*.json) from the verified terminology list.

    python scripts/derive_valuesets.py ../shared/terminology/codes.json hooks/valuesets

Each output file names its source groups and keeps every concept's public source. Entries marked
UNVERIFIED in the input, or without a code, are not used for code matching (brand names without a code
still feed the text fallback). A few sets have no group in the input; they are written by hand in
``PROJECT_AUTHORED`` below with the reason and the coding authority named — clinical review required.

Length: most of it is data — the mapping from the verified list's groups to value sets and the project-authored
code lists, each with its source — kept in one file so a reviewer sees every code's origin in one place.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

SYSTEMS = {
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "snomed": "http://snomed.info/sct",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "loinc": "http://loinc.org",
    "cpt": "http://www.ama-assn.org/go/cpt",
}

# value-set id → (title, [(system key, group, code filter or None)])
MEDICATIONS = {
    "ketorolac": ("Ketorolac, systemic (oral, IV/IM, intranasal; ophthalmic excluded)", "ketorolac"),
    "nsaids": ("NSAIDs other than ketorolac, systemic (incl. aspirin)", "nsaids"),
    "systemic-corticosteroids": ("Systemic corticosteroids (oral and parenteral products)", "systemic_corticosteroids"),
    "anticoagulants": ("Anticoagulants", "anticoagulants"),
    "ketorolac-interacting": (
        "Probenecid and pentoxifylline (contraindicated with ketorolac)",
        "other_ketorolac_contraindicated_comedications",
    ),
    "acetaminophen": ("Acetaminophen (incl. combination products)", "acetaminophen"),
    "gabapentinoids": ("Gabapentin and pregabalin", "gabapentinoids"),
    "muscle-relaxants": ("Skeletal muscle relaxants", "skeletal_muscle_relaxants"),
    "benzodiazepines": ("Benzodiazepines", "benzodiazepines"),
    "opioids": ("Opioid analgesics", "opioids"),
    "duloxetine": ("Duloxetine", "duloxetine"),
    "amitriptyline": ("Amitriptyline", "amitriptyline"),
}
# Class words for allergy/intolerance text ("NSAID allergy"); not used to classify medication orders by code.
CLASS_NAMES = {
    "nsaids": {"nsaid": "nsaid (class)", "nsaids": "nsaid (class)", "non-steroidal anti-inflammatory": "nsaid (class)"}
}

SNOMED_MRI = {
    "394451000119106",
    "41333006",
    "433141005",
    "433140006",
    "241645008",
    "431985004",
    "411571000119106",
    "448641007",
}
SNOMED_CT = {"572091000119106", "90523008", "711224009", "723646000", "241577003", "702487007", "241592002"}
SNOMED_XR = {"840361000", "22791004", "444634007", "1290640000"}
CAUDA_EQUINA_NOT = {"102568007", "71286001", "299966003"}
SPINE_REFERRALS = {"308481009", "308482002", "306265007", "183541002"}
PHYSIO_REFERRALS = {"308447003", "306358002", "306359005", "444831000124102", "416790000", "306289000", "308449000"}
SEVERE_RENAL_SNOMED = {"431857002", "433146000", "46177005", "236435004", "14669001", "428982002"}
SEVERE_RENAL_ICD = ("N18.4", "N18.5", "N18.6", "N17", "Z99.2", "Z91.15", "N19")


def _in(codes):
    return lambda e: e["code"] in codes


def _not_in(codes):
    return lambda e: e["code"] not in codes


def _prefix(prefixes):
    return lambda e: e["code"].startswith(tuple(prefixes))


CLINICAL = {
    # back-pain episode
    "lbp-nonspecific": (
        "Low back pain, non-specific (incl. spondylolisthesis, post-laminectomy)",
        [
            ("snomed", "low_back_pain_nonspecific", None),
            ("snomed", "spondylolisthesis", None),
            ("snomed", "post_laminectomy", None),
            ("icd10cm", "low_back_pain", None),
            ("icd10cm", "spondylolisthesis_spondylolysis", None),
            ("icd10cm", "post_laminectomy", None),
        ],
    ),
    "lbp-radicular": (
        "Sciatica, lumbar radiculopathy, disc disorder with radiculopathy, lumbar stenosis",
        [
            ("snomed", "sciatica_radiculopathy", None),
            ("snomed", "lumbar_spinal_stenosis", None),
            ("snomed", "lumbar_disc_displacement_or_degeneration", _in({"202735001"})),
            ("icd10cm", "sciatica_radiculopathy", None),
            ("icd10cm", "lumbar_spinal_stenosis", None),
            ("icd10cm", "lumbar_disc_disorders", _in({"M51.16", "M51.17", "M51.361", "M51.371"})),
            ("icd10cm", "lumbar_spondylosis", _in({"M47.26", "M47.27"})),
        ],
    ),
    "lbp-disc": (
        "Lumbar disc disorders",
        [("snomed", "lumbar_disc_displacement_or_degeneration", None), ("icd10cm", "lumbar_disc_disorders", None)],
    ),
    "lbp-spondylosis": (
        "Lumbar spondylosis",
        [("snomed", "lumbar_spondylosis", None), ("icd10cm", "lumbar_spondylosis", None)],
    ),
    "lbp-stenosis": (
        "Lumbar spinal stenosis",
        [("snomed", "lumbar_spinal_stenosis", None), ("icd10cm", "lumbar_spinal_stenosis", None)],
    ),
    "lbp-chronic": (
        "Chronic (low) back pain: 12 weeks or more by definition, whatever the record's dates",
        [("snomed", "low_back_pain_nonspecific", _in({"278860009", "134407002"}))],
    ),
    # red flags — emergency tier
    "rf-cauda-equina": (
        "Cauda equina syndrome and its signs (urinary retention, faecal incontinence, saddle anaesthesia)",
        [
            ("snomed", "red_flag_cauda_equina_and_neuro", _not_in(CAUDA_EQUINA_NOT)),
            ("snomed", "lumbar_spinal_stenosis", _in({"764272007"})),
            ("icd10cm", "red_flag_cauda_equina_and_neuro", _prefix(["G83.4", "R33", "R15", "N31.9", "K59.2"])),
        ],
    ),
    "rf-motor-deficit": (
        "Severe or progressive motor deficit (foot drop, paresis, cord compression)",
        [
            ("snomed", "red_flag_cauda_equina_and_neuro", _in({"102568007", "71286001"})),
            ("icd10cm", "red_flag_cauda_equina_and_neuro", _prefix(["M21.37"])),
        ],
    ),
    "rf-spinal-infection": (
        "Known spinal infection (discitis, vertebral osteomyelitis, spinal TB, intraspinal abscess)",
        [
            ("snomed", "red_flag_infection", _in({"203241002", "2304001", "302935008", "35984006"})),
            ("icd10cm", "red_flag_infection", _prefix(["M46.2", "M46.3", "M46.4", "M46.5", "G06.1", "A18.01"])),
        ],
    ),
    "rf-fever": (
        "Fever",
        [
            ("snomed", "red_flag_infection", _in({"386661006", "7520000"})),
            ("icd10cm", "red_flag_infection", _prefix(["R50"])),
        ],
    ),
    "rf-ivdu": (
        "Intravenous or other drug use",
        [
            ("snomed", "red_flag_iv_drug_use_or_substance_use", None),
            ("icd10cm", "red_flag_iv_drug_use_substance_use", None),
        ],
    ),
    "rf-injection-drug-use": (
        "Injection drug use itself (a risk factor for spinal infection, ACR 2021), not other substance use",
        [("snomed", "red_flag_iv_drug_use_or_substance_use", _in({"228388006", "226034001"}))],
    ),
    # red flags — prompt tier
    "rf-neuro-finding": (
        "Other neurologic findings (abnormal reflex, sensory loss, weakness, gait difficulty)",
        [("icd10cm", "red_flag_cauda_equina_and_neuro", _prefix(["R29.2", "R26.2", "R20.0", "R20.2", "M62.81"]))],
    ),
    "rf-infection-other": (
        "Osteomyelitis or abscess, site not stated as spinal",
        [("snomed", "red_flag_infection", _in({"60168000", "40970001", "409780002", "309083007"}))],
    ),
    "rf-malignancy": (
        "Cancer or history of cancer",
        [
            ("snomed", "red_flag_malignancy", None),
            ("snomed", "history_of_malignancy_examples", None),
            ("icd10cm", "red_flag_malignancy", None),
        ],
    ),
    "rf-immunosuppression": (
        "Immunosuppression (HIV, immunodeficiency, transplant, immunosuppressant use)",
        [("snomed", "red_flag_immunosuppression", None), ("icd10cm", "red_flag_immunosuppression", None)],
    ),
    "rf-fracture-risk": (
        "Fracture risk: osteoporosis, vertebral fracture, back trauma, long-term systemic steroids",
        [
            ("snomed", "red_flag_fracture_or_osteoporosis", None),
            ("icd10cm", "red_flag_fracture_osteoporosis", None),
            ("icd10cm", "long_term_drug_use", _in({"Z79.52"})),
        ],
    ),
    "rf-weight-loss": (
        "Unexplained weight loss",
        [("snomed", "red_flag_weight_loss", None), ("icd10cm", "red_flag_weight_loss", None)],
    ),
    # ketorolac contraindications and cautions
    "renal-impairment": (
        "Chronic kidney disease, acute kidney injury, dialysis",
        [("snomed", "renal_impairment", None), ("icd10cm", "renal_impairment", None)],
    ),
    "renal-severe": (
        "CKD stage 4–5, end-stage renal disease, dialysis, acute kidney injury",
        [
            ("snomed", "renal_impairment", _in(SEVERE_RENAL_SNOMED)),
            ("icd10cm", "renal_impairment", _prefix(SEVERE_RENAL_ICD)),
        ],
    ),
    "gi-bleed-ulcer": (
        "Peptic ulcer or gastrointestinal bleeding, current or past",
        [("snomed", "gi_bleed_or_peptic_ulcer", None), ("icd10cm", "gi_bleed_peptic_ulcer", None)],
    ),
    "bleeding-disorder": (
        "Coagulation defects and cerebrovascular bleeding",
        [("icd10cm", "bleeding_risk_anticoagulation", _prefix(["D68", "D69.6", "I60", "I61", "I62"]))],
    ),
    "anticoagulant-use": (
        "Long-term anticoagulant or antithrombotic use",
        [
            ("icd10cm", "bleeding_risk_anticoagulation", _prefix(["Z79.01", "Z79.02"])),
            ("snomed", "anticoagulant_therapy", None),
        ],
    ),
    "pregnancy": (
        "Pregnancy (lactation codes left out: breastfeeding is not pregnancy)",
        [("snomed", "pregnancy", None), ("icd10cm", "pregnancy_lactation", lambda e: not e["code"].startswith("Z39"))],
    ),
    "pregnancy-third-trimester": (
        "Pregnancy codes that state the third trimester (28 weeks 0 days or more: ICD-10-CM "
        "chapter 15 trimester definitions)",
        [("icd10cm", "pregnancy_lactation", lambda e: "third trimester" in (e.get("display") or "").lower())],
    ),
    # labs
    "egfr": ("eGFR", [("loinc", "egfr", None)]),
    "serum-creatinine": ("Serum creatinine", [("loinc", "serum_creatinine", None)]),
    "body-weight": ("Body weight", [("loinc", "body_weight", None)]),
    # orders and history
    "imaging-lumbar-mri": (
        "MRI lumbar spine",
        [
            ("cpt", "mri_lumbar", None),
            ("loinc", "imaging_mr_lumbar", None),
            ("snomed", "imaging_procedures_lumbar", _in(SNOMED_MRI)),
        ],
    ),
    "imaging-lumbar-ct": (
        "CT lumbar spine",
        [
            ("cpt", "ct_lumbar", None),
            ("loinc", "imaging_ct_lumbar", None),
            ("snomed", "imaging_procedures_lumbar", _in(SNOMED_CT)),
        ],
    ),
    "imaging-lumbar-xr": (
        "Radiographs of the lumbar spine",
        [
            ("cpt", "xray_lumbar", None),
            ("loinc", "imaging_xr_lumbar", None),
            ("snomed", "imaging_procedures_lumbar", _in(SNOMED_XR)),
        ],
    ),
    "referral-spine": (
        "Referral to spine surgeon or pain management",
        [("snomed", "referral_procedures", _in(SPINE_REFERRALS))],
    ),
    "physical-therapy": (
        "Physical therapy referral or procedure",
        [("snomed", "referral_procedures", _in(PHYSIO_REFERRALS)), ("snomed", "conservative_therapy_evidence", None)],
    ),
}

# Sets with no group in the verified list, written by the project. Codes are ICD-10-CM categories (CMS tabular)
# and SNOMED CT disorder concepts; a descendant ICD-10-CM code matches its category.
PROJECT_AUTHORED = {
    "steroid-other-indication": {
        "title": (
            "Other indications for systemic corticosteroids (asthma/COPD exacerbation, inflammatory arthritis, "
            "lupus, PMR/GCA, "
            "adrenal insufficiency, IBD, gout, transplant, active cancer, MS, anaphylaxis/angioedema, sarcoidosis)"
        ),
        "source": (
            "project-authored (not in ../shared/terminology/codes.json): ICD-10-CM categories from the CMS "
            "tabular "
            "and SNOMED CT disorder concepts; needs clinical terminology review"
        ),
        "icd10cm": [
            "J45.21",
            "J45.22",
            "J45.31",
            "J45.32",
            "J45.41",
            "J45.42",
            "J45.51",
            "J45.52",
            "J45.901",
            "J45.902",
            "J44.0",
            "J44.1",
            "M05",
            "M06",
            "M08",
            "M32",
            "M35.3",
            "M31.5",
            "M31.6",
            "E27.1",
            "E27.2",
            "E27.4",
            "K50",
            "K51",
            "M10",
            "M1A",
            "Z94",
            "G35",
            "T78.2",
            "T78.3",
            "D86",
            "M45",
            "L40.5",
            "M07",
        ]
        + [f"C{i:02d}" for i in range(0, 97)],
        "snomed": {
            "281239006": "Exacerbation of asthma",
            "708038006": "Acute exacerbation of asthma",
            "304527002": "Acute asthma",
            "195951007": "Acute exacerbation of chronic obstructive airways disease",
            "69896004": "Rheumatoid arthritis",
            "55464009": "Systemic lupus erythematosus",
            "65323003": "Polymyalgia rheumatica",
            "400130008": "Temporal arteritis",
            "34000006": "Crohn's disease",
            "64766004": "Ulcerative colitis",
            "90560007": "Gout",
            "24700007": "Multiple sclerosis",
            "39579001": "Anaphylaxis",
            "31541009": "Sarcoidosis",
            "9631008": "Ankylosing spondylitis",
            "363346000": "Malignant neoplastic disease",
        },
    }
}

PROJECT_AUTHORED["neuropathic-indication"] = {
    "title": "Neuropathic or seizure indications for gabapentinoids other than radicular back pain (epilepsy, diabetic "
    "and other polyneuropathy, postherpetic neuralgia, mononeuropathies, fibromyalgia, restless legs, CRPS)",
    "source": (
        "project-authored (not in ../shared/terminology/codes.json): ICD-10-CM categories from the CMS tabular "
        "and "
        "SNOMED CT disorder concepts; needs clinical terminology review"
    ),
    "icd10cm": [
        "G40",
        "R56",
        "B02.2",
        "E08.4",
        "E09.4",
        "E10.4",
        "E11.4",
        "E13.4",
        "G62",
        "G63",
        "G56",
        "G57",
        "G58",
        "M79.7",
        "G25.81",
        "G90.5",
    ],
    "snomed": {
        "84757009": "Epilepsy",
        "230572002": "Neuropathy due to diabetes mellitus",
        "2177002": "Postherpetic neuralgia",
        "203082005": "Fibromyalgia",
        "32914008": "Restless legs",
    },
}
PROJECT_AUTHORED["benzodiazepine-indication"] = {
    "title": (
        "Indications for benzodiazepines (anxiety and panic disorders, acute stress reaction, seizures, alcohol "
        "or "
        "sedative withdrawal, insomnia)"
    ),
    "source": (
        "project-authored (not in ../shared/terminology/codes.json): ICD-10-CM categories from the CMS tabular "
        "and "
        "SNOMED CT disorder concepts; needs clinical terminology review"
    ),
    "icd10cm": [
        "F40",
        "F41",
        "F43.0",
        "G40",
        "R56",
        "F10.13",
        "F10.23",
        "F10.93",
        "F13.13",
        "F13.23",
        "F13.93",
        "G47.0",
        "F51.0",
    ],
    "snomed": {
        "197480006": "Anxiety disorder",
        "21897009": "Generalized anxiety disorder",
        "371631005": "Panic disorder",
        "84757009": "Epilepsy",
        "91175000": "Seizure",
        "193462001": "Insomnia",
    },
}

# Sets with no group in the verified list whose codes come from a named public specification (the source is kept per
# code).
_IPS_EDD = (
    "HL7 IPS ValueSet 'Pregnancy Expected Delivery Date Method' "
    "(http://hl7.org/fhir/uv/ips/ValueSet/edd-method-uv-ips), "
    "used by the IPS Observation Pregnancy EDD profile"
)
_GA = (
    "HL7 Europe Patient Summary ValueSet gestational-age-loinc (LOINC component LP19507-0 Gestational age), "
    "http://hl7.eu/fhir/eps/ValueSet/gestational-age-loinc"
)
_CMS = "CMS ICD-10-CM tabular list"
PUBLISHED = {
    "body-temperature": (
        "Body temperature (vital sign)",
        "loinc",
        {
            "8310-5": (
                "Body temperature",
                "HL7 FHIR R4 Body Temperature profile (http://hl7.org/fhir/R4/bodytemp.html): "
                "Observation.code LOINC 8310-5",
            )
        },
    ),
    "pregnancy-status": (
        "Pregnancy status (the question; the answer 'Pregnant' is in the pregnancy set)",
        "loinc",
        {
            "82810-3": (
                "Pregnancy status",
                "HL7 US Core STU7 Observation Pregnancy Status profile "
                "(https://hl7.org/fhir/us/core/STU7/StructureDefinition-us-core-observation-pregnancystatus.html)",
            )
        },
    ),
    "not-pregnant": (
        "Not pregnant (an answer to pregnancy status that ends an earlier record of pregnancy)",
        "snomed",
        {
            "60001007": (
                "Not pregnant (finding)",
                "HL7 US Core ValueSet us-core-pregnancy-status "
                "(http://hl7.org/fhir/us/core/ValueSet/us-core-pregnancy-status); HL7 COVID-19 "
                "Library ValueSet pregnancy-status-value-set",
            )
        },
    ),
    "gestational-age": (
        "Gestational age, estimated (an Observation valued in weeks or days)",
        "loinc",
        {
            "11884-4": (
                "Gestational age Estimated",
                _GA + "; HL7 US Vital Records Common Library profile Observation-gestational-age-at-delivery-vr",
            ),
            "11885-1": ("Gestational age Estimated from last menstrual period", _GA),
            "11886-9": ("Gestational age Estimated from ovulation date", _GA),
        },
    ),
    "delivery-date-estimated": (
        "Estimated delivery date (an Observation valued with a date)",
        "loinc",
        {
            "11778-8": ("Delivery date Estimated", _IPS_EDD),
            "11779-6": ("Delivery date Estimated from last menstrual period", _IPS_EDD),
            "11780-4": ("Delivery date Estimated from ovulation date", _IPS_EDD),
        },
    ),
    "gestation-weeks": (
        "Weeks of gestation of pregnancy (ICD-10-CM Z3A: the code states the completed weeks)",
        "icd10cm",
        {
            code: (display, _CMS)
            for code, display in [
                ("Z3A.00", "Weeks of gestation of pregnancy not specified"),
                ("Z3A.01", "Less than 8 weeks gestation of pregnancy"),
                *((f"Z3A.{w:02d}", f"{w} weeks gestation of pregnancy") for w in range(8, 43)),
                ("Z3A.49", "Greater than 42 weeks gestation of pregnancy"),
            ]
        },
    ),
    "labour": (
        "Labour before delivery (preterm labour without delivery); delivery and postpartum codes left out: they stay "
        "on the record after the birth",
        "icd10cm",
        {"O60.0": ("Preterm labor without delivery (category)", _CMS)},
    ),
}

ROUTES = {  # SNOMED route → route class (oral | iv | im | sc | nasal | rectal | transdermal | local)
    "26643006": "oral",
    "37839007": "oral",
    "54471007": "oral",
    "47625008": "iv",
    "418114005": "iv",
    "419993007": "iv",
    "78421000": "im",
    "34206005": "sc",
    "37161004": "rectal",
    "45890007": "transdermal",
    "46713006": "nasal",
}

_BRAND = re.compile(r"\[([^\]]+)\]\s*$")


def concept(system_key: str, entry: dict, **extra) -> dict:
    out = {
        "system": SYSTEMS[system_key],
        "code": entry["code"],
        "display": entry.get("display") or entry.get("note") or "",
    }
    out.update({k: v for k, v in extra.items() if v})
    out["source"] = entry.get("source", "")
    return out


def usable(entry: dict) -> bool:
    return bool(entry.get("code")) and not str(entry.get("status", "")).upper().startswith("UNVERIFIED")


# Complexity: one step per value-set source (verified groups, project-authored sets, named specifications).
def derive(codes: dict) -> dict[str, dict]:  # noqa: C901
    out: dict[str, dict] = {}
    for vs_id, (title, group) in MEDICATIONS.items():
        entries = codes["rxnorm"][group]
        names: dict[str, str] = {}
        concepts = []
        for e in entries:
            ingredients = [i.strip().replace("_", " ") for i in str(e.get("ingredient", "")).split(";") if i.strip()]
            primary = ingredients[-1] if ingredients else None
            for ing in ingredients:
                names.setdefault(ing.lower(), ing)
            if e.get("tty") == "BN" and e.get("display"):
                names.setdefault(e["display"].lower(), primary or e["display"].lower())
            brand = _BRAND.search(e.get("display") or "")
            if brand and primary and len(brand.group(1)) > 3:
                names.setdefault(brand.group(1).lower(), primary)
            if usable(e):
                concepts.append(concept("rxnorm", e, ingredient=primary, route_class=e.get("route_class")))
        names.update(CLASS_NAMES.get(vs_id, {}))
        out[vs_id] = {
            "id": vs_id,
            "title": title,
            "kind": "medication",
            "source": f"../shared/terminology/codes.json rxnorm.{group}",
            "concepts": concepts,
            "names": names,
        }
    for vs_id, (title, parts) in CLINICAL.items():
        concepts = []
        for system_key, group, keep in parts:
            for e in codes[system_key][group]:
                if usable(e) and (keep is None or keep(e)):
                    concepts.append(concept(system_key, e))
        sources = sorted({f"{s}.{g}" for s, g, _ in parts})
        out[vs_id] = {
            "id": vs_id,
            "title": title,
            "kind": "clinical",
            "source": "../shared/terminology/codes.json " + ", ".join(sources),
            "concepts": concepts,
        }
    for vs_id, spec in PROJECT_AUTHORED.items():
        concepts = [
            {
                "system": SYSTEMS["icd10cm"],
                "code": c,
                "display": f"ICD-10-CM category {c}",
                "source": "CMS ICD-10-CM tabular (category)",
            }
            for c in spec["icd10cm"]
        ]
        concepts += [
            {"system": SYSTEMS["snomed"], "code": c, "display": d, "source": "SNOMED CT"}
            for c, d in spec["snomed"].items()
        ]
        out[vs_id] = {
            "id": vs_id,
            "title": spec["title"],
            "kind": "clinical",
            "source": spec["source"],
            "concepts": concepts,
        }
    for vs_id, (title, system_key, codes_) in PUBLISHED.items():
        concepts = [
            {"system": SYSTEMS[system_key], "code": c, "display": d, "source": src} for c, (d, src) in codes_.items()
        ]
        out[vs_id] = {
            "id": vs_id,
            "title": title,
            "kind": "clinical",
            "source": "published specification (not in ../shared/terminology/codes.json): each code names its source",
            "concepts": concepts,
        }
    route_concepts = []
    for group in ("medication_routes_systemic", "medication_routes_local_not_systemic"):
        for e in codes["snomed"][group]:
            if usable(e):
                route_concepts.append(concept("snomed", e, route_class=ROUTES.get(e["code"], "local")))
    out["medication-routes"] = {
        "id": "medication-routes",
        "title": "Routes of administration with their route class",
        "kind": "route",
        "source": "../shared/terminology/codes.json snomed.medication_routes_*",
        "concepts": route_concepts,
    }
    return out


def main(argv: list[str]) -> int:
    src = Path(argv[1] if len(argv) > 1 else "../shared/terminology/codes.json")
    dest = Path(argv[2] if len(argv) > 2 else "hooks/valuesets")
    codes = json.loads(src.read_text())
    dest.mkdir(parents=True, exist_ok=True)
    for vs_id, data in derive(codes).items():
        (dest / f"{vs_id}.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(list(dest.glob('*.json')))} value sets to {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
