"""Per-region health (issue 14): a region that keeps failing is short-circuited, the clear
``region_unavailable`` page comes at once instead of a wait per citizen, other regions still sign
in, and a background probe closes the circuit when the region answers again.

Real servers only: the failing regions are real loopback HTTP servers (one that stops answering,
one that is not running at all), the healthy region a Keycloak realm.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from gateway_fixtures import (
    KeycloakRegion,
    Portal,
    PortalSite,
    RunningGateway,
    keycloak_region,
    register_portal,
    sign_in_at_keycloak,
    start_gateway,
)
from playwright.sync_api import Browser
from pydantic import SecretStr
from realm_operator.models import REGION_CONDITIONS, Condition, ConditionType, condition
from realm_operator.reconcile import Progress, mirror_region_health
from tongxing_dev.keycloak import KeycloakEndpoint
from tongxing_dev.process import free_port

from gateway.broker.metadata import CachePolicy
from tongxing_api.client import GatewayClient

FAILURES = 2  # consecutive failures that open a circuit
PROBE_SECONDS = 0.5
UPSTREAM_TIMEOUT = 2.0  # connect 1 s, read 1 s: a silent region costs a citizen ~1 s
SECRET = "region-client-secret-that-must-stay-hidden"


class RegionServer:
    """A region's discovery endpoint on a fixed loopback port: answering, silent (each request
    hangs past the gateway's read timeout) or stopped (the port refuses connections)."""

    def __init__(self, port: int, code: str) -> None:
        self.port, self.code = port, code
        self.issuer = f"http://127.0.0.1:{port}/realms/{code}"
        self.silent = False
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        region = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if region.silent:
                    time.sleep(UPSTREAM_TIMEOUT + 1)
                    return
                body = json.dumps(region.document()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def document(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/auth",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/certs",
            "code_challenge_methods_supported": ["S256"],
        }


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    circuit = {"failures": FAILURES, "open_seconds": 600, "probe_seconds": PROBE_SECONDS}
    for running in start_gateway(
        tmp_path_factory.mktemp("health"),
        region_circuit=circuit,
        upstream_timeout=UPSTREAM_TIMEOUT,
    ):
        # Without the cache's 10 s back-off every sign-in asks the failing region itself: the
        # circuit, not the back-off, is what these tests measure.
        running.services.regions.policy = CachePolicy(failure_backoff=0)
        yield running


@pytest.fixture(scope="module")
def zj(keycloak: KeycloakEndpoint, gateway: RunningGateway) -> Iterator[KeycloakRegion]:
    region = keycloak_region(keycloak, gateway, "zj")
    yield region
    region.admin.change_current_realm("master")
    region.admin.delete_realm(region.realm)


@pytest.fixture(scope="module")
def portal(gateway: RunningGateway) -> Iterator[Portal]:
    site = PortalSite()
    yield register_portal(gateway, site, "health")
    site.close()


def put_region(gateway: RunningGateway, server: RegionServer) -> None:
    body = {
        "names": {"zh": f"地区{server.code}", "en": f"Region {server.code}"},
        "kind": "province",
        "issuer": server.issuer,
        "client_id": "tongxing",
        "client_secret": SECRET,
    }
    response = gateway.admin("PUT", f"/regions/{server.code}", body)
    assert response.status_code == 201, response.text


def sign_in_at(portal: Portal, code: str) -> tuple[requests.Response, float]:
    """A portal's authorization request naming region ``code``: the answer and its time."""
    url = portal.start("openid", region=code)["url"]
    began = time.monotonic()
    answer = requests.get(url, allow_redirects=False, timeout=30, headers={"Accept": "text/html"})
    return answer, time.monotonic() - began


def circuits(gateway: RunningGateway) -> dict[str, Any]:
    answer = requests.get(f"{gateway.issuer}/status", timeout=10)
    assert answer.status_code == 200
    assert SECRET not in answer.text  # THREAT_MODEL row 8: a status never holds a secret
    regions: dict[str, Any] = answer.json()["regions"]
    return regions


def wait_until_closed(gateway: RunningGateway, code: str, within: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < within:
        if circuits(gateway)[code]["state"] == "closed":
            return time.monotonic() - began
        time.sleep(0.05)
    raise AssertionError(f"the circuit of {code} is still {circuits(gateway)[code]}")


def test_a_silent_region_is_short_circuited_after_k_slow_failures_and_probed_back(
    gateway: RunningGateway, zj: KeycloakRegion, portal: Portal, browser: Browser
) -> None:
    region = RegionServer(free_port(), "sh")
    region.start()
    region.silent = True
    put_region(gateway, region)
    try:
        slow = []
        for _ in range(FAILURES):
            answer, took = sign_in_at(portal, "sh")
            assert answer.status_code == 503
            assert "region_unavailable" in answer.text
            slow.append(took)
        state = circuits(gateway)["sh"]
        assert state["state"] == "open"
        assert state["failures"] == FAILURES
        assert state["last_error"] == {"call": "discovery", "code": "timeout"}

        answer, fast = sign_in_at(portal, "sh")
        print(f"silent region: sign-ins took {[f'{t:.2f}' for t in slow]} s, then {fast:.3f} s")
        assert all(t >= 0.9 for t in slow), slow  # each waited for the read timeout
        assert answer.status_code == 503
        assert "region_unavailable" in answer.text
        assert "暂时无法访问" in answer.text
        assert fast < 0.3, f"the open circuit answered after {fast:.2f} s"

        # Another region is not affected: a person signs in at Keycloak meanwhile.
        context = browser.new_context(locale="zh-CN")
        try:
            page = context.new_page()
            started = portal.start("openid", region="zj")
            page.goto(started["url"])
            sign_in_at_keycloak(page, zj)
            page.wait_for_url(f"{portal.redirect_uri}**")
            assert "code=" in page.url
        finally:
            context.close()
        assert circuits(gateway)["zj"]["state"] == "closed"

        region.silent = False
        took = wait_until_closed(gateway, "sh", within=PROBE_SECONDS + UPSTREAM_TIMEOUT + 1)
        print(f"silent region: the probe closed the circuit {took:.2f} s after it answered")
        answer, _ = sign_in_at(portal, "sh")
        assert answer.status_code in (302, 303)
        assert answer.headers["Location"].startswith(f"{region.issuer}/auth?")
    finally:
        region.silent = False
        region.stop()


def test_a_stopped_region_opens_its_circuit_and_closes_when_it_starts_again(
    gateway: RunningGateway, portal: Portal
) -> None:
    region = RegionServer(free_port(), "gd")  # not started: the port refuses connections
    put_region(gateway, region)
    try:
        for _ in range(FAILURES):
            assert sign_in_at(portal, "gd")[0].status_code == 503
        state = circuits(gateway)["gd"]
        assert state["state"] == "open"
        assert state["last_error"] == {"call": "discovery", "code": "connection_error"}
        time.sleep(PROBE_SECONDS * 3)  # the probe knocks in vain: still open
        assert circuits(gateway)["gd"]["state"] == "open"
        assert sign_in_at(portal, "gd")[0].status_code == 503

        region.start()
        took = wait_until_closed(gateway, "gd", within=PROBE_SECONDS + 1)
        print(f"stopped region: the probe closed the circuit {took:.2f} s after it started")
        answer, _ = sign_in_at(portal, "gd")
        assert answer.status_code in (302, 303)
    finally:
        region.stop()


def test_the_operator_mirrors_the_gateway_s_view_into_the_region_s_reachable_condition(
    gateway: RunningGateway, portal: Portal, zj: KeycloakRegion
) -> None:
    """Issue 14: the operator reads ``/status`` and reports each Region's circuit as its
    ``Reachable`` condition: False with the failure code when open, True when closed, Unknown
    when the gateway does not say (an unknown code)."""
    region = RegionServer(free_port(), "hn")  # never started: connections are refused
    put_region(gateway, region)
    for _ in range(FAILURES):
        sign_in_at(portal, "hn")
    client = GatewayClient(gateway.issuer, SecretStr(gateway.admin_token))

    def reachable(code: str) -> Condition:
        progress = Progress(previous={}, generation=1, order=REGION_CONDITIONS)
        mirror_region_health(client, code, progress)
        found = condition(progress.conditions, ConditionType.REACHABLE)
        assert found is not None
        return found

    opened = reachable("hn")
    assert (opened.status, opened.reason) == ("False", "CircuitOpen")
    assert "connection_error" in opened.message or "last error" in opened.message
    assert region.issuer not in opened.message  # codes and times only, no URL
    closed = reachable("zj")
    assert (closed.status, closed.reason) == ("True", "CircuitClosed")
    unknown = reachable("nowhere")
    assert (unknown.status, unknown.reason) == ("Unknown", "StatusUnavailable")
