"""What the fault tests (``tests/e2e/test_faults.py``) need around the gateway: a citizen that
signs in over plain HTTP (fast enough to put a gateway under load), a TCP proxy that can be
killed in front of a shared server, a private PostgreSQL that can be restarted, and an
oidc-provider region with faults (``tests/peers/fault_op.mjs``).

Nothing here stops a server it did not start: the shared servers of ``tongxing-dev up`` are only
ever reached, through a proxy when a test needs them to "die".
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urljoin

import requests
from gateway_fixtures import Portal
from tongxing_dev import postgres
from tongxing_dev.peers import PEERS
from tongxing_dev.process import LOOPBACK, Server, free_port

# -- a citizen over plain HTTP ------------------------------------------------------------------


class SignInRefused(Exception):  # noqa: N818 - named after what happened
    """The gateway answered the citizen with its error page (or the region could not be
    reached by the citizen at all: ``code`` is then ``unreachable:<host>``)."""

    def __init__(self, code: str, status: int, where: str) -> None:
        super().__init__(f"{code} (HTTP {status}) at {where}")
        self.code = code
        self.status = status
        self.where = where


@dataclass
class _Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(_Form(named.get("action", "")))
        elif tag == "input" and self.forms and named.get("name"):
            self.forms[-1].fields.setdefault(named["name"], named.get("value", ""))


_ERROR_CODE = re.compile(r"<code>([a-z_]+)</code>")


class Citizen:
    """One person's browser, reduced to its cookie jar and the forms it fills in.

    Keycloak marks its cookies ``Secure`` and a browser sends them to a loopback ``http://``
    origin (a secure context); ``requests`` would not, so the flag is dropped before each
    request.
    """

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.http = requests.Session()

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        for cookie in self.http.cookies:
            cookie.secure = False
        return self.http.request(method, url, allow_redirects=False, timeout=30, **kwargs)

    def sign_in(
        self,
        portal: Portal,
        url: str,
        *,
        at_callback: Callable[[str], None] | None = None,
        steps: int = 12,
    ) -> str:
        """Follow a portal's authorization request ``url`` through the gateway and the
        region's forms; return the URL the gateway sends the citizen back to the portal with.

        ``at_callback`` is called with the region's redirect back to the gateway before the
        citizen follows it (a test's moment to break something mid-login). Raises
        :class:`SignInRefused` when the gateway answers with its error page.
        """
        gateway = portal.gateway.issuer
        method, data = "GET", None
        for _ in range(steps):
            try:
                response = self.request(method, url, data=data)
            except requests.ConnectionError:
                raise SignInRefused(f"unreachable:{url.split('/')[2]}", 0, url) from None
            if response.is_redirect:
                location = urljoin(url, response.headers["Location"])
                if location.startswith(portal.redirect_uri):
                    return location
                if at_callback is not None and location.startswith(f"{gateway}/callback/"):
                    at_callback(location)
                method, data, url = "GET", None, location
                continue
            if url.startswith(gateway) and response.status_code >= 400:
                found = _ERROR_CODE.search(response.text)
                code = found.group(1) if found else f"http_{response.status_code}"
                raise SignInRefused(code, response.status_code, url)
            if response.status_code != 200:
                raise SignInRefused(f"region_http_{response.status_code}", 0, url)
            form = self._next_form(response.text)
            method, data, url = "POST", form.fields, urljoin(url, form.action)
        raise SignInRefused("too_many_steps", 0, url)

    def _next_form(self, page: str) -> _Form:
        parser = _Forms()
        parser.feed(page)
        for form in parser.forms:
            fields = form.fields
            # Keycloak's kc-form-login and oidc-provider's development login form.
            for name in ("username", "login"):
                if name in fields:
                    fields[name] = self.username
                    fields["password"] = self.password
                    return form
            if fields.get("prompt") == "consent":  # oidc-provider's development consent form
                return form
        raise SignInRefused("no_form", 0, page[:200])


def start_request(portal: Portal, region: str, scope: str = "openid profile") -> dict[str, Any]:
    """The authorization request a portal makes (PKCE S256, state, nonce), built here instead of
    by openid-client when a test makes many; :meth:`Portal.finish` takes the answer as it
    takes :meth:`Portal.start`'s."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    pending = {
        "verifier": verifier,
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
    }
    query = urlencode(
        {
            "response_type": "code",
            "client_id": portal.client_id,
            "redirect_uri": portal.redirect_uri,
            "scope": scope,
            "state": pending["state"],
            "nonce": pending["nonce"],
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
            "region": region,
        }
    )
    return {"url": f"{portal.gateway.issuer}/authorize?{query}", "pending": pending}


def exchange(portal: Portal, started: dict[str, Any], callback_url: str) -> dict[str, Any]:
    """The portal's code exchange over plain HTTP (client_secret_basic) without openid-client's
    checks: for load, where starting Node for every call would dominate. ``started`` is
    :meth:`Portal.start`'s answer (its PKCE verifier)."""
    code = re.search(r"[?&]code=([^&]+)", callback_url)
    assert code is not None, callback_url
    response = requests.post(
        f"{portal.gateway.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": unquote(code.group(1)),
            "redirect_uri": portal.redirect_uri,
            "code_verifier": started["pending"]["verifier"],
        },
        auth=(portal.client_id, portal.client_secret),
        timeout=30,
    )
    if response.status_code != 200:
        error = response.json().get("error", "token_error") if response.content else "empty"
        raise SignInRefused(f"token:{error}", response.status_code, "/token")
    tokens: dict[str, Any] = response.json()
    return tokens


@dataclass
class Attempt:
    """One sign-in under a fault: when it ran and how it ended."""

    started: float
    ended: float
    error: str | None = None
    tokens: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def timed(run: Callable[[], dict[str, Any]]) -> Attempt:
    """Run one sign-in, recording its times and outcome (never raises for a refusal)."""
    started = time.monotonic()
    try:
        tokens = run()
    except SignInRefused as refused:
        return Attempt(started, time.monotonic(), refused.code)
    except Exception as error:  # every failure is a measurement here
        return Attempt(started, time.monotonic(), f"{type(error).__name__}: {error}"[:200])
    return Attempt(started, time.monotonic(), None, tokens)


def summary(attempts: list[Attempt]) -> str:
    failed: dict[str, int] = {}
    for attempt in attempts:
        if attempt.error is not None:
            failed[attempt.error] = failed.get(attempt.error, 0) + 1
    return f"{len(attempts)} sign-ins, {sum(failed.values())} failed {failed}"


# -- a TCP proxy that can be killed ---------------------------------------------------------------


class TcpProxy:
    """Forwards a loopback port to ``target``; :meth:`kill` closes the port and every
    connection at once (to its clients, the server behind it died), :meth:`revive` listens on
    the same port again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.revive()

    def revive(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def kill(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


# -- a private PostgreSQL ------------------------------------------------------------------------


class PrivatePostgres:
    """A cluster of this test's own (never the shared one), restartable on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.server, self.endpoint = postgres.start(workdir)
        self._argv = [str(arg) for arg in self.server.process.args]  # type: ignore[union-attr]

    def stop_fast(self) -> None:
        """``pg_ctl stop -m fast``: SIGINT to the postmaster, which ends every session."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.server.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.server.process.wait(timeout=20)
        self.server.stop(grace=5)

    def start_again(self) -> None:
        self.server = Server(
            postgres.COMPONENT,
            self._argv,
            log=self.workdir / "postgres.log",
            user=postgres.SERVICE_USER,
            cwd=self.workdir,
        )
        endpoint = self.endpoint
        self.server.wait_until(
            lambda: postgres.ready(endpoint), timeout=30, what="accepting connections"
        )

    def close(self) -> None:
        self.stop_fast()


@contextlib.contextmanager
def private_postgres(workdir: Path) -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres(workdir)
    try:
        yield cluster
    finally:
        cluster.close()


# -- an oidc-provider region with faults ---------------------------------------------------------


class FaultRegion:
    """``tests/peers/fault_op.mjs`` on a port of its own; :meth:`restart` brings it back on the
    same port (and so the same issuer) with another configuration."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.issuer = f"http://{LOOPBACK}:{self.port}"
        self.server = self._start(config)

    def _start(self, config: dict[str, Any]) -> Server:
        server = Server(
            "oidc-provider",
            ["node", str(PEERS / "fault_op.mjs"), str(self.port), json.dumps(config)],
            log=self.workdir / f"fault-op-{self.port}.log",
            cwd=PEERS,
        )

        def discovery_served() -> bool:
            url = f"{self.issuer}/.well-known/openid-configuration"
            return requests.get(url, timeout=2).status_code == 200

        server.wait_until(discovery_served, timeout=30, what="serving discovery")
        return server

    def restart(self, config: dict[str, Any]) -> None:
        self.server.stop(grace=5)
        self.server = self._start(config)

    def stop(self) -> None:
        self.server.stop(grace=5)
