"""Assurance levels end to end: TOTP step-up in the browser, policies at the door and on claims."""

from __future__ import annotations

from gateway_fixtures import (
    PERSON_ID,
    KeycloakRegion,
    PortalSite,
    RunningGateway,
    register_portal,
    sign_in_at_keycloak,
)
from playwright.sync_api import Page
from second_factor_fixtures import bind_factor_at_loa2, next_code
from sqlalchemy import text

from gateway.store.sql import SqlStore


def test_a_factor_bound_at_loa2_raises_a_later_loa1_sign_in_and_the_token_says_so(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    # Bound where the region vouched loa2 (NIST SP 800-63B §6.1.2.1), on the account page.
    secret, _ = bind_factor_at_loa2(gateway, zj, site, page, "account")
    page.context.clear_cookies()

    # A loa1 (password) sign-in at a loa2 portal is raised by the code.
    portal = register_portal(gateway, site, "tax-lite", minimum_level="loa2")
    started = portal.start("openid profile", region="zj")
    page.goto(started["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{gateway.issuer}/mfa")
    assert page.locator("h1").inner_text() == "输入动态口令"
    page.fill("input[name=code]", next_code(secret))
    page.click("button[type=submit]")
    page.wait_for_url(f"{portal.redirect_uri}**")
    claims = portal.finish(site.last_visit(portal.redirect_uri), started)["claims"]
    assert claims["acr"] == "loa2"
    assert "otp" in claims["amr"]

    # The next loa2 portal in the same session needs nothing more; a fresh session needs the
    # code again (not a new enrolment).
    other = register_portal(gateway, site, "tax-lite-2", minimum_level="loa2")
    again = other.start("openid", region="zj")
    page.goto(again["url"])
    page.wait_for_url(f"{other.redirect_uri}**")
    assert other.finish(site.last_visit(other.redirect_uri), again)["claims"]["acr"] == "loa2"
    page.context.clear_cookies()
    third = other.start("openid", region="zj")
    page.goto(third["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{gateway.issuer}/mfa")
    assert page.locator("h1").inner_text() == "输入动态口令"


def test_a_tax_portal_needs_loa3_which_totp_cannot_give(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "tax", sector="tax")
    started = portal.start("openid profile", region="zj")
    page.goto(started["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{portal.redirect_uri}**")
    visit = site.last_visit(portal.redirect_uri)
    assert "error=unmet_authentication_requirements" in visit
    assert "code=" not in visit
    assert f"state={started['pending']['state']}" in visit


def test_a_portal_limited_to_other_regions_gets_access_denied_and_no_personal_data(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "sh-only", allowed_home_regions=["sh"])
    started = portal.start("openid profile", region="zj")
    page.goto(started["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{portal.redirect_uri}**")
    visit = site.last_visit(portal.redirect_uri)
    assert "error=access_denied" in visit
    assert "code=" not in visit


def test_released_claims_differ_per_portal_as_the_policies_say(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    narrow = register_portal(gateway, site, "narrow", scopes=["openid"])
    wide = register_portal(gateway, site, "wide", scopes=["openid", "profile"])
    started = wide.start("openid profile", region="zj")
    page.goto(started["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{wide.redirect_uri}**")
    wide_claims = wide.finish(site.last_visit(wide.redirect_uri), started)["claims"]
    assert wide_claims["name"] == "三 张"

    # The narrow portal asks for profile too, but its registration does not request it.
    started = narrow.start("openid profile", region="zj")
    page.goto(started["url"])
    page.wait_for_url(f"{narrow.redirect_uri}**")
    narrow_claims = narrow.finish(site.last_visit(narrow.redirect_uri), started)["claims"]
    assert "name" not in narrow_claims
    assert "home_region" not in narrow_claims


def test_the_identity_number_leaves_only_for_portals_allowed_to_receive_it(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    allowed = register_portal(
        gateway, site, "civil", scopes=["openid", "id_number"], may_receive_id_number=True
    )
    curious = register_portal(gateway, site, "curious", scopes=["openid", "id_number"])
    started = allowed.start("openid id_number", region="zj")
    page.goto(started["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{allowed.redirect_uri}**")
    tokens = allowed.finish(site.last_visit(allowed.redirect_uri), started)
    assert tokens["claims"]["id_number"] == PERSON_ID
    info = allowed.rp("userinfo", tokens["access_token"], tokens["claims"]["sub"])
    assert info["id_number"] == PERSON_ID

    started = curious.start("openid id_number", region="zj")
    page.goto(started["url"])
    page.wait_for_url(f"{curious.redirect_uri}**")
    claims = curious.finish(site.last_visit(curious.redirect_uri), started)["claims"]
    assert "id_number" not in claims
    # Nowhere in the database is the number kept in clear (sessions hold it sealed).
    store = gateway.services.store
    assert isinstance(store, SqlStore)
    with store.engine.connect() as conn:
        for table in ("sso_sessions", "subjects", "subject_links", "authorization_codes"):
            dump = str(conn.execute(text(f"SELECT * FROM {table}")).fetchall())  # noqa: S608
            assert PERSON_ID not in dump, table


def test_consent_is_asked_once_remembered_and_withdrawn(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "consent", consent_claims=["phone_number", "name"])
    started = portal.start("openid profile", region="zj")
    page.goto(started["url"])
    sign_in_at_keycloak(page, zj)
    assert "请求获取您的以下信息" in page.locator("h1").inner_text()
    assert page.locator("#claims li").all_inner_texts() == ["姓名 Name"]
    page.click("button[value=allow]")
    page.wait_for_url(f"{portal.redirect_uri}**")
    claims = portal.finish(site.last_visit(portal.redirect_uri), started)["claims"]
    assert claims["name"] == "三 张"

    again = portal.start("openid profile", region="zj")
    page.goto(again["url"])  # remembered: straight back to the portal
    page.wait_for_url(f"{portal.redirect_uri}**")
    assert portal.finish(site.last_visit(portal.redirect_uri), again)["claims"]["name"] == "三 张"

    page.goto(f"{gateway.issuer}/consents")
    assert page.locator(f"li[data-client='{portal.client_id}']").count() == 1
    page.click(f"li[data-client='{portal.client_id}'] button")
    assert page.locator("#no-consents").count() == 1

    third = portal.start("openid profile", region="zj")
    page.goto(third["url"])
    page.click("button[value=deny]")
    page.wait_for_url(f"{portal.redirect_uri}**")
    visit = site.last_visit(portal.redirect_uri)
    assert "error=access_denied" in visit
    assert f"state={third['pending']['state']}" in visit
