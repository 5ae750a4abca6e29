"""Liveness (``/healthz``: the process runs) and readiness (``/readyz``: the store answers)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from gateway.services import current_services

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    ready = current_services().store.healthy()
    return jsonify({"status": "ok" if ready else "store unavailable"}), 200 if ready else 503
