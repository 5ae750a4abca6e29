"""Federated single sign-on end to end: openid-client portals, the gateway, Keycloak regions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_fixtures import (
    KeycloakRegion,
    PortalSite,
    RunningGateway,
    keycloak_region,
    register_portal,
    sign_in_at_keycloak,
    start_gateway,
)
from playwright.sync_api import Browser, Page
from tongxing_dev.keycloak import KeycloakEndpoint


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    yield from start_gateway(tmp_path_factory.mktemp("gateway"))


@pytest.fixture(scope="module")
def zj(keycloak: KeycloakEndpoint, gateway: RunningGateway) -> Iterator[KeycloakRegion]:
    region = keycloak_region(keycloak, gateway, "zj")
    yield region
    region.admin.change_current_realm("master")
    region.admin.delete_realm(region.realm)


@pytest.fixture(scope="module")
def site() -> Iterator[PortalSite]:
    portals = PortalSite()
    yield portals
    portals.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    yield page
    context.close()


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
