"""Debian's Chromium, driven by Playwright, renders a page served on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>通行</title></head>
<body><h1>一次注册，全网通行</h1><p id="script">not run</p>
<script>document.getElementById("script").textContent = "JavaScript ran";</script>
</body></html>""".encode()


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def page_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_chromium_renders_a_loopback_page_and_runs_its_script(
    browser: Browser, page_url: str
) -> None:
    page = browser.new_page(locale="zh-CN")
    try:
        page.goto(page_url)
        assert page.title() == "通行"
        assert page.locator("h1").inner_text() == "一次注册，全网通行"
        assert page.locator("#script").inner_text() == "JavaScript ran"
        assert "HeadlessChrome" in page.evaluate("navigator.userAgent")
    finally:
        page.close()
