"""Development review page (``/sandbox``): pick a synthetic patient and a hook, see the request and the cards the
way an EHR shows them, accept a suggestion or override a card — which sends real feedback to the service.

Only registered when ``dev_pages`` is on and the environment is development. The page calls the same endpoints
an EHR calls; this module only lists the synthetic cases, builds their requests and renders card Markdown.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import markdown
from flask import Blueprint, Flask, Response, abort, request, send_from_directory

from cds_service.registry import Registry

from .replay import build_request, find_cases, prefetch_for, resolve_dates, resources_of

STATIC = Path(__file__).parent / "static"


PATIENTS = Path(__file__).parent / "patients"


def register_review_page(app: Flask, registry: Registry, patients_dir: Path = PATIENTS) -> None:
    bp = Blueprint("review", __name__)
    cases = {c.name: c for c in find_cases([str(patients_dir)])} if patients_dir.is_dir() else {}
    by_hook = {s.hook: s for s in registry}

    def as_json(data: Any) -> Response:
        return Response(json.dumps(data), mimetype="application/json")

    @bp.get("/sandbox")
    def page() -> Response:
        return send_from_directory(STATIC, "review.html")

    @bp.get("/sandbox/static/<path:name>")
    def static(name: str) -> Response:
        return send_from_directory(STATIC, name)

    @bp.get("/sandbox/api/cases")
    def list_cases() -> Response:
        return as_json(
            [
                {
                    "name": c.name,
                    "description": c.description,
                    "calls": [
                        {"index": i, "hook": call["hook"], "label": call.get("label", call["hook"])}
                        for i, call in enumerate(c.calls)
                    ],
                }
                for c in cases.values()
            ]
        )

    @bp.get("/sandbox/api/request")
    def build() -> Response:
        case = cases.get(request.args.get("case", ""))
        if case is None:
            abort(404)
        try:
            call = case.calls[int(request.args.get("call", "0"))]
        except (ValueError, IndexError):
            abort(404)
        service = by_hook[call["hook"]]
        now = datetime.now(UTC)
        resources = resources_of(resolve_dates(json.loads(case.bundle_path.read_text()), now))
        patient_id = next(r["id"] for r in resources if r.get("resourceType") == "Patient")
        body = build_request(
            call["hook"], patient_id, call, prefetch_for(service.prefetch, resources, patient_id), None, now
        )
        return as_json({"serviceId": service.id, "request": body, "expect": call.get("expect", [])})

    @bp.post("/sandbox/api/markdown")
    def render_markdown() -> Response:
        texts = (request.get_json(silent=True) or {}).get("texts") or []
        # Record text is escaped before Markdown: nothing from a chart becomes HTML.
        return as_json(
            [
                markdown.markdown(html.escape(t if isinstance(t, str) else "", quote=False), extensions=["tables"])
                for t in texts[:50]
            ]
        )

    app.register_blueprint(bp)
