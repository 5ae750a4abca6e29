"""Request metrics and ``/metrics``: registered on the app by :func:`instrument` (one line in
:func:`gateway.app.create_app`).

Every answer is counted by its Flask endpoint name (``unmatched`` when no route matched), never
its path, so a scan of random URLs adds no time series (:mod:`gateway.metrics`).

``/metrics`` is internal, like ``/healthz`` and ``/readyz``: the chart's Ingress does not route
it (only the public paths are listed there), and the chart's NetworkPolicy admits only the
ingress controller, the operator and the scrapers named in ``metrics.networkPolicy.from``. It
holds counts by region code, client id and error code: nothing secret (THREAT_MODEL row 8), but
nothing for the internet either.
"""

from __future__ import annotations

import time
from typing import Final

from flask import Flask, Response, current_app, g, request

from gateway import metrics

METRICS_PATH: Final = "/metrics"
UNMATCHED: Final = "unmatched"
_STARTED: Final = "tongxing_request_started"


def instrument(app: Flask) -> None:
    """Count and time every request of ``app``; serve ``/metrics``; expose the active policy
    set's digest (followed on each request, since a worker loads a new set on its own)."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)
    app.add_url_rule(METRICS_PATH, "metrics", _metrics, methods=["GET"])
    metrics.show_policy_set(app.extensions["tongxing"].policy.info.digest)


def _start() -> None:
    # First of the before_request hooks (inserted at 0): a request refused by a later hook (a
    # rate limit, an undecodable query) is timed too.
    setattr(g, _STARTED, time.perf_counter())


def _finish(response: Response) -> Response:
    endpoint = request.endpoint or UNMATCHED
    metrics.REQUESTS.labels(endpoint, str(response.status_code)).inc()
    started = g.get(_STARTED)
    if started is not None:
        metrics.REQUEST_SECONDS.labels(endpoint).observe(time.perf_counter() - started)
    metrics.show_policy_set(current_app.extensions["tongxing"].policy.info.digest)
    return response


def _metrics() -> Response:
    """The Prometheus text exposition (every worker's sum under ``--workers``)."""
    return Response(metrics.exposition(), content_type=metrics.CONTENT_TYPE_LATEST)
