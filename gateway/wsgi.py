"""Serving a WSGI application: waitress in production, Werkzeug's server for loopback only.

The gateway is a plain WSGI application (:func:`gateway.app.create_app`). ``tongxing serve`` runs
it with waitress, a pure-Python production server with a thread pool. Werkzeug's development
server is kept behind ``--insecure-dev-server`` for machines where waitress is not installed,
and refuses to listen anywhere but on loopback.
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ServerUnavailableError(Exception):
    """The requested WSGI server cannot run here; the message says what to do instead."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_waitress() -> ModuleType:
    """waitress, imported on demand so that everything else works without it."""
    try:
        return importlib.import_module("waitress")
    except ImportError:
        raise ServerUnavailableError(
            "waitress is not installed (pip install 'waitress>=3.0.2,<4'); on a loopback "
            "development machine --insecure-dev-server runs Werkzeug's server instead"
        ) from None


@dataclass(frozen=True)
class Listen:
    """Where and how to serve."""

    host: str
    port: int
    threads: int = 8


def serve_waitress(app: WsgiApp, listen: Listen) -> None:
    """Serve ``app`` with waitress until the process is told to stop (SIGINT/SIGTERM).

    waitress reads no ``X-Forwarded-*`` header unless ``trusted_proxy`` is set; the gateway does
    that itself with Werkzeug's ``ProxyFix`` and an explicit hop count (``TONGXING_PROXY_HOPS``),
    so waitress is left at its default and the headers reach the application untouched.
    """
    waitress = load_waitress()
    log.info(
        "serving on http://%s:%d with waitress (%d threads)",
        listen.host,
        listen.port,
        listen.threads,
    )
    waitress.serve(
        app,
        host=listen.host,
        port=listen.port,
        threads=listen.threads,
        ident="tongxing",
        # A token or logout request is small: refuse huge bodies before the app sees them.
        max_request_body_size=1024 * 1024,
    )


def serve_insecure_dev_server(app: WsgiApp, listen: Listen) -> None:
    """Werkzeug's threaded development server, on loopback only."""
    if not is_loopback(listen.host):
        raise ServerUnavailableError(
            f"--insecure-dev-server listens on loopback only, not on {listen.host}"
        )
    log.warning("serving with Werkzeug's development server: not for production")
    server = _bind(listen.host, listen.port, app)
    log.info("serving on http://%s:%d", listen.host, server.server_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _bind(host: str, port: int, app: WsgiApp) -> BaseWSGIServer:
    try:
        return make_server(host, port, app, threaded=True)
    except SystemExit:
        # Werkzeug prints why (port in use, permission) and exits; a caller wants an error.
        raise ServerUnavailableError(f"cannot listen on {host}:{port}") from None


class BackgroundServer:
    """A Werkzeug server on a thread, for the demo and tests: ``port`` is known once bound.

    The application may be attached after binding (:meth:`attach`), so a process can learn its
    own URL (port 0 = any free port) before it builds an application that needs it.
    """

    def __init__(self, host: str, port: int, app: WsgiApp | None = None) -> None:
        if not is_loopback(host):
            raise ServerUnavailableError(f"a background server listens on loopback only: {host}")
        self._app = app
        self._server: BaseWSGIServer = _bind(host, port, self._dispatch)
        self._thread: threading.Thread | None = None
        self.host = host

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def attach(self, app: WsgiApp) -> None:
        self._app = app

    def _dispatch(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self._app is None:  # pragma: no cover - only between bind and attach
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"starting"]
        return self._app(environ, start_response)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"wsgi-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
