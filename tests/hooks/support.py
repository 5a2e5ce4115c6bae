"""Shared by the rule tests: request builders and the records they use (today = 2026-11-22)."""

from __future__ import annotations

from cds_service.terminology import RXNORM
from tests.conftest import bundle, call, hook_request
from tests.factories import ICD10, LBP, SNOMED, condition, med_request

LBP_RECENT = condition("lbp", *LBP, onset="2026-11-02")  # 20 days ago


def order(client, drafts, *, hook="order-select", selections=None, **prefetch):
    pre = {k: bundle(*v) if isinstance(v, list) else v for k, v in prefetch.items()}
    return call(client, hook_request(hook, drafts=drafts, selections=selections, prefetch=pre))


def view(client, **prefetch):
    pre = {k: bundle(*v) if isinstance(v, list) else v for k, v in prefetch.items()}
    return call(client, hook_request("patient-view", prefetch=pre))


def card(resp, topic):
    return next(c for c in resp.get_json()["cards"] if c["source"]["topic"]["code"] == topic)


SCIATICA_OLD = condition(
    "sc", "M54.41", "Lumbago with sciatica, right side", system=ICD10, onset="2026-09-01"
)  # 82 days


NAPROXEN = med_request(
    "nap", "198014", "Naproxen 500 MG Oral Tablet", authored="2026-09-05", supply_days=30, status="completed"
)


LBP_10D = condition("lbp", *LBP, onset="2026-11-12")


NAPROXEN_TRIED = med_request(
    "nap", "198014", "Naproxen 500 MG Oral Tablet", authored="2026-11-13", supply_days=5, status="completed"
)


OXY = ("1049621", "Oxycodone Hydrochloride 5 MG Oral Tablet")


OXY_ER = ("1049502", "12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet")


NAPROXEN_CODE, IBUPROFEN_CODE = "198014", "197806"


KETOROLAC_IV = ("1665461", "1 ML Ketorolac Tromethamine 30 MG/ML Injection")


def offered_drugs(resp) -> set[str]:
    """RxNorm codes of every medication any suggestion of the response would order or keep."""
    codes = set()
    for c in resp.get_json()["cards"]:
        for s in c.get("suggestions", []):
            for a in s["actions"]:
                concept = (a.get("resource") or {}).get("medicationCodeableConcept") or {}
                codes |= {cd["code"] for cd in concept.get("coding", []) if cd.get("system") == RXNORM}
    return codes


def labels(resp) -> list[str]:
    return [s["label"] for c in resp.get_json()["cards"] for s in c.get("suggestions", [])]


CKD4 = condition("ckd", "N18.4", "Chronic kidney disease, stage 4 (severe)", system=ICD10)


WARFARIN = med_request("w", "855290", "Warfarin Sodium 1 MG Oral Tablet [Coumadin]", authored="2026-01-01")


PREGNANT = {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "77386006", "display": "Pregnant"}]}}


NOT_PREGNANT = {"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "60001007", "display": "Not pregnant"}]}}


CHRONIC_LBP = ("278860009", "Chronic low back pain (finding)")


BACK_PAIN_REASON = (SNOMED, "279039007", "Low back pain (finding)")


IVDU = condition("ivdu", "228388006", "Intravenous drug user (finding)")
