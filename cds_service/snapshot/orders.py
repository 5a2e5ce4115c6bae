"""Orders and what was done: ServiceRequest, Procedure, ImagingStudy and DiagnosticReport (a radiology report is prior
imaging), with their codes, status and date."""

from __future__ import annotations

from typing import Any

from mypy_extensions import trait

from ..durations import FuzzyDate, parse_date
from .base import ReaderBase
from .facts import OrderFact
from .fields import _as_list, _obj, _str, log

_ORDER_IGNORED = {"entered-in-error", "revoked", "not-done", "cancelled"}
_ORDER_TYPES = frozenset({"ServiceRequest", "Procedure", "ImagingStudy", "DiagnosticReport"})


@trait  # mypyc: one of the readers _Builder combines (a compiled class has one base class otherwise)
class OrderReader(ReaderBase):
    def add_order(self, resource: dict[str, Any], rtype: str, in_draft: bool) -> None:
        status = _str(resource.get("status"))
        if status in _ORDER_IGNORED:
            return
        concepts = resource.get("procedureCode") if rtype == "ImagingStudy" else [resource.get("code")]
        valuesets: set[str] = set()
        display = ""
        codes: list[tuple[str, str]] = []
        for concept in _as_list(concepts):
            match = self.t.match(concept, text_fallback=False)
            valuesets |= match.valuesets
            display = display or match.display
            if isinstance(concept, dict):
                codes.extend(
                    (_str(c.get("system")), _str(c.get("code")))
                    for c in _as_list(concept.get("coding"))
                    if isinstance(c, dict)
                )
        when = (
            parse_date(resource.get("authoredOn"))
            or parse_date(resource.get("occurrenceDateTime"))
            or parse_date(_obj(resource, "occurrencePeriod").get("start"))
            or parse_date(resource.get("performedDateTime"))
            or parse_date(_obj(resource, "performedPeriod").get("start"))
            or parse_date(resource.get("started"))
            or parse_date(resource.get("effectiveDateTime"))
            or parse_date(_obj(resource, "effectivePeriod").get("start"))
            or parse_date(resource.get("issued"))
        )
        if when is None and in_draft:
            when = FuzzyDate(self.today, self.today)
        ref = f"{rtype}/{resource.get('id')}"
        if in_draft and not codes and not display:
            self.unread_drafts.append(ref)
            log.info("draft order unreadable: no code or text", extra={"resource": ref})
        self.resources[ref] = resource
        if valuesets or in_draft:
            self.orders.append(
                OrderFact(
                    ref,
                    display or rtype,
                    frozenset(valuesets),
                    status or "unknown",
                    when,
                    in_draft,
                    tuple(codes),
                    self._reasons(resource),
                )
            )
