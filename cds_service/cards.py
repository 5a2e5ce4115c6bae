"""Card templates (``cards_templates/<topic>.json``) → CDS Hooks cards.

A template holds, per variant, the summary and the Markdown detail (``str.format`` fields filled from the
finding's values), the evidence ``source``, ``links``, override-reason codes and suggestion labels. Templates
are validated at start-up: the summary rendered with the template's worst case must stay under 140
characters, every override reason and suggestion label must exist.
"""

from __future__ import annotations

import json
import string
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

TOPIC_SYSTEM = "https://backpain-cds.example.org/CodeSystem/card-topic"
OVERRIDE_SYSTEM = "https://backpain-cds.example.org/CodeSystem/override-reason"
SUMMARY_MAX = 139


class SuggestionLike(Protocol):  # read-only members: frozen dataclasses satisfy it
    @property
    def key(self) -> str: ...
    @property
    def actions(self) -> tuple[dict[str, Any] | None, ...]: ...
    @property
    def recommended(self) -> bool: ...
    @property
    def label_values(self) -> dict[str, Any]: ...


class FindingLike(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def indicator(self) -> str: ...
    @property
    def values(self) -> dict[str, Any]: ...
    @property
    def suggestions(self) -> Sequence[SuggestionLike]: ...
    @property
    def variant(self) -> str: ...


class DrivenFindingLike(FindingLike, Protocol):
    """A finding as a service returns it: also the records it rests on and the other topics its card covers."""

    @property
    def sources(self) -> tuple[str, ...]: ...
    @property
    def covers(self) -> tuple[str, ...]: ...


class TemplateError(ValueError):
    pass


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "…"


def templates_dir() -> Path:
    candidates = [
        Path(__file__).resolve().parent.parent / "cards_templates",
        Path(sys.prefix) / "share" / "backpain-cds" / "cards_templates",
    ]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError("cards_templates directory not found")


@dataclass(frozen=True)
class CardTemplate:
    topic: str
    display: str
    summary: dict[str, str]
    detail: dict[str, str]
    source: dict[str, str]
    links: list[dict[str, str]]
    override_reasons: list[str]
    suggestion_labels: dict[str, str]
    worst_case: dict[str, Any]

    def variant(self, table: dict[str, str], name: str) -> str:
        if name in table:
            return table[name]
        if "" in table:
            return table[""]
        raise TemplateError(f"{self.topic}: no variant {name!r}")


class CardRenderer:
    def __init__(self, directory: Path | None = None, uuid_factory: Callable[[], str] | None = None) -> None:
        directory = directory or templates_dir()
        self.override_reasons: dict[str, str] = json.loads((directory / "override-reasons.json").read_text())
        self.templates: dict[str, CardTemplate] = {}
        for path in sorted(directory.glob("*.json")):
            if path.name == "override-reasons.json":
                continue
            data = json.loads(path.read_text())
            self.templates[data["topic"]] = CardTemplate(
                topic=data["topic"],
                display=data["display"],
                summary=data["summary"],
                detail=data["detail"],
                source=data["source"],
                links=data.get("links", []),
                override_reasons=data.get("override_reasons", []),
                suggestion_labels=data.get("suggestion_labels", {}),
                worst_case=data.get("worst_case", {}),
            )
        self.uuid_factory = uuid_factory or (lambda: str(uuid.uuid4()))
        self.validate()

    def validate(self) -> None:
        formatter = string.Formatter()
        for t in self.templates.values():
            for variant, text in t.summary.items():
                rendered = formatter.vformat(text, (), _Blank(t.worst_case))
                if len(rendered) > SUMMARY_MAX:
                    raise TemplateError(
                        f"{t.topic}[{variant}]: worst-case summary is {len(rendered)} chars (max {SUMMARY_MAX})"
                    )
            for code in t.override_reasons:
                if code not in self.override_reasons:
                    raise TemplateError(f"{t.topic}: unknown override reason {code!r}")
            if not t.source.get("label") or not t.source.get("url", "").startswith("https://"):
                raise TemplateError(f"{t.topic}: source needs a label and an https url")

    def topics(self) -> Iterable[str]:
        return self.templates.keys()

    def suggestion_labels(self, topic: str) -> dict[str, str]:
        return self.templates[topic].suggestion_labels

    def render(self, finding: FindingLike) -> dict[str, Any]:
        t = self.templates[finding.topic]
        values = _Blank(finding.values)
        summary = t.variant(t.summary, finding.variant).format_map(values)
        if len(summary) > SUMMARY_MAX:  # values longer than the worst case: never send an invalid card
            summary = summary[: SUMMARY_MAX - 1].rstrip() + "…"
        card: dict[str, Any] = {
            "uuid": self.uuid_factory(),
            "summary": summary,
            "indicator": finding.indicator,
            "detail": t.variant(t.detail, finding.variant).format_map(values),
            "source": {
                "label": t.source["label"],
                "url": t.source["url"],
                "topic": {"system": TOPIC_SYSTEM, "code": t.topic, "display": t.display},
            },
        }
        suggestions = []
        for s in finding.suggestions:
            if not s.actions or any(a is None for a in s.actions):
                continue  # actions apply together: a suggestion missing one is not offered
            label = t.suggestion_labels.get(s.key)
            if label is None:
                raise TemplateError(f"{t.topic}: no label for suggestion {s.key!r}")
            item: dict[str, Any] = {"label": label.format_map(_Blank(s.label_values)), "uuid": self.uuid_factory()}
            if s.recommended:
                item["isRecommended"] = True
            item["actions"] = list(s.actions)
            suggestions.append(item)
        if suggestions:
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "at-most-one"
        if finding.indicator in ("warning", "critical") and t.override_reasons:
            card["overrideReasons"] = [
                {"system": OVERRIDE_SYSTEM, "code": c, "display": self.override_reasons[c]} for c in t.override_reasons
            ]
        if t.links:
            card["links"] = [dict(link, type=link.get("type", "absolute")) for link in t.links]
        return card


@dataclass(frozen=True)
class _ProtocolFinding:
    topic: str
    indicator: str
    values: dict[str, Any]
    suggestions: tuple[Any, ...] = ()
    variant: str = ""


FHIR_VERSION_NAMES = {"0.": "DSTU1", "1.0": "DSTU2", "1.": "a pre-STU3 draft", "3.": "STU3", "5.": "R5", "6.": "R6"}


def version_card(fhir_version: str, key: str, server: str) -> FindingLike:
    """The one protocol-level card: the FHIR server is not R4, so no clinical check could run."""
    name = next(
        (n for prefix, n in FHIR_VERSION_NAMES.items() if fhir_version.startswith(prefix)), f"version {fhir_version}"
    )
    return _ProtocolFinding(
        "fhir-version-unsupported",
        "info",
        {"fhir_version": fhir_version[:20], "version_name": name, "key": key, "server": server},
    )
