"""The population audit's ``report.html``: one self-contained page (inline SVG plots drawn with matplotlib's Agg
backend, inline CSS, no script, nothing fetched from the network)."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display, no GUI toolkit: render to SVG in memory
matplotlib.rcParams["svg.fonttype"] = "none"  # labels as <text>, not glyph paths shared by id across the plots

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; } td, th { padding: 0.2rem 0.8rem; border-bottom: 1px solid #ddd; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } .plot svg { max-width: 100%; height: auto; }
.muted { color: #666; }
"""
_XML_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)
_NAMESPACE_URL = re.compile(r'\s(?:xmlns(?::\w+)?)="http[^"]*"')
_METADATA = re.compile(r"<metadata>.*?</metadata>", re.S)


def svg_bars(counts: dict[str, int], title: str, *, horizontal: bool = False) -> str:
    """A bar chart of ``counts`` (label → n) as an inline ``<svg>`` element."""
    labels, values = list(counts), list(counts.values())
    height = max(2.5, 0.32 * len(labels) + 1.2) if horizontal else 3.6
    fig, ax = plt.subplots(figsize=(8, height))
    try:
        if horizontal:
            ax.barh(labels[::-1], values[::-1], color="#3b6ea5")
            ax.set_xlabel("cards")
        else:
            ax.bar(labels, values, color="#3b6ea5")
            ax.set_ylabel("cards")
            ax.tick_params(axis="x", labelrotation=45 if len(labels) > 6 else 0)
        ax.set_title(title)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    finally:
        plt.close(fig)
    # Inline in HTML the parser gives <svg> its namespace: the XML prologue, DOCTYPE, xmlns and RDF metadata (all
    # naming w3.org or purl.org URLs) are dropped, so the page names no network address at all.
    svg = _XML_PROLOGUE.sub("", buffer.getvalue(), count=1)
    return _METADATA.sub("", _NAMESPACE_URL.sub("", svg))


def _table(counts: dict[str, int], heading: str) -> str:
    rows = "".join(f'<tr><td>{html.escape(k)}</td><td class="n">{v}</td></tr>' for k, v in counts.items())
    return f"<table><tr><th>{html.escape(heading)}</th><th>cards</th></tr>{rows}</table>"


def _month_order(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] == "unknown", kv[0])))


def _age_order(counts: dict[str, int]) -> dict[str, int]:
    def key(kv: tuple[str, int]) -> tuple[int, int]:
        lead = re.match(r"\d+", kv[0])
        return (0, int(lead.group())) if lead else (1, 0)

    return dict(sorted(counts.items(), key=key))


def render(counts: dict[str, Any]) -> str:
    """The report's HTML from ``counts.json``'s content."""
    by_topic = dict(sorted(counts["by_topic"].items(), key=lambda kv: -kv[1]))
    by_month = _month_order(counts["by_month"])
    by_age = _age_order(counts["by_age_band"])
    plots = [
        ("Cards by topic", svg_bars(by_topic, "Cards by topic", horizontal=True), _table(by_topic, "topic")),
        (
            "Cards by month",
            svg_bars(by_month, "Cards by month (the triggering record's, or the order's authoredOn)"),
            _table(by_month, "month"),
        ),
        (
            "Cards by age band",
            svg_bars(by_age, f"Cards by age band (as of {counts['today']})"),
            _table(by_age, "age band"),
        ),
    ]
    patients = "".join(
        f'<tr><td>{html.escape(t)}</td><td class="n">{len(ids)}</td></tr>'
        for t, ids in counts["patients_by_topic"].items()
    )
    calls = ", ".join(f"{n} {html.escape(h)}" for h, n in counts["calls"].items())
    sections = "".join(f'<h2>{title}</h2><div class="plot">{svg}</div>{table}' for title, svg, table in plots)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>backpain-cds population audit</title>'
        f"<style>{_CSS}</style></head><body><h1>backpain-cds population audit</h1>"
        f"<p>{counts['patients']} patients as of {counts['today']}: {calls} calls, {counts['cards']} cards, "
        f"{counts['errors']} errors. {counts['tasks']} tasks of at most {counts['partition_size']} patients on "
        f"{counts['workers']} workers in {counts['elapsed_s']} s.</p>"
        f"{sections}<h2>By indicator and hook</h2>{_table(counts['by_indicator'], 'indicator')}"
        f"{_table(counts['by_hook'], 'hook')}"
        f"<h2>Patients behind each topic</h2><p class='muted'>The ids are in counts.json "
        f"(patients_by_topic).</p><table><tr><th>topic</th><th>patients</th></tr>{patients}</table>"
        "</body></html>\n"
    )


def write_report(counts: dict[str, Any], path: Path) -> None:
    path.write_text(render(counts))
