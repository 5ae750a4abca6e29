"""The request id travels with the gateway's own HTTP calls (issue 14, "Structured logs"): a
region's and a portal's logs can be joined to the gateway's lines of the same request."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.broker.transport import new_session
from gateway.logs import request_context
from gateway.outbound import OutboundPolicy
from gateway.services import build_services
from gateway.settings import Settings


class Peer:
    """A web server on loopback that records the X-Request-ID of every request it gets."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                peer.seen.append(self.headers.get("X-Request-ID"))
                body = json.dumps({"issuer": "elsewhere"}).encode()  # not a usable document
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def peer() -> Iterator[Peer]:
    started = Peer()
    yield started
    started.server.shutdown()
    started.server.server_close()


def test_the_broker_and_outbound_sessions_send_the_request_id(peer: Peer) -> None:
    with request_context("rid-broker"):
        new_session().get(f"{peer.url}/.well-known/openid-configuration", timeout=5).close()
    with request_context("rid-outbound"):
        session = OutboundPolicy(insecure_allow_http=True).session()
        session.post(f"{peer.url}/backchannel", data={"x": "y"}, timeout=5).close()
    new_session().get(peer.url, timeout=5).close()  # outside a request: no id invented
    assert peer.seen == ["rid-broker", "rid-outbound", None]


def test_a_sign_in_sends_the_ingress_request_id_to_the_region(peer: Peer, tmp_path: Path) -> None:
    token = secrets.token_urlsafe(32)
    settings = Settings.model_validate(
        {
            "issuer": "http://127.0.0.1:9",
            "insecure_allow_http": True,
            "data_dir": tmp_path,
            "create_keys": True,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": token,
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    services = build_services(settings)
    try:
        client = create_app(services=services).test_client()
        admin = {"Authorization": f"Bearer {token}"}
        region = {
            "names": {"zh": "浙江", "en": "Zhejiang"},
            "kind": "province",
            "issuer": peer.url,
            "client_id": "tongxing",
            "client_secret": secrets.token_urlsafe(24),
        }
        assert client.put("/admin/v1/regions/zj", json=region, headers=admin).status_code == 201
        portal = {
            "names": {"zh": "门户", "en": "Portal"},
            "owner": "zj",
            "redirect_uris": ["http://127.0.0.1:9/cb"],
        }
        answer = client.put("/admin/v1/portals/portal-p", json=portal, headers=admin)
        assert answer.status_code == 201, answer.text
        peer.seen.clear()
        response = client.get(
            "/authorize",
            query_string={
                "response_type": "code",
                "client_id": "portal-p",
                "redirect_uri": "http://127.0.0.1:9/cb",
                "scope": "openid",
                "region": "zj",
            },
            headers={"X-Request-ID": "ingress-7f3a"},
        )
        assert response.headers["X-Request-ID"] == "ingress-7f3a"
        assert peer.seen, "the gateway did not call the region"
        assert set(peer.seen) == {"ingress-7f3a"}
    finally:
        services.close()
