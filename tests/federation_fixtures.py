"""What the federation tests share: an entity's configuration served over https on loopback.

OpenID Federation 1.0 §9: an entity publishes its configuration at
``/.well-known/openid-federation`` as ``application/entity-statement+jwt``. The tests' leaf
entities (a portal, a subordinate) serve theirs with a certificate of the test's own CA, so the
gateway fetches it as it would in production: over TLS, through its guarded outbound session.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def serve_entity_configuration(
    cert_file: Path, key_file: Path, configuration: Callable[[], str]
) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``configuration()`` (read at each request) at the well-known path over https on
    127.0.0.1; the server (``shutdown()`` it) and the entity identifier, ``https://127.0.0.1:<port>``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/.well-known/openid-federation":
                self.send_response(404)
                self.end_headers()
                return
            body = configuration().encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/entity-statement+jwt")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"https://127.0.0.1:{server.server_address[1]}"
