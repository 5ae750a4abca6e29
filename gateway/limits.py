"""Request limits: a flood is answered 429 with ``Retry-After`` before it reaches the store.

THREAT_MODEL row 7 (bad input never costs more than a refusal) and issue 14. RFC 6585 §4: a
server that limits a client answers ``429 Too Many Requests`` and may say, with ``Retry-After``
(RFC 9110 §10.2.3), when to try again. :class:`RequestLimits` is a Flask ``before_request`` hook
that runs before every view (and before the admin API's own authentication), so a refused request
costs no store statement, no upstream call and no password hash.

What is limited, and by which key (the classes of :class:`~gateway.settings.RateLimits`):

* ``/authorize`` (also the chooser's answer), ``/callback/<region>`` and the second-factor forms
  (``/mfa*``, ``/consents/second-factor/*``): per client address, ``request.remote_addr`` after
  Werkzeug's ``ProxyFix`` (``TONGXING_PROXY_HOPS``); an IPv6 address counts by its /64, the
  smallest prefix one subscriber is routinely given (RFC 6177 §2), so a host cannot escape its
  limit by walking its own prefix.
* ``/token``, ``/revoke``, ``/par``, ``/introspect``: per client id *as claimed* (HTTP Basic or the
  ``client_id`` parameter, RFC 6749 §2.3.1) together with the address. The id is not verified
  yet, so it only splits buckets: a flood that names a portal's id from elsewhere fills its own
  bucket, never the portal's (no lock-out of others, row 7). Invented ids are caught by the
  ``token_address`` limit every id from one address shares.
* The admin API (``/admin/v1/*``): per principal, keyed by the SHA-256 of its bearer token when
  that hash is one the settings know; any other token (or none) counts against its address.
* ``POST /verification`` (issue 16, the verification result only): per address here, with the
  ``token_address`` limit in a bucket of its own; and per portal (``verification``), which the
  view counts through :func:`limit` once the access token has named the portal: the portal is
  known only after the token is looked up, and a token that is not a live one costs no portal
  its budget.

**Per process.** The windows live in this process's memory (the ``limits`` library's moving
window over :class:`~limits.storage.MemoryStorage`, which expires old entries itself); nothing is
shared between workers or replicas. N replicas running W workers each admit up to N x W times a
limit, and a client whose requests the load balancer spreads sees the limit of each process. The
shared, cluster-wide limit belongs at the ingress (``charts/tongxing/values.yaml`` shows the
ingress-nginx annotations); these limits are the backstop that bounds what one process does. The
number of keys is bounded too (``max_keys``): past it the oldest key is forgotten, which can only
give a client back its budget, never take away another's.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from flask import Flask, Response, current_app, request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from gateway.errors import TooManyRequests
from gateway.settings import RateLimits, Settings, token_sha256

__all__ = ["RequestLimits", "client_address", "limit"]

EXTENSION: Final = "tongxing_request_limits"
TOKEN_PATHS: Final = ("/token", "/revoke", "/par")  # /par: RFC 9126, counted as /token
MFA_PREFIXES: Final = ("/mfa", "/consents/second-factor/")
ADMIN_PREFIX: Final = "/admin/"
MAX_CLIENT_ID: Final = 255  # longer claimed ids are cut: they only name a bucket


@dataclass(frozen=True)
class _Rule:
    """One limit to hit: the class (for the log and the bucket's namespace), its limit, a key."""

    name: str
    limit: RateLimitItem
    key: str


class RequestLimits:
    """The ``before_request`` hook of one gateway: its own storage, never a module global
    (several gateways run in one test process)."""

    def __init__(self, limits: RateLimits, admin_hashes: Iterable[str] = ()) -> None:
        self.enabled = limits.enabled
        self.max_keys = limits.max_keys
        self.authorize = parse(limits.authorize)
        self.callback = parse(limits.callback)
        self.token = parse(limits.token)
        self.introspect = parse(limits.introspect)
        self.token_address = parse(limits.token_address)
        self.mfa = parse(limits.mfa)
        self.admin = parse(limits.admin)
        #: The limits a view counts itself, by name, once it knows the key (:func:`limit`).
        self.keyed = {"verification": parse(limits.verification)}
        self.admin_hashes = frozenset(admin_hashes)
        self.storage = MemoryStorage()
        self.limiter = MovingWindowRateLimiter(self.storage)
        self._evicting = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        """The limits of ``settings.rate_limits``; the admin principals' token hashes as keys."""
        hashes = [token_sha256(settings.admin_token)]
        if settings.operator_token is not None:
            hashes.append(token_sha256(settings.operator_token))
        hashes.extend(client.token_sha256 for client in settings.admin_clients)
        return cls(settings.rate_limits, hashes)

    @classmethod
    def install(cls, app: Flask, settings: Settings) -> RequestLimits:
        """The ``before_request`` hook of ``app``, which views find for :func:`limit`."""
        made = cls.from_settings(settings)
        app.extensions[EXTENSION] = made
        app.before_request(made)
        return made

    def __call__(self) -> Response | None:
        """Flask ``before_request``: ``None`` to go on, or the 429 answer."""
        if not self.enabled:
            return None
        for rule in self.rules(request.path):
            if not self._hit(rule):
                return self._refuse(rule)
        return None

    def rules(self, path: str) -> list[_Rule]:
        """The limits a request to ``path`` counts against (none for unlimited endpoints)."""
        address = client_address(request.remote_addr)
        if path == "/authorize":
            return [_Rule("authorize", self.authorize, address)]
        if path.startswith("/callback/"):
            return [_Rule("callback", self.callback, address)]
        if path in TOKEN_PATHS or path == "/introspect":
            limit = self.introspect if path == "/introspect" else self.token
            name = "introspect" if path == "/introspect" else "token"
            return [
                _Rule("token_address", self.token_address, address),
                _Rule(name, limit, f"{_claimed_client_id()}|{address}"),
            ]
        if path.startswith(MFA_PREFIXES):
            return [_Rule("mfa", self.mfa, address)]
        if path.startswith(ADMIN_PREFIX):
            return [_Rule("admin", self.admin, self._admin_key(address))]
        if path == "/verification" and request.method == "POST":
            return [_Rule("verification_address", self.token_address, address)]
        return []

    def count(self, name: str, key: str) -> Response | None:
        """Count a request against the keyed limit ``name`` (:attr:`keyed`) for ``key``:
        ``None`` to go on, or the 429 answer."""
        if not self.enabled:
            return None
        rule = _Rule(name, self.keyed[name], key)
        return None if self._hit(rule) else self._refuse(rule)

    def _admin_key(self, address: str) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            digest = token_sha256(token.strip())
            if digest in self.admin_hashes:
                return f"principal:{digest}"
        return f"address:{address}"

    def _hit(self, rule: _Rule) -> bool:
        self._bound(rule.limit.key_for(rule.name, rule.key))
        return self.limiter.hit(rule.limit, rule.name, rule.key)

    def _bound(self, key: str) -> None:
        """Keep at most ``max_keys`` buckets: forget the oldest before a new one is made.

        The storage expires entries on its own (its timer); this only caps the number of keys
        a flood of distinct addresses or invented client ids can create between two expiries.
        """
        events = self.storage.events
        if len(events) < self.max_keys or key in events:
            return
        with self._evicting:
            while len(events) >= self.max_keys:
                try:
                    oldest = next(iter(events))
                except (StopIteration, RuntimeError):  # emptied or resized by the expiry timer
                    break
                self.storage.clear(oldest)

    def _refuse(self, rule: _Rule) -> Response:
        stats = self.limiter.get_window_stats(rule.limit, rule.name, rule.key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        error = TooManyRequests(
            f"{rule.name} limit {rule.limit} reached", details={"retry_after": retry_after}
        )
        # The app's own error handler renders it (JSON for API callers, the page for people).
        response = current_app.make_response(current_app.handle_user_exception(error))
        response.headers["Retry-After"] = str(retry_after)
        return response


def limit(name: str, key: str) -> Response | None:
    """Count the current request against this application's keyed limit ``name`` for ``key``
    (a view's own, once it knows the key): ``None`` to go on, or the 429 answer with
    ``Retry-After`` (RFC 6585 §4) to return. No limits installed: ``None``."""
    limits: RequestLimits | None = current_app.extensions.get(EXTENSION)
    return None if limits is None else limits.count(name, key)


def client_address(remote_addr: str | None) -> str:
    """The bucket of a client address: IPv4 as is, IPv6 by its /64 (an IPv4-mapped IPv6
    address as the IPv4 address it is). Anything unparsable shares one bucket."""
    if not remote_addr:
        return "unknown"
    try:
        address = ipaddress.ip_address(remote_addr.split("%", 1)[0])
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _claimed_client_id() -> str:
    """The client id the request names (RFC 6749 §2.3.1: Basic, else the ``client_id``
    parameter), unverified, cut to a bounded length; ``""`` when it names none."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return ""
        return unquote(decoded.partition(":")[0])[:MAX_CLIENT_ID]
    claimed = request.form.get("client_id", "") if request.form else ""
    return claimed[:MAX_CLIENT_ID]
