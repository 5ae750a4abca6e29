"""Federated single sign-on end to end: openid-client portals, the gateway, Keycloak regions."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from gateway_fixtures import (
    PERSON_ID,
    KeycloakRegion,
    Portal,
    PortalSite,
    RpError,
    RunningGateway,
    register_portal,
    sign_in_at_keycloak,
    start_gateway,
)
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Browser, Page
from tongxing_dev import peers
from tongxing_dev.postgres import PostgresEndpoint


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresEndpoint
) -> Iterator[RunningGateway]:
    """This module's gateway keeps its records in PostgreSQL (the other modules' in SQLite), so
    the federation runs end to end on both engines: their token paths differ (PostgreSQL issues
    and rotates tokens in single statements)."""
    url = postgres.create_database(f"federation_{secrets.token_hex(4)}")
    yield from start_gateway(tmp_path_factory.mktemp("gateway"), database_url=url)


def test_sign_in_at_portal_a_then_portal_b_without_credentials(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal_a = register_portal(gateway, site, "a")
    portal_b = register_portal(gateway, site, "b", subject_type="pairwise")

    started = portal_a.start()
    page.goto(started["url"])
    assert page.locator("h1").first.inner_text() == "选择您注册的地区"
    page.check("input[value=zj]")
    page.click("button[type=submit]")
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{portal_a.redirect_uri}**")
    tokens_a = portal_a.finish(site.last_visit(portal_a.redirect_uri), started)
    claims_a = tokens_a["claims"]
    assert claims_a["iss"] == gateway.issuer
    assert claims_a["aud"] == portal_a.client_id
    assert claims_a["name"] == "三 张"
    assert claims_a["acr"] == "loa1"

    started_b = portal_b.start()
    page.goto(started_b["url"])  # no chooser, no password: the SSO session answers
    page.wait_for_url(f"{portal_b.redirect_uri}**")
    tokens_b = portal_b.finish(site.last_visit(portal_b.redirect_uri), started_b)
    assert tokens_b["claims"]["sub"] != claims_a["sub"]  # pairwise for portal B
    assert tokens_b["claims"]["auth_time"] == claims_a["auth_time"]

    info = portal_a.rp("userinfo", tokens_a["access_token"], claims_a["sub"])
    assert info == {"sub": claims_a["sub"], "name": "三 张", "home_region": "zj"}


def sign_in(page: Page, portal: Portal, region: KeycloakRegion, site: PortalSite) -> Any:
    """A first sign-in at ``portal`` through the chooser and the region's login page."""
    started = portal.start("openid profile offline_access")
    page.goto(started["url"])
    page.check(f"input[value={region.code}]")
    page.click("button[type=submit]")
    sign_in_at_keycloak(page, region)
    page.wait_for_url(f"{portal.redirect_uri}**")
    return portal.finish(site.last_visit(portal.redirect_uri), started)


def test_refresh_rotates_and_revocation_ends_the_grant(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "refresh")
    tokens = sign_in(page, portal, zj, site)
    refreshed = portal.rp("refresh", tokens["refresh_token"])
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    assert refreshed["claims"]["sub"] == tokens["claims"]["sub"]
    assert portal.rp("userinfo", refreshed["access_token"], tokens["claims"]["sub"])["sub"]

    portal.rp("revoke", refreshed["refresh_token"])
    with pytest.raises(RpError, match="invalid_grant"):
        portal.rp("refresh", refreshed["refresh_token"])
    with pytest.raises(RpError):
        portal.rp("userinfo", refreshed["access_token"], tokens["claims"]["sub"])


def test_the_region_callback_answers_the_portal_directly(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    """After the region, one redirect: /callback resumes the portal's request itself."""
    portal = register_portal(gateway, site, "direct")
    navigations: list[str] = []
    page.on("request", lambda r: navigations.append(r.url) if r.is_navigation_request() else None)
    tokens = sign_in(page, portal, zj, site)
    assert tokens["claims"]["aud"] == portal.client_id
    gateway_hops = [url for url in navigations if url.startswith(gateway.issuer)]
    callback = next(i for i, url in enumerate(navigations) if "/callback/zj?" in url)
    assert navigations[callback + 1].startswith(f"{portal.redirect_uri}?")
    assert [url.split("?")[0].removeprefix(gateway.issuer) for url in gateway_hops] == [
        "/authorize",  # the portal's request: the chooser
        "/authorize",  # the region chosen
        "/callback/zj",  # the region's answer, and the code for the portal
    ]


def test_a_reused_refresh_token_ends_the_grant(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "reuse")
    tokens = sign_in(page, portal, zj, site)
    refreshed = portal.rp("refresh", tokens["refresh_token"])
    with pytest.raises(RpError, match="invalid_grant"):  # the rotated token, presented again
        portal.rp("refresh", tokens["refresh_token"])
    with pytest.raises(RpError, match="invalid_grant"):  # so its successor is revoked too
        portal.rp("refresh", refreshed["refresh_token"])
    with pytest.raises(RpError):
        portal.rp("userinfo", refreshed["access_token"], tokens["claims"]["sub"])


def test_introspection_tells_the_portal_about_its_own_tokens_only(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    mine = register_portal(gateway, site, "introspect")
    other = register_portal(gateway, site, "other")
    tokens = sign_in(page, mine, zj, site)
    url = f"{gateway.issuer}/introspect"
    answer = requests.post(
        url,
        data={"token": tokens["access_token"]},
        timeout=10,
        auth=(mine.client_id, mine.client_secret),
    ).json()
    assert answer["active"] is True
    assert answer["sub"] == tokens["claims"]["sub"]
    assert answer["client_id"] == mine.client_id
    foreign = requests.post(
        url,
        data={"token": tokens["access_token"]},
        timeout=10,
        auth=(other.client_id, other.client_secret),
    ).json()
    assert foreign == {"active": False}


def test_logout_at_portal_b_ends_portal_as_session_by_back_channel(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal_a = register_portal(gateway, site, "logout-a")
    portal_b = register_portal(gateway, site, "logout-b", subject_type="pairwise")
    tokens_a = sign_in(page, portal_a, zj, site)
    started_b = portal_b.start()
    page.goto(started_b["url"])
    page.wait_for_url(f"{portal_b.redirect_uri}**")
    tokens_b = portal_b.finish(site.last_visit(portal_b.redirect_uri), started_b)

    page.goto(
        f"{gateway.issuer}/logout?"
        + urlencode(
            {
                "id_token_hint": tokens_b["id_token"],
                "state": "bye-123",
                "post_logout_redirect_uri": f"{site.base}/{portal_b.client_id}/bye",
            }
        )
    )
    page.wait_for_url(f"{site.base}/{portal_b.client_id}/bye**")
    assert site.last_visit(f"{site.base}/{portal_b.client_id}/bye").endswith("?state=bye-123")

    keys = KeySet.import_key_set(requests.get(f"{gateway.issuer}/jwks", timeout=10).json())
    for portal, tokens in ((portal_a, tokens_a), (portal_b, tokens_b)):
        [logout_token] = site.logout_tokens[portal.client_id]
        decoded = jwt.decode(logout_token, keys, algorithms=["RS256"])
        assert decoded.header["typ"] == "logout+jwt"
        claims = decoded.claims
        assert claims["aud"] == portal.client_id
        assert claims["sid"] == tokens["claims"]["sid"]
        assert claims["sub"] == tokens["claims"]["sub"]
        assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]
        assert "nonce" not in claims
    with pytest.raises(RpError, match="invalid_grant"):
        portal_a.rp("refresh", tokens_a["refresh_token"])
    started = portal_a.start()
    page.goto(started["url"])  # the SSO session is over: the chooser again
    assert page.locator("h1").first.inner_text() == "选择您注册的地区"


def test_the_same_person_through_another_region_is_the_same_national_subject(
    gateway: RunningGateway,
    zj: KeycloakRegion,
    site: PortalSite,
    browser: Browser,
    node_peers: Path,
    tmp_path: Path,
) -> None:
    portal = register_portal(gateway, site, "roam")
    first = browser.new_context()
    tokens_zj = sign_in(first.new_page(), portal, zj, site)
    first.close()

    secret = "sh-" + "s" * 40
    server, issuer = peers.start_op(
        tmp_path,
        {
            "clients": [
                {
                    "client_id": "tongxing",
                    "client_secret": secret,
                    "redirect_uris": [f"{gateway.issuer}/callback/sh"],
                    "token_endpoint_auth_method": "client_secret_basic",
                }
            ],
            "accounts": {"lisi-sh": {"id_number": PERSON_ID, "name": "张三"}},
        },
    )
    try:
        response = gateway.admin(
            "PUT",
            "/regions/sh",
            {
                "names": {"zh": "上海", "en": "Shanghai"},
                "kind": "municipality",
                "issuer": issuer,
                "client_id": "tongxing",
                "client_secret": secret,
                "scopes": ["openid", "profile", "id_number"],
            },
        )
        assert response.status_code in (200, 201), response.text
        second = browser.new_context()
        page = second.new_page()
        started = portal.start("openid profile", region="sh")
        page.goto(started["url"])
        page.fill("input[name=login]", "lisi-sh")
        page.fill("input[name=password]", "any")
        page.click("button[type=submit]")
        page.click("button[type=submit]")  # oidc-provider's consent page
        page.wait_for_url(f"{portal.redirect_uri}**")
        tokens_sh = portal.finish(site.last_visit(portal.redirect_uri), started)
        second.close()
    finally:
        server.stop()
        gateway.admin("DELETE", "/regions/sh")
    assert tokens_sh["claims"]["sub"] == tokens_zj["claims"]["sub"]
    assert tokens_sh["claims"]["home_region"] == "sh"


def test_a_portal_registered_for_es256_gets_es256_id_tokens(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "es256", id_token_signed_response_alg="ES256")
    tokens = sign_in(page, portal, zj, site)  # openid-client insists on the registered alg
    header = tokens["id_token"].split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["alg"] == "ES256"
