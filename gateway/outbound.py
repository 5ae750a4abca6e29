"""HTTP the gateway sends on a registration's behalf, to a URL a tenant chose (THREAT_MODEL row 1).

A Portal or Region resource names URLs the gateway then calls: a portal's
``backchannel_logout_uri`` (Back-Channel Logout 1.0 §2.5) and ``sector_identifier_uri`` (OIDC
Core §8.1), a region's issuer and the endpoints its discovery document names. Whoever may create
such a resource must not be able to make the gateway call its own machine or link: the pod's
loopback (a sidecar's admin port, the gateway's own admin API) or a link-local address (a cloud's
instance-metadata service at 169.254.169.254, which hands out the node's credentials).

Two checks, both off only under the development switch ``insecure_allow_http``:

* at registration, :func:`tongxing_api.vocabulary.check_outbound_url`: https only, and no host
  that is loopback or link-local as written (``localhost``, ``127.1``, ``[::ffff:127.0.0.1]``,
  ``0x7f000001``...);
* at connection time, this module's session: the name is resolved once, every address it
  resolves to is checked (:func:`~tongxing_api.vocabulary.is_local_address`), and the socket is
  opened to the address that was checked, never to a second resolution. A name whose DNS answer
  changes after registration (DNS rebinding) is refused when it is used.

The session follows no redirects (a redirect is a second URL nobody checked), keeps no cookies,
ignores proxy settings from the environment (a proxy would be the peer whose address is checked),
and trusts the usual roots plus, when configured, ``TONGXING_OUTBOUND_CA_FILE`` (a platform's
private CA; :attr:`gateway.settings.Settings.outbound_ca_file`).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import time
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection
from urllib3.util.retry import Retry

from gateway.logs import CorrelatedSession
from tongxing_api.vocabulary import check_outbound_url, is_local_address

if TYPE_CHECKING:
    from gateway.settings import Settings

__all__ = [
    "USER_AGENT",
    "FetchLimits",
    "LocalAddressError",
    "OutboundAdapter",
    "OutboundFetchError",
    "OutboundPolicy",
    "OutboundRefusedError",
    "fetch_json",
    "new_outbound_session",
]

USER_AGENT = "tongxing-gateway (outbound)"


class OutboundRefusedError(requests.exceptions.InvalidURL):
    """The URL itself is one the gateway does not call (http, a loopback or link-local host)."""


class LocalAddressError(NewConnectionError):
    """The host resolved to a loopback or link-local address: no connection was opened."""


@dataclass(frozen=True)
class OutboundPolicy:
    """What the gateway may call on a registration's behalf.

    ``insecure_allow_http`` (development and tests only) turns both checks off: http, loopback
    and link-local are then allowed, as a test gateway needs for peers on 127.0.0.1.
    """

    insecure_allow_http: bool = False
    ca_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls(settings.insecure_allow_http, settings.outbound_ca_file)

    def check_url(self, value: str, *, what: str, allow_query: bool = True) -> str:
        """:func:`~tongxing_api.vocabulary.check_outbound_url` under this policy; raises
        :class:`ValueError` with a message naming ``what``."""
        return check_outbound_url(
            value, what=what, insecure_allow_http=self.insecure_allow_http, allow_query=allow_query
        )

    def session(self, *, pool_maxsize: int = 8) -> requests.Session:
        """A new session under this policy (:func:`new_outbound_session`)."""
        return new_outbound_session(self, pool_maxsize=pool_maxsize)


def _guarded_new_conn(conn: HTTPConnection) -> socket.socket:
    """urllib3's ``_new_conn``, resolving once and connecting only to checked addresses."""
    host = conn._dns_host  # the name urllib3 would resolve (IPv6 brackets off)
    try:
        infos = socket.getaddrinfo(
            host, conn.port, urllib3_connection.allowed_gai_family(), socket.SOCK_STREAM
        )
    except socket.gaierror as error:
        raise NameResolutionError(conn.host, conn, error) from error
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        # getaddrinfo writes an IPv6 zone as "fe80::1%eth0"; the zone says nothing of the range.
        if is_local_address(ipaddress.ip_address(address.partition("%")[0])):
            raise LocalAddressError(
                conn,
                f"refused: {conn.host} resolves to {address}, a loopback or link-local address",
            )
    last: OSError | None = None
    for address in addresses:
        try:
            sock = urllib3_connection.create_connection(
                (address, conn.port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as error:
            raise ConnectTimeoutError(
                conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
            ) from error
        except OSError as error:
            last = error
            continue
        return sock
    raise NewConnectionError(conn, f"Failed to establish a new connection: {last}")


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _guarded_new_conn(self)


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _guarded_new_conn(self)


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class OutboundAdapter(HTTPAdapter):
    """A transport adapter that refuses what :class:`OutboundPolicy` refuses: the URL before
    anything is sent, the resolved address before a socket is opened; no retries, no proxy."""

    def __init__(self, policy: OutboundPolicy, *, pool_maxsize: int = 8) -> None:
        self.policy = policy
        # read=False: a read timeout surfaces as itself, not as a spent retry budget.
        no_retries = Retry(total=0, read=False, redirect=False)
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=no_retries)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        if self.policy.ca_file is not None:
            # Beside the usual roots (requests adds its bundle to this context), not instead.
            context = ssl.create_default_context()
            context.load_verify_locations(cafile=str(self.policy.ca_file))
            pool_kwargs["ssl_context"] = context
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        if not self.policy.insecure_allow_http:
            self.poolmanager.pool_classes_by_scheme = {
                "http": _GuardedHTTPConnectionPool,
                "https": _GuardedHTTPSConnectionPool,
            }

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Through a proxy, the address checked would be the proxy's, not the peer's.
        raise OutboundRefusedError("the gateway's outbound calls do not go through a proxy")

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        if not self.policy.insecure_allow_http:
            try:
                self.policy.check_url(request.url or "", what="the URL")
            except ValueError as error:
                raise OutboundRefusedError(str(error), request=request) from None
        return super().send(request, *args, **kwargs)


class _NoRedirectSession(CorrelatedSession):  # sends X-Request-ID (gateway.logs)
    """Never follows a redirect, whatever ``allow_redirects`` says: the 3xx is the answer."""

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


def new_outbound_session(policy: OutboundPolicy, *, pool_maxsize: int = 8) -> requests.Session:
    """A session for calls on a registration's behalf: :class:`OutboundAdapter` for http and
    https, no redirect followed (a 3xx is returned as it is), no cookie jar, no environment
    proxy or ``.netrc`` (``trust_env = False``)."""
    session = _NoRedirectSession()
    session.trust_env = False
    session.headers["User-Agent"] = USER_AGENT
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = OutboundAdapter(policy, pool_maxsize=pool_maxsize)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@dataclass(frozen=True)
class FetchLimits:
    """Bounds of one outbound fetch: a tenant's URL may be slow or huge (THREAT_MODEL row 7)."""

    connect_timeout: float = 1.5
    total_timeout: float = 3.0
    max_body_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        if not 0 < self.connect_timeout <= self.total_timeout or self.max_body_bytes <= 0:
            raise ValueError("need 0 < connect_timeout <= total_timeout and a positive body cap")


class OutboundFetchError(Exception):
    """A fetch gave no usable document. ``str()`` is a message a tenant may read: it names
    what went wrong, never anything of the peer's answer beyond its status code."""


def fetch_json(session: requests.Session, url: str, *, limits: FetchLimits) -> Any:
    """GET ``url`` and decode its JSON body: 200 only, no redirect, within ``limits``."""
    started = time.monotonic()
    try:
        response = session.get(
            url,
            headers={"Accept": "application/json"},
            timeout=(limits.connect_timeout, limits.total_timeout),
            allow_redirects=False,
            stream=True,
        )
    except OutboundRefusedError as error:
        raise OutboundFetchError(str(error)) from None
    except requests.ConnectionError as error:
        if _refused_address(error):
            raise OutboundFetchError(
                "its host resolves to a loopback or link-local address"
            ) from None
        raise OutboundFetchError(f"could not be fetched ({type(error).__name__})") from None
    except requests.RequestException as error:
        raise OutboundFetchError(f"could not be fetched ({type(error).__name__})") from None
    with response:
        if 300 <= response.status_code < 400:
            raise OutboundFetchError(
                f"answered with a redirect (HTTP {response.status_code}); redirects are not "
                "followed"
            )
        if response.status_code != 200:
            raise OutboundFetchError(f"answered HTTP {response.status_code}, not 200")
        raw = _read_body(response, limits, started)
    try:
        return json.loads(raw)
    except ValueError:
        raise OutboundFetchError("did not answer with JSON") from None


def _refused_address(error: requests.ConnectionError) -> bool:
    # requests wraps urllib3's MaxRetryError, whose ``reason`` is the connection's own error.
    cause = error.args[0] if error.args else None
    return isinstance(getattr(cause, "reason", cause), LocalAddressError)


def _read_body(response: requests.Response, limits: FetchLimits, started: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise OutboundFetchError(f"answered more than {limits.max_body_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            remaining = limits.total_timeout - (time.monotonic() - started)
            if remaining <= 0:
                raise OutboundFetchError(f"gave no answer within {limits.total_timeout:g} s")
            _shorten_read_timeout(response, remaining)
            # read1: what one socket read brings, so a trickled body meets the deadline.
            chunk = response.raw.read1(16 * 1024, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise OutboundFetchError(f"answered more than {limits.max_body_bytes} bytes")
            chunks.append(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
        if time.monotonic() - started >= limits.total_timeout - 0.05:
            raise OutboundFetchError(f"gave no answer within {limits.total_timeout:g} s") from None
        raise OutboundFetchError("broke off its answer") from None


def _shorten_read_timeout(response: requests.Response, seconds: float) -> None:
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.01))
