"""Nothing secret in any log line (issue 14, "Structured logs"; THREAT_MODEL row 8: an insider
with read access to the logs lifts no token, identity number or secret from them).

A real ``tongxing serve --log-format json --log-level DEBUG`` process (waitress, the formatter
production uses) serves two citizens of a Keycloak region signing in through Chromium at two
openid-client portals: codes exchanged, tokens refreshed, userinfo, introspection, revocation,
a replayed code and a wrong client secret refused, RP-initiated logout with the region's logout
and the back-channel logout to the portals. Then every line the process wrote is scanned for each
citizen's identity number and password, every code and token the portals and the gateway
received, the portals' and the region's client secrets, the gateway's own secrets and the private
members of its signing keys: none may appear.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from gateway_fixtures import (
    PERSON_ID,
    KeycloakRegion,
    Portal,
    PortalSite,
    add_keycloak_person,
    keycloak_region,
    register_portal,
    sign_in_at_keycloak,
)
from playwright.sync_api import Browser, Page
from tongxing_dev.keycloak import KeycloakEndpoint
from tongxing_dev.process import free_port

from gateway.settings import Settings
from tongxing_demo.federation import identity_number

TONGXING = Path(sys.executable).with_name("tongxing")
LISI_ID = identity_number("330106", "19880512", "417")
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


@dataclass
class ServedGateway:
    """``tongxing serve`` in its own process; what gateway_fixtures needs of a gateway."""

    issuer: str
    admin_token: str
    secrets: dict[str, str]  # TONGXING_* secrets by setting name
    log_file: Path
    data_dir: Path
    process: subprocess.Popen[bytes]

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return requests.request(
            method,
            f"{self.issuer}/admin/v1{path}",
            json=body,
            timeout=10,
            headers={"Authorization": f"Bearer {self.admin_token}"},
        )

    def lines(self) -> list[str]:
        return self.log_file.read_text(encoding="utf-8").splitlines()

    def signing_key_secrets(self) -> list[str]:
        document = json.loads((self.data_dir / "keys.json").read_text())
        found: list[str] = []
        for entry in document["keys"]:
            jwk = entry["jwk"]
            found += [jwk[m] for m in PRIVATE_JWK_MEMBERS if isinstance(jwk.get(m), str)]
        assert found
        return found


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGateway]:
    data_dir = tmp_path_factory.mktemp("gateway")
    log_file = data_dir / "gateway.log"
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    made = {
        name: secrets.token_urlsafe(32)
        for name, field in Settings.model_fields.items()
        if field.is_required() and name != "issuer"
    }
    made["operator_token"] = secrets.token_urlsafe(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGXING_")}
    env |= {f"TONGXING_{name.upper()}": value for name, value in made.items()}
    env |= {
        "TONGXING_ISSUER": issuer,
        "TONGXING_INSECURE_ALLOW_HTTP": "true",
        "TONGXING_DATA_DIR": str(data_dir),
        "TONGXING_CREATE_KEYS": "true",
    }
    with log_file.open("wb") as sink:
        process = subprocess.Popen(
            [str(TONGXING), "serve", f"--port={port}", "--log-format=json", "--log-level=DEBUG"],
            env=env,
            stdout=sink,
            stderr=sink,
        )
    served = ServedGateway(issuer, made["admin_token"], made, log_file, data_dir, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_file.read_text()
            try:
                if requests.get(f"{issuer}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the gateway did not become ready"
            time.sleep(0.1)
        yield served
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def zj(keycloak: KeycloakEndpoint, gateway: ServedGateway) -> Iterator[KeycloakRegion]:
    region = keycloak_region(keycloak, gateway, "zj")  # type: ignore[arg-type]  # duck-typed
    yield region
    region.admin.change_current_realm("master")
    region.admin.delete_realm(region.realm)


@pytest.fixture(scope="module")
def site() -> Iterator[PortalSite]:
    portals = PortalSite()
    yield portals
    portals.close()


def region_client_secret(region: KeycloakRegion) -> str:
    region.admin.change_current_realm(region.realm)
    client = region.admin.get_client_id("tongxing")
    assert client is not None
    value: str = region.admin.get_client_secrets(client)["value"]
    return value


class Seen:
    """Every secret value the run handed to someone: none may reach a log line."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, what: str, value: object) -> None:
        assert isinstance(value, str), what
        assert len(value) >= 8, f"{what}: {value!r}"
        self.values[value] = what

    def tokens(self, where: str, tokens: dict[str, Any]) -> None:
        for name in ("access_token", "refresh_token", "id_token"):
            if tokens.get(name):
                self.add(f"{where} {name}", tokens[name])


def sign_in(
    page: Page,
    portal: Portal,
    person: KeycloakRegion,
    site: PortalSite,
    seen: Seen,
    *,
    at_region: bool = True,
) -> dict[str, Any]:
    """Through the region's login page (or the SSO session); records the region's and the
    portal's codes."""
    at_callback: list[str] = []
    page.on("request", lambda r: at_callback.append(r.url) if "/callback/" in r.url else None)
    started = portal.start("openid profile offline_access", region=person.code)
    page.goto(started["url"])
    if at_region:
        sign_in_at_keycloak(page, person)
    page.wait_for_url(f"{portal.redirect_uri}**")
    for url in at_callback:
        query = parse_qs(urlsplit(url).query)
        for name in ("code", "state"):
            if name in query:
                seen.add(f"region {name}", query[name][0])
    callback = site.last_visit(portal.redirect_uri)
    seen.add("portal code", parse_qs(urlsplit(callback).query)["code"][0])
    tokens: dict[str, Any] = portal.finish(callback, started)
    seen.tokens(portal.client_id, tokens)
    return tokens


def test_no_log_line_holds_a_citizens_number_a_token_or_a_secret(
    gateway: ServedGateway, zj: KeycloakRegion, site: PortalSite, browser: Browser
) -> None:
    seen = Seen()
    lisi = add_keycloak_person(zj, f"lisi-{uuid.uuid4().hex[:4]}", LISI_ID)
    seen.add("zhangsan's identity number", PERSON_ID)
    seen.add("lisi's identity number", LISI_ID)
    seen.add("zhangsan's password", zj.password)
    seen.add("lisi's password", lisi.password)
    seen.add("the region's client secret", region_client_secret(zj))
    for name, value in gateway.secrets.items():
        seen.add(f"TONGXING_{name.upper()}", value)
    portal_a = register_portal(gateway, site, "logs-a")  # type: ignore[arg-type]
    portal_b = register_portal(gateway, site, "logs-b", subject_type="pairwise")  # type: ignore[arg-type]
    seen.add("portal A's client secret", portal_a.client_secret)
    seen.add("portal B's client secret", portal_b.client_secret)

    for person in (zj, lisi):
        context = browser.new_context(locale="zh-CN")
        page = context.new_page()
        tokens = sign_in(page, portal_a, person, site, seen)
        sub = tokens["claims"]["sub"]
        single = sign_in(page, portal_b, person, site, seen, at_region=False)  # SSO answers
        assert single["claims"]["sub"] != sub

        refreshed = portal_a.rp("refresh", tokens["refresh_token"])
        seen.tokens("refreshed", refreshed)
        assert portal_a.rp("userinfo", refreshed["access_token"], sub)["sub"] == sub
        introspected = requests.post(
            f"{gateway.issuer}/introspect",
            data={"token": refreshed["access_token"]},
            auth=(portal_a.client_id, portal_a.client_secret),
            timeout=10,
        ).json()
        assert introspected["active"] is True
        portal_a.rp("revoke", refreshed["refresh_token"])

        # Refusals log the most: a replayed code, a wrong secret, a dead token.
        wrong_secret = secrets.token_urlsafe(24)
        seen.add("a wrong client secret", wrong_secret)
        refused = requests.post(
            f"{gateway.issuer}/token",
            data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]},
            auth=(portal_a.client_id, wrong_secret),
            timeout=10,
        )
        assert refused.status_code == 401
        replayed = requests.post(
            f"{gateway.issuer}/token",
            data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]},
            auth=(portal_a.client_id, portal_a.client_secret),
            timeout=10,
        )
        assert replayed.json()["error"] == "invalid_grant"
        dead = requests.get(
            f"{gateway.issuer}/userinfo",
            headers={"Authorization": f"Bearer {refreshed['access_token']}"},
            timeout=10,
        )
        assert dead.status_code == 401

        # RP-initiated logout, the region's logout, the back-channel logout to both portals.
        bye = f"{portal_b.redirect_uri.removesuffix('/callback')}/bye"
        query = {"id_token_hint": single["id_token"], "post_logout_redirect_uri": bye}
        page.goto(f"{gateway.issuer}/logout?{urlencode(query)}")
        page.wait_for_url(f"{bye}**")
        context.close()

    deadline = time.monotonic() + 10
    while len(site.logout_tokens.get(portal_a.client_id, [])) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    for name, delivered in site.logout_tokens.items():
        for token in delivered:
            seen.add(f"logout token to {name}", token)
    for value in gateway.signing_key_secrets():
        seen.add("a private member of a signing key", value)

    lines = gateway.lines()
    objects = [json.loads(line) for line in lines]  # every line is one JSON object
    events = {line.get("event") for line in objects}
    assert {"http.request", "signin.completed", "token.issued", "logout"} <= events, events
    assert all(line["request_id"] for line in objects if line.get("event") == "http.request")
    leaks = [
        f"{what} in: {line[:300]}"
        for line in lines
        for value, what in seen.values.items()
        if value in line
    ]
    assert not leaks, "\n".join(leaks)
    print(f"scanned {len(lines)} log lines for {len(seen.values)} secret values: none found")
