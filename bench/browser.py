"""A minimal browser over ``requests``: redirects one hop at a time, cookies per origin.

Keycloak marks its cookies ``Secure`` even on plain HTTP (``SameSite=None`` needs it), and
``http.cookiejar`` then never sends them back over ``http://127.0.0.1``: Chromium does, because it
treats loopback as a secure context. This jar does what Chromium does on loopback: it keeps
cookies per origin (host and port) and sends them back whatever their ``Secure`` flag, and it
honours deletion (``Max-Age=0`` or an expiry in the past). Paths and domains are not modelled; on
loopback, with one server per origin, nothing needs them.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

FORM_ACTION = re.compile(r'<form[^>]*\baction="([^"]+)"', re.IGNORECASE)


@dataclass
class Browser:
    session: requests.Session = field(default_factory=requests.Session)
    cookies: dict[str, dict[str, str]] = field(default_factory=dict)

    def request(
        self,
        method: str,
        url: str,
        *,
        data: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> tuple[requests.Response, float]:
        """One request, no redirect followed; returns the response and its wall time (s)."""
        origin = urlsplit(url).netloc
        sent = dict(headers or {})
        jar = self.cookies.get(origin)
        if jar:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        started = time.perf_counter()
        response = self.session.request(
            method,
            url,
            data=data,
            params=params,
            headers=sent,
            auth=auth,
            allow_redirects=False,
            timeout=30,
        )
        elapsed = time.perf_counter() - started
        self._store(origin, response)
        return response, elapsed

    def _store(self, origin: str, response: requests.Response) -> None:
        jar = self.cookies.setdefault(origin, {})
        for raw in response.raw.headers.getlist("Set-Cookie"):
            first, *attributes = [part.strip() for part in raw.split(";")]
            name, _, value = first.partition("=")
            if _expired(attributes):
                jar.pop(name, None)
            else:
                jar[name] = value


def _expired(attributes: list[str]) -> bool:
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        key = key.strip().lower()
        if key == "max-age" and value.strip().lstrip("-").isdigit() and int(value) <= 0:
            return True
        if key == "expires":
            try:
                if parsedate_to_datetime(value.strip()).timestamp() < time.time():
                    return True
            except (TypeError, ValueError):
                continue
    return False


def location(response: requests.Response) -> str:
    """The absolute redirect target of a 3xx response."""
    if response.status_code not in (301, 302, 303, 307, 308):
        raise FlowError(f"expected a redirect from {response.url}, got {response.status_code}")
    return urljoin(response.url, response.headers["Location"])


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def form_action(response: requests.Response) -> str:
    """The login form's action URL on Keycloak's login page."""
    found = FORM_ACTION.search(response.text)
    if response.status_code != 200 or found is None:
        raise FlowError(f"no login form at {response.url} ({response.status_code})")
    return urljoin(response.url, html.unescape(found.group(1)))


class FlowError(Exception):
    """A step of a login flow did not answer as a browser would expect."""
