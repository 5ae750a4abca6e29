"""Liveness (``/healthz``: the process runs), readiness (``/readyz``: the store answers) and
``/status`` (each region's circuit in this process, :mod:`gateway.region_health`)."""

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


@blueprint.get("/status")
def status() -> Response:
    """Each region's circuit in THIS process (:mod:`gateway.region_health`): state, consecutive
    failures, since when, the last failed call and its code; never a secret or a URL. Internal,
    like the probes: the chart's Ingress does not route it. ``/readyz`` stays about the store: a
    region that is down must not take the gateway out of its Service (other regions still work).
    """
    services = current_services()
    try:
        codes = [region.code for region in services.registry.regions()]
    except Exception:  # the store is down: show the circuits this process knows
        codes = []
    return jsonify({"regions": services.regions.health.snapshot(codes), "scope": "process"})
