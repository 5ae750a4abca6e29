"""A Werkzeug server on a thread, for the demo (and tests): loopback only."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer

from gateway.wsgi import ServerUnavailableError, WsgiApp, is_loopback, werkzeug_server


class BackgroundServer:
    """A Werkzeug server on a thread: ``port`` is known once bound.

    The application may be attached after binding (:meth:`attach`), so a process can learn its
    own URL (port 0 = any free port) before it builds an application that needs it.
    """

    def __init__(self, host: str, port: int, app: WsgiApp | None = None) -> None:
        if not is_loopback(host):
            raise ServerUnavailableError(f"a background server listens on loopback only: {host}")
        self._app = app
        self._server: BaseWSGIServer = werkzeug_server(host, port, self._dispatch)
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
