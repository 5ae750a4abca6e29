"""HTTP to a region's identity provider: bounded in time and size, never following redirects.

A region that is down or slow must fail fast and alone (DESIGN.md, "Towards regions"): every call
has a connect and a read timeout, the body is read against a total deadline, and a body larger
than a JSON metadata document or a token response reasonably is (1 MiB) is refused. Redirects are
not followed: the issuer, its endpoints and its key set are fetched from exactly the URLs the
region published, and the client secret is never replayed to another host.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from gateway import metrics
from gateway.broker.errors import RegionMetadataInvalid, RegionUnavailable
from gateway.logs import CorrelatedSession

__all__ = ["HttpLimits", "JsonResponse", "new_session", "request_json"]

USER_AGENT = "tongxing-gateway (OIDC broker)"


@dataclass(frozen=True)
class HttpLimits:
    """Time and size bounds of one upstream HTTP call.

    ``connect_timeout`` + ``read_timeout`` bound the wait for the response head; the body is read
    against ``total_timeout`` measured from the start of the call.
    """

    connect_timeout: float = 2.0
    read_timeout: float = 3.0
    total_timeout: float = 5.0
    max_body_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if min(self.connect_timeout, self.read_timeout, self.total_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if self.connect_timeout + self.read_timeout > self.total_timeout:
            raise ValueError("connect_timeout + read_timeout must not exceed total_timeout")
        if self.max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")


@dataclass(frozen=True)
class JsonResponse:
    """A decoded JSON object and the parts of the response the caller looks at."""

    status: int
    headers: Mapping[str, str]
    body: dict[str, Any]


class _RegionAdapter(HTTPAdapter):
    """The pool's adapter; with ``ca_file``, its certificates are trusted beside the usual
    roots (requests adds its bundle, or ``REQUESTS_CA_BUNDLE``, to this context), as for the
    gateway's other outbound calls (:class:`gateway.outbound.OutboundAdapter`)."""

    def __init__(self, ca_file: Path | None, **kwargs: Any) -> None:
        self.ca_file = ca_file
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        if self.ca_file is not None:
            context = ssl.create_default_context()
            context.load_verify_locations(cafile=str(self.ca_file))
            pool_kwargs["ssl_context"] = context
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


def new_session(pool_maxsize: int = 16, ca_file: Path | None = None) -> requests.Session:
    """A session with a connection pool, no retries, and no cookie jar; ``ca_file``
    (``outbound_ca_file``: a region behind a private CA) trusted beside the usual roots.

    Retries would multiply the time a down region holds a request; cookies have no place in
    back-channel calls and a shared jar is the one part of a session that is not thread-safe.
    """
    session = CorrelatedSession()  # sends X-Request-ID (gateway.logs)
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json"
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    # read=False: a read timeout surfaces as itself (ReadTimeout), not as a spent retry budget.
    no_retries = Retry(total=0, read=False, redirect=False)
    adapter = _RegionAdapter(
        ca_file, pool_connections=8, pool_maxsize=pool_maxsize, max_retries=no_retries
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def request_json(
    session: requests.Session,
    method: str,
    url: str,
    *,
    region: str,
    what: str,
    limits: HttpLimits,
    **kwargs: Any,
) -> JsonResponse:
    """:func:`_request_json`, timed for ``tongxing_upstream_request_duration_seconds`` per
    region and call (outcome ``ok``: a JSON object came back, whatever its status)."""
    started = time.perf_counter()
    ok = False
    try:
        answer = _request_json(
            session, method, url, region=region, what=what, limits=limits, **kwargs
        )
        ok = True
        return answer
    finally:
        metrics.upstream_call(region, what, started, ok)


def _request_json(
    session: requests.Session,
    method: str,
    url: str,
    *,
    region: str,
    what: str,
    limits: HttpLimits,
    **kwargs: Any,
) -> JsonResponse:
    """Send one request and decode a JSON object from the answer, whatever its status.

    Network failures, timeouts, redirects, 5xx answers, oversized or non-JSON bodies raise
    :class:`RegionUnavailable`; a JSON body that is not an object raises
    :class:`RegionMetadataInvalid`. 4xx answers with a JSON object are returned, because the
    token endpoint reports its errors that way (RFC 6749 §5.2).
    """
    started = time.monotonic()
    try:
        response = session.request(
            method,
            url,
            timeout=(limits.connect_timeout, limits.read_timeout),
            allow_redirects=False,
            stream=True,
            **kwargs,
        )
    except requests.RequestException as exc:
        raise RegionUnavailable(region, f"{what}: {type(exc).__name__}") from None
    with response:
        if response.is_redirect or 300 <= response.status_code < 400:
            raise RegionUnavailable(region, f"{what}: unexpected redirect {response.status_code}")
        if response.status_code >= 500:
            raise RegionUnavailable(region, f"{what}: HTTP {response.status_code}")
        raw = _read_body(response, region=region, what=what, limits=limits, started=started)
    try:
        body = json.loads(raw)
    except ValueError:
        raise RegionUnavailable(
            region, f"{what}: HTTP {response.status_code} with a body that is not JSON"
        ) from None
    if not isinstance(body, dict):
        raise RegionMetadataInvalid(region, f"{what}: the JSON body is not an object")
    return JsonResponse(response.status_code, dict(response.headers), body)


def _read_body(
    response: requests.Response, *, region: str, what: str, limits: HttpLimits, started: float
) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise RegionUnavailable(region, f"{what}: body of {declared} bytes is too large")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            remaining = limits.total_timeout - (time.monotonic() - started)
            if remaining <= 0:
                raise RegionUnavailable(region, f"{what}: no complete answer within the deadline")
            _shorten_read_timeout(response, min(remaining, limits.read_timeout))
            # read1: return what one socket read brings, so a body trickled byte by byte
            # meets the deadline instead of filling a 64 KiB buffer slowly.
            chunk = response.raw.read1(64 * 1024, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise RegionUnavailable(region, f"{what}: body is larger than allowed")
            chunks.append(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        # Reading the raw stream raises urllib3's own errors (ReadTimeoutError, ProtocolError).
        if time.monotonic() - started >= limits.total_timeout - 0.05:
            raise RegionUnavailable(
                region, f"{what}: no complete answer within the deadline"
            ) from None
        raise RegionUnavailable(region, f"{what}: {type(exc).__name__} while reading") from None
    return b"".join(chunks)


def _shorten_read_timeout(response: requests.Response, seconds: float) -> None:
    """Let the next socket read wait no longer than the time left before the deadline."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.01))
