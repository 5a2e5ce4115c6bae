"""The benchmark floor: the cheapest possible CDS endpoint — read and parse the JSON body, answer no cards."""

from __future__ import annotations

import orjson
from flask import Flask, Response, request


def floor_app() -> Flask:
    app = Flask("backpain_cds_floor")

    @app.post("/cds-services/<service_id>")
    def noop(service_id: str) -> Response:
        orjson.loads(request.get_data())
        return Response(b'{"cards":[]}', mimetype="application/json")

    @app.get("/health")
    def health() -> Response:
        return Response(b'{"status":"ok"}', mimetype="application/json")

    return app
