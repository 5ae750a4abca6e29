"""``GatewayClient.list_all`` against a gateway that pages badly: a real HTTP server on loopback
that answers what a broken or hostile gateway could.

The client takes only the ``after`` of a ``rel="next"`` link and asks its own URL for the next
page, so a link to another host never receives the bearer token; pages that do not advance are
an error, not an endless loop.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from tongxing_api.client import GatewayClient, GatewayUnavailableError

TOKEN = secrets.token_urlsafe(32)


class Pager(ThreadingHTTPServer):
    """Three pages of portals; ``next_link(after)`` says what each page links to."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, list[str]], str]] = []
        self.mode = "elsewhere"
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Pager

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.server.seen.append((url.path, query, self.headers.get("Authorization", "")))
        after = query.get("after", [""])[0]
        page = {"": "a", "a": "b", "b": "c"}.get(after)
        body = json.dumps([] if page is None else [{"client_id": page}]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if page is not None and page != "c":
            if self.server.mode == "elsewhere":
                link = f"https://collector.example.net/steal?after={page}&limit=9"
            else:  # "stuck": always the same key
                link = "/admin/v1/portals?after=a"
            self.send_header("Link", f'<{link}>; rel="next"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def pager() -> Iterator[Pager]:
    server = Pager()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_next_link_to_another_host_is_followed_on_the_clients_own_url(pager: Pager) -> None:
    client = GatewayClient(pager.url, SecretStr(TOKEN))
    listed = client.list_all("portals", page_size=7)
    assert [p["client_id"] for p in listed] == ["a", "b", "c"]
    assert [(path, q.get("after"), q["limit"]) for path, q, _ in pager.seen] == [
        ("/admin/v1/portals", None, ["7"]),
        ("/admin/v1/portals", ["a"], ["7"]),
        ("/admin/v1/portals", ["b"], ["7"]),
    ]
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth in pager.seen)


def test_pages_that_do_not_advance_are_an_error_not_a_loop(pager: Pager) -> None:
    pager.mode = "stuck"
    with pytest.raises(GatewayUnavailableError, match="do not advance"):
        GatewayClient(pager.url, SecretStr(TOKEN)).list_all("portals")
    assert len(pager.seen) == 2
