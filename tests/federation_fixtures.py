"""What the federation tests share: an entity's configuration served over https on loopback.

OpenID Federation 1.0 §9: an entity publishes its configuration at
``/.well-known/openid-federation`` as ``application/entity-statement+jwt``. The tests' leaf
entities (a portal, a subordinate) serve theirs with a certificate of the test's own CA, so the
gateway fetches it as it would in production: over TLS, through its guarded outbound session.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from joserfc import jwt
from joserfc.jwk import ECKey

from gateway.federation.statements import ENTITY_STATEMENT_TYP


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


class TlsFront:
    """A TLS reverse proxy on 127.0.0.1 in front of an http server (``upstream``, e.g.
    Keycloak): an https origin for a realm whose ``frontendUrl`` names it. It serves each
    path of ``statements`` (``path -> callable``) itself as an entity statement (§9) and
    forwards everything else as it is, recording each forwarded path in ``forwarded``."""

    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        upstream: str,
        statements: dict[str, Callable[[], str]] | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.statements: dict[str, Callable[[], str]] = dict(statements or {})
        self.forwarded: list[str] = []
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path in front.statements:
                    body = front.statements[self.path]().encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/entity-statement+jwt")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def _forward(self) -> None:
                front.forwarded.append(self.path.split("?")[0])
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length) if length else None
                target = urlsplit(front.upstream)
                connection = http.client.HTTPConnection(target.netloc, timeout=30)
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in ("host", "connection", "keep-alive")
                }
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                content = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
                connection.close()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"https://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_federation_entity(
    cert_file: Path,
    key_file: Path,
    configuration: Callable[[], str],
    fetch: Callable[[str], str | None],
) -> tuple[ThreadingHTTPServer, str]:
    """An intermediate entity (I20) over https on 127.0.0.1: its configuration (read at each
    request) at the well-known path (§9), and at ``/fetch?sub=`` the subordinate statement
    ``fetch(sub)`` (§8.1; ``None``: 404 ``not_found``). The server and its entity identifier."""
    from urllib.parse import parse_qs

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            body: str | None = None
            if parts.path == "/.well-known/openid-federation":
                body = configuration()
            elif parts.path == "/fetch":
                subs = parse_qs(parts.query).get("sub", [])
                body = fetch(subs[0]) if len(subs) == 1 else None
            if body is None:
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"error": "not_found"}')
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/entity-statement+jwt")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"https://127.0.0.1:{server.server_address[1]}"


def node_peer(script: str, *args: str) -> Any:
    """Run the Node peer ``tests/peers/<script>`` with ``args``: the JSON object it prints, or
    :class:`AssertionError` with what it wrote on stderr."""
    from tongxing_dev.peers import PEERS  # the harness, as the tests import it

    done = subprocess.run(
        ["node", str(PEERS / script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=PEERS,
    )
    if done.returncode != 0:
        raise AssertionError(done.stderr.strip())
    return json.loads(done.stdout)


class PortalEntity:
    """A portal's federation entity on loopback (OpenID Federation 1.0 §9): its federation key,
    its protocol key (the ``jwks`` of its ``openid_relying_party`` metadata) and its entity
    configuration, signed with ``signing_key`` (the federation key unless a test changes it)
    and listing :meth:`own_key` in its ``jwks``; ``aud`` only when set (§12.2.1)."""

    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        anchor: str,
        redirect_uri: str,
        *,
        client_name: str,
        scope: str,
        registration_type: str,
        aud: Any = None,
    ) -> None:
        self.federation_key = ECKey.generate_key("P-256")
        self.signing_key = self.federation_key
        self.rp_key = ECKey.generate_key("P-256")
        self.anchor = anchor
        self.aud = aud
        self.lifetime = 3600
        self.redirect_uri = redirect_uri
        self.metadata: dict[str, Any] = {
            "client_name": client_name,
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "private_key_jwt",
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": scope,
            "client_registration_types": [registration_type],
            "jwks": {"keys": [self.public(self.rp_key)]},
        }
        self.server, self.entity_id = serve_entity_configuration(
            cert_file, key_file, self.entity_configuration
        )

    @staticmethod
    def public(key: ECKey) -> dict[str, Any]:
        return {**key.as_dict(private=False), "kid": key.thumbprint(), "alg": "ES256"}

    def own_key(self) -> ECKey:
        """The key the entity configuration lists as the entity's own (§3: ``jwks``)."""
        return self.federation_key

    def entity_configuration(self) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.entity_id,
            "sub": self.entity_id,
            "iat": now,
            "exp": now + self.lifetime,
            "jwks": {"keys": [self.public(self.own_key())]},
            "authority_hints": [self.anchor],
            "metadata": {"openid_relying_party": self.metadata},
        }
        if self.aud is not None:
            claims["aud"] = self.aud
        header = {"alg": "ES256", "kid": self.signing_key.thumbprint(), "typ": ENTITY_STATEMENT_TYP}
        return str(jwt.encode(header, claims, self.signing_key))

    def record(self, admin: Callable[..., Any], key: str) -> None:
        """The platform records the entity as portal subordinate ``key`` with its federation
        key (``admin``: a running gateway's admin call)."""
        answer = admin(
            "PUT",
            f"/federation/subordinates/portal/{key}",
            {"entity_id": self.entity_id, "jwks": {"keys": [self.public(self.federation_key)]}},
        )
        assert answer.status_code == 200, answer.text

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
