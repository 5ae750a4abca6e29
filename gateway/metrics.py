"""Prometheus metrics: the families, the sink that counts events, and the exposition.

What operations watch (issue 14): requests by endpoint and status, sign-ins started, completed
and failed, upstream latency per region and call, JWK Set refreshes, tokens issued, step-ups,
lock-outs, back-channel logout deliveries, store statement latency and the active policy set.
Names follow the Prometheus naming guide (https://prometheus.io/docs/practices/naming/): a
``tongxing_`` prefix, the base unit in the name (``_seconds``), ``_total`` on counters (added by
prometheus-client). Labels have few values: the Flask endpoint name, never the raw path; region
codes and portal client ids only when they are registered (:class:`MetricsSink` asks the
registry), stable error codes only when they are the gateway's own or OAuth's (anything else is
``other``), so no request can mint a label value (THREAT_MODEL row 7: no unbounded row, and a
time series is one). No label ever holds a subject, an identity number, a token or a secret
(row 8).

**Processes and replicas.** The families are module globals, prometheus-client's way; they are
the one exception to "nothing module-global carries per-gateway state" (gateway/observe.py), so
several gateways in one test process add to the same counters and tests compare deltas.
``tongxing serve --workers N`` runs prometheus-client's multiprocess mode
(https://prometheus.github.io/client_python/multiprocess/): the serve command points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before anything imports prometheus-client and
before the workers fork, each worker writes its values to its own memory-mapped files there, the
parent marks a worker dead when it exits, and ``/metrics`` on any worker merges every worker's
files (:func:`exposition`), so one scrape of a pod reports the pod's sums. One process uses the
ordinary registry. Replicas are not merged: the ServiceMonitor scrapes every pod on its own and
PromQL sums across them (``sum by (region) (rate(tongxing_signins_completed_total[5m]))``).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import Engine, event

from gateway import observe

__all__ = [
    "CONTENT_TYPE_LATEST",
    "FAMILIES",
    "MULTIPROC_ENV",
    "MetricsSink",
    "exposed_names",
    "exposition",
    "jwks_refreshed",
    "show_policy_set",
    "statement_kind",
    "time_statements",
    "upstream_call",
]

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# The _created samples double the exposition and do not exist in multiprocess mode: one shape.
disable_created_metrics()  # type: ignore[no-untyped-call]

OTHER: Final = "other"
NONE: Final = "none"
UNREGISTERED: Final = "unregistered"

# Request and upstream latencies: from a cached answer (ms) to the upstream deadline (30 s).
_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# One statement: from an indexed SQLite read (sub-ms) to a lock wait at the busy timeout (5 s).
_STORE_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)

REQUESTS: Final = Counter(
    "tongxing_http_requests",
    "HTTP requests answered, by Flask endpoint (unmatched: no route) and status.",
    ["endpoint", "status"],
)
REQUEST_SECONDS: Final = Histogram(
    "tongxing_http_request_duration_seconds",
    "Time from the first request hook to the response, by Flask endpoint.",
    ["endpoint"],
    buckets=_LATENCY_BUCKETS,
)
SIGNINS_STARTED: Final = Counter(
    "tongxing_signins_started",
    "Sign-ins begun for a portal (region none: not chosen yet).",
    ["region", "portal"],
)
SIGNINS_COMPLETED: Final = Counter(
    "tongxing_signins_completed",
    "Sign-ins that gave a portal its code, by region, portal and level reached.",
    ["region", "portal", "level"],
)
SIGNINS_FAILED: Final = Counter(
    "tongxing_signins_failed",
    "Sign-ins that ended without a code, by region, portal and stable error code.",
    ["region", "portal", "reason"],
)
UPSTREAM_SECONDS: Final = Histogram(
    "tongxing_upstream_request_duration_seconds",
    "Calls to a region's identity provider (call: discovery, jwks, token), by outcome.",
    ["region", "call", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
JWKS_REFRESHES: Final = Counter(
    "tongxing_jwks_refreshes",
    "Fetches of a region's JWK Set, by outcome (fetched, unavailable, invalid).",
    ["region", "outcome"],
)
TOKENS_ISSUED: Final = Counter(
    "tongxing_tokens_issued",
    "Token responses, by portal and grant type.",
    ["portal", "grant_type"],
)
STEP_UPS: Final = Counter(
    "tongxing_step_ups",
    "Second-factor checks during a step-up, by method and outcome.",
    ["method", "outcome"],
)
LOCKOUTS: Final = Counter(
    "tongxing_lockouts",
    "Subjects locked out of their second factor after too many wrong codes.",
)
LOGOUTS: Final = Counter(
    "tongxing_logouts",
    "SSO sessions ended, by region and initiator (portal, person, region, admin).",
    ["region", "initiator"],
)
LOGOUT_DELIVERIES: Final = Counter(
    "tongxing_backchannel_logout_deliveries",
    "Back-channel logout deliveries to portals, by outcome (delivered, failed, given_up).",
    ["portal", "outcome"],
)
STORE_SECONDS: Final = Histogram(
    "tongxing_store_statement_duration_seconds",
    "SQL statements of the store, by kind (select, insert, update, delete, other).",
    ["statement"],
    buckets=_STORE_BUCKETS,
)
POLICY_SET: Final = Gauge(
    "tongxing_policy_set_info",
    "1 for the digest of the active Cedar policy set (0: a set no longer active).",
    ["digest"],
    # Under --workers: 1 while any live worker runs the set; both show during a reload.
    multiprocess_mode="livemax",
)

FAMILIES: Final[tuple[Counter | Histogram | Gauge, ...]] = (
    REQUESTS,
    REQUEST_SECONDS,
    SIGNINS_STARTED,
    SIGNINS_COMPLETED,
    SIGNINS_FAILED,
    UPSTREAM_SECONDS,
    JWKS_REFRESHES,
    TOKENS_ISSUED,
    STEP_UPS,
    LOCKOUTS,
    LOGOUTS,
    LOGOUT_DELIVERIES,
    STORE_SECONDS,
    POLICY_SET,
)

_SUFFIXES: Final = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
}


def exposed_names() -> frozenset[str]:
    """Every sample name ``/metrics`` can show (``..._total``, ``..._bucket``, ...)."""
    names: set[str] = set()
    for family in FAMILIES:
        for metric in family.describe():
            names.update(metric.name + suffix for suffix in _SUFFIXES[metric.type])
    return frozenset(names)


# --- exposition -------------------------------------------------------------------------------


def exposition() -> bytes:
    """The text exposition: every worker's values merged under ``--workers``, else this
    process's registry (OpenMetrics-compatible text format 0.0.4)."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


# --- the active policy set ----------------------------------------------------------------------

_shown_digest: list[str] = []  # the digest this process last exposed (one entry, or none)
_shown_lock = threading.Lock()


def show_policy_set(digest: str) -> None:
    """Expose ``digest`` as the active set: 1 for it, 0 for the one before.

    Cheap when nothing changed (a string compare), so the request hook calls it on every
    request: each worker follows the store's active set (gateway.policy) on its own.
    """
    if _shown_digest and _shown_digest[0] == digest:
        return
    with _shown_lock:
        if _shown_digest:
            if _shown_digest[0] == digest:
                return
            POLICY_SET.labels(_shown_digest[0]).set(0)
        POLICY_SET.labels(digest).set(1)
        _shown_digest[:] = [digest]


# --- upstream calls and key sets ------------------------------------------------------------

_UPSTREAM_CALLS: Final = {"discovery": "discovery", "JWK Set": "jwks", "token endpoint": "token"}


def upstream_call(region: str, what: str, started: float, ok: bool) -> None:
    """Record one call of :func:`gateway.broker.transport.request_json` (``what`` is its
    description: ``discovery``, ``JWK Set``, ``token endpoint``)."""
    UPSTREAM_SECONDS.labels(
        region, _UPSTREAM_CALLS.get(what, OTHER), "ok" if ok else "error"
    ).observe(time.perf_counter() - started)


def jwks_refreshed(region: str, error: Exception | None) -> None:
    """One JWK Set fetch (RFC 7517; OIDC Core §10.1.1): ``fetched``, ``invalid`` (no usable
    key, not a JSON object) or ``unavailable``."""
    from gateway.broker.errors import RegionMetadataInvalid

    if error is None:
        outcome = "fetched"
    elif isinstance(error, RegionMetadataInvalid):
        outcome = "invalid"
    else:
        outcome = "unavailable"
    JWKS_REFRESHES.labels(region, outcome).inc()


# --- store statements -----------------------------------------------------------------------

_STARTED: Final = "tongxing_statement_started"
_KINDS: Final = frozenset({"select", "insert", "update", "delete"})


def statement_kind(statement: str) -> str:
    """``select``, ``insert``, ``update``, ``delete`` or ``other`` (BEGIN, PRAGMA, WITH...)."""
    head = statement.lstrip()[:6].lower()
    return head if head in _KINDS else OTHER


def time_statements(engine: Engine) -> None:
    """Time every statement on ``engine`` (SQLAlchemy core events ``before_cursor_execute``
    and ``after_cursor_execute``; the start times stack per connection, as SQLAlchemy's
    "Profiling" recipe does, so nested executions cannot mix them up)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, _cursor: Any, _statement: str, *_: Any) -> None:
        conn.info.setdefault(_STARTED, []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        started = conn.info.get(_STARTED)
        if started:
            STORE_SECONDS.labels(statement_kind(statement)).observe(
                time.perf_counter() - started.pop()
            )


# --- the sink -------------------------------------------------------------------------------

# RFC 6749 §4.1.2.1 and §5.2, OIDC Core §3.1.2.6: codes a region or the gateway may answer with.
_OAUTH_CODES: Final = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "interaction_required",
        "login_required",
        "account_selection_required",
        "consent_required",
        "invalid_request_uri",
        "invalid_request_object",
        "request_not_supported",
        "request_uri_not_supported",
        "registration_not_supported",
        "invalid_client",
        "invalid_grant",
        "unsupported_grant_type",
    }
)
_CODE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_LEVELS: Final = frozenset({"loa1", "loa2", "loa3"})


def _error_codes() -> frozenset[str]:
    """The ``code`` of every :class:`~gateway.errors.TongxingError` subclass defined so far."""
    from gateway.errors import TongxingError

    codes: set[str] = set()
    pending: list[type[TongxingError]] = [TongxingError]
    while pending:
        cls = pending.pop()
        code = cls.__dict__.get("code")
        if isinstance(code, str):
            codes.add(code)
        pending.extend(cls.__subclasses__())
    return frozenset(codes)


class MetricsSink:
    """Counts the events of one gateway (subscribe it on ``Services.events``).

    The families are shared (module globals); the sink holds the gateway's registry only to
    check that a region code or client id it is told about is registered before it becomes a
    label value: a failed sign-in may carry what a request said, and a label value nobody
    registered would be a new time series per request.
    """

    def __init__(
        self,
        region_known: Callable[[str], bool],
        portal_known: Callable[[str], bool],
    ) -> None:
        self._region_known = region_known
        self._portal_known = portal_known
        self._codes = _error_codes() | _OAUTH_CODES

    @classmethod
    def over(cls, registry: Any) -> MetricsSink:
        """A sink checking names against a :class:`gateway.registry.Registry`."""
        return cls(
            lambda code: registry.region(code) is not None,
            lambda client_id: registry.portal(client_id) is not None,
        )

    def __call__(self, event: observe.Event) -> None:
        match event:
            case observe.SignInStarted(portal=portal, region=region):
                SIGNINS_STARTED.labels(self._region(region), self._portal(portal)).inc()
            case observe.SignInCompleted(portal=portal, region=region, level=level):
                SIGNINS_COMPLETED.labels(
                    self._region(region), self._portal(portal), level if level in _LEVELS else OTHER
                ).inc()
            case observe.SignInFailed(portal=portal, region=region, reason=reason):
                SIGNINS_FAILED.labels(
                    self._region(region), self._portal(portal), self._reason(reason)
                ).inc()
            case observe.TokenIssued(portal=portal, grant_type=grant_type):
                grant = grant_type if grant_type in _GRANTS else OTHER
                TOKENS_ISSUED.labels(self._portal(portal), grant).inc()
            case observe.SteppedUp(method=method, outcome=outcome):
                STEP_UPS.labels(_bounded(method, _METHODS), _bounded(outcome, _STEP_UPS)).inc()
            case observe.LockedOut():
                LOCKOUTS.inc()
            case observe.LoggedOut(region=region, initiator=initiator):
                LOGOUTS.labels(self._region(region), _bounded(initiator, _INITIATORS)).inc()
            case observe.LogoutDelivered(portal=portal, outcome=outcome):
                LOGOUT_DELIVERIES.labels(self._portal(portal), _bounded(outcome, _DELIVERIES)).inc()
            case observe.PolicyReloaded(digest=digest, outcome="activated"):
                show_policy_set(digest)
            case _:
                pass

    def _region(self, code: str | None) -> str:
        if code is None:
            return NONE
        return code if self._region_known(code) else UNREGISTERED

    def _portal(self, client_id: str | None) -> str:
        if client_id is None:
            return NONE
        return client_id if self._portal_known(client_id) else UNREGISTERED

    def _reason(self, reason: str) -> str:
        if reason in self._codes:
            return reason
        if _CODE.fullmatch(reason) and reason in (codes := _error_codes()):
            self._codes = codes | _OAUTH_CODES  # a class defined after the sink was made
            return reason
        return OTHER


_GRANTS: Final = frozenset({"authorization_code", "refresh_token", "client_credentials"})
_METHODS: Final = frozenset({"totp", "recovery_code"})
_STEP_UPS: Final = frozenset({"accepted", "wrong", "locked_out", "slowed"})
_INITIATORS: Final = frozenset({"portal", "person", "region", "admin", "expiry"})
_DELIVERIES: Final = frozenset({"delivered", "failed", "given_up"})


def _bounded(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER
