"""Value-set membership, precompiled once at start-up.

A value set is a JSON file (see ``hooks/valuesets/``) naming its source and listing concepts
``{system, code, display, ingredient?, route_class?, source}`` plus optional ``names`` for the
case-insensitive text fallback (ingredient and brand names). Matching order, as the catalogue says:
codes first (ICD-10-CM also by ancestor, since the hierarchy is encoded in the code), then names in
``coding.display`` / ``text``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"

# Spellings of code systems seen in real data, normalised to the canonical URI.
_SYSTEM_ALIASES = {
    "urn:oid:2.16.840.1.113883.6.88": RXNORM,
    "http://www.nlm.nih.gov/research/umls/rxnorm/": RXNORM,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "http://snomed.info/sct/": SNOMED,
    "urn:oid:2.16.840.1.113883.6.90": ICD10CM,
    "http://hl7.org/fhir/sid/icd-10-cm/": ICD10CM,
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "urn:oid:2.16.840.1.113883.6.12": CPT,
    "http://www.ama-assn.org/go/cpt/": CPT,
}


def canonical_system(system: str | None) -> str:
    if not system:
        return ""
    return _SYSTEM_ALIASES.get(system, system)


@dataclass(frozen=True)
class Concept:
    valueset: str
    system: str
    code: str
    display: str
    ingredient: str | None = None
    route_class: str | None = None


@dataclass(frozen=True)
class Match:
    """What one CodeableConcept is, as far as the value sets know."""

    valuesets: frozenset[str] = frozenset()
    ingredients: frozenset[str] = frozenset()
    route_class: str | None = None  # from the product code's dose form
    by: str = ""  # "code" | "text" | ""
    display: str = ""

    def __bool__(self) -> bool:
        return bool(self.valuesets)


NO_MATCH = Match()


@dataclass
class ValueSet:
    id: str
    title: str
    source: str
    concepts: list[Concept] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # lower-case name → ingredient

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ValueSet:
        vs = cls(id=data["id"], title=data["title"], source=data["source"])
        for c in data.get("concepts", []):
            vs.concepts.append(
                Concept(
                    vs.id, c["system"], c["code"], c.get("display") or "", c.get("ingredient"), c.get("route_class")
                )
            )
        for name, ingredient in (data.get("names") or {}).items():
            vs.names[name.lower()] = ingredient
        return vs


class Terminology:
    def __init__(self, valuesets: Iterable[ValueSet]) -> None:
        self.valuesets = {vs.id: vs for vs in valuesets}
        self._codes: dict[tuple[str, str], list[Concept]] = {}
        names: dict[str, list[tuple[str, str]]] = {}
        for vs in self.valuesets.values():
            for concept in vs.concepts:
                self._codes.setdefault((concept.system, concept.code.upper()), []).append(concept)
            for name, ingredient in vs.names.items():
                names.setdefault(name, []).append((vs.id, ingredient))
        self._names = names
        alternation = "|".join(sorted((re.escape(n) for n in names), key=len, reverse=True))
        self._name_re = re.compile(rf"(?<![a-z0-9])({alternation})(?![a-z0-9])", re.I) if names else None
        self._cache: dict[Any, Match] = {}

    @classmethod
    def load_dir(cls, directory: str | Path) -> Terminology:
        files = sorted(Path(directory).glob("*.json"))
        return cls(ValueSet.from_json(json.loads(p.read_text())) for p in files)

    def concepts_for(self, system: str, code: str) -> list[Concept]:
        system = canonical_system(system)
        code = code.strip().upper()
        found = self._codes.get((system, code))
        if found:
            return found
        if system == ICD10CM:
            # ICD-10-CM: a code is a descendant of every shorter code it starts with (M54.41 ⊂ M54.4 ⊂ M54).
            candidate = code
            while len(candidate) > 3:
                candidate = candidate[:-1].rstrip(".")
                found = self._codes.get((system, candidate))
                if found:
                    return found
        return []

    def match(self, concept: Any, *, text_fallback: bool = True) -> Match:
        """Classify a CodeableConcept (dict). Liberal: tolerates a single Coding, missing fields, odd types."""
        if not isinstance(concept, dict):
            return NO_MATCH
        codings = concept.get("coding")
        if isinstance(codings, dict):
            codings = [codings]
        if not isinstance(codings, list):
            codings = []
        key = (
            tuple((c.get("system"), c.get("code"), c.get("display")) for c in codings if isinstance(c, dict)),
            concept.get("text"),
            text_fallback,
        )
        try:
            cached = self._cache.get(key)
        except TypeError:  # unhashable junk in the data
            return NO_MATCH
        if cached is not None:
            return cached
        result = self._match(codings, concept.get("text"), text_fallback)
        if len(self._cache) < 50_000:
            self._cache[key] = result
        return result

    # Complexity: one precedence, top to bottom: code in a value set, then the record's words.
    def _match(self, codings: list[Any], text: Any, text_fallback: bool) -> Match:  # noqa: C901
        found: list[Concept] = []
        texts: list[str] = []
        for coding in codings:
            if not isinstance(coding, dict):
                continue
            system, code, display = coding.get("system"), coding.get("code"), coding.get("display")
            if isinstance(system, str) and isinstance(code, str):
                found.extend(self.concepts_for(system, code))
            if isinstance(display, str):
                texts.append(display)
        if isinstance(text, str):
            texts.insert(0, text)
        display = texts[0] if texts else ""
        if found:
            routes = {c.route_class for c in found if c.route_class}
            return Match(
                frozenset(c.valueset for c in found),
                frozenset(c.ingredient for c in found if c.ingredient),
                routes.pop() if len(routes) == 1 else None,
                "code",
                display or found[0].display,
            )
        if text_fallback and self._name_re is not None:
            sets: set[str] = set()
            ingredients: set[str] = set()
            for t in texts:
                for name in self._name_re.findall(t):
                    for vs_id, ingredient in self._names[name.lower()]:
                        sets.add(vs_id)
                        ingredients.add(ingredient)
            if sets:
                return Match(frozenset(sets), frozenset(ingredients), None, "text", display)
        return Match(display=display) if display else NO_MATCH
