"""Claims asked for with a value, end to end (OIDC Core §5.5.1, §5.5.1.1; issue 16 follow-up):
a ``sub`` value binds the sign-in to that person, whether an SSO session of someone else stands
or the person signs in afresh at the region (Keycloak, Chromium); an essential ``acr`` is a
requirement like ``acr_values``, and the ID token's ``acr`` is one of the values asked for.
The portal is openid-client (``tests/peers/rp.mjs``)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gateway_fixtures import (
    KeycloakRegion,
    Portal,
    PortalSite,
    RunningGateway,
    add_keycloak_person,
    register_portal,
    sign_in_at_keycloak,
)
from playwright.sync_api import Browser, Page
from second_factor_fixtures import map_region

OTHER_PERSON = "110105198001010016"  # another valid GB 11643-1999 number


def sub_value(value: str) -> str:
    return json.dumps({"id_token": {"sub": {"value": value}}})


def essential_acr(*values: str) -> str:
    return json.dumps({"id_token": {"acr": {"essential": True, "values": list(values)}}})


def answer(site: PortalSite, portal: Portal) -> dict[str, list[str]]:
    return parse_qs(urlsplit(site.last_visit(portal.redirect_uri)).query)


def signed_in_sub(page: Page, site: PortalSite, portal: Portal, person: KeycloakRegion) -> str:
    started = portal.start("openid profile", region=person.code)
    page.goto(started["url"])
    sign_in_at_keycloak(page, person)
    page.wait_for_url(f"{portal.redirect_uri}**")
    sub: str = portal.finish(site.last_visit(portal.redirect_uri), started)["claims"]["sub"]
    return sub


def test_a_sub_value_is_answered_only_for_that_person(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, browser: Browser, page: Page
) -> None:
    portal = register_portal(gateway, site, "sub-bound", subject_type="pairwise")
    lisi = add_keycloak_person(zj, "lisi-sub", OTHER_PERSON)
    other_browser = browser.new_context(locale="zh-CN")
    try:
        lisi_sub = signed_in_sub(other_browser.new_page(), site, portal, lisi)
    finally:
        other_browser.close()
    zhang_sub = signed_in_sub(page, site, portal, zj)
    assert zhang_sub != lisi_sub

    # The SSO path: zhangsan's session stands; a request for lisi's sub is not answered by it.
    started = portal.start("openid profile", region="zj", prompt="none", claims=sub_value(lisi_sub))
    page.goto(started["url"])
    page.wait_for_url(f"{portal.redirect_uri}**")
    refused = answer(site, portal)
    assert refused["error"] == ["login_required"]
    assert "code" not in refused
    # Without prompt=none the person goes to the region, whose own session signs zhangsan in
    # again: still not lisi, so still no code.
    started = portal.start("openid profile", region="zj", claims=sub_value(lisi_sub))
    page.goto(started["url"])
    page.wait_for_url(f"{portal.redirect_uri}**")
    assert answer(site, portal)["error"] == ["login_required"]
    # zhangsan's own sub: the SSO session answers at once.
    started = portal.start("openid profile", prompt="none", claims=sub_value(zhang_sub))
    page.goto(started["url"])
    page.wait_for_url(f"{portal.redirect_uri}**")
    claims = portal.finish(site.last_visit(portal.redirect_uri), started)["claims"]
    assert claims["sub"] == zhang_sub

    # The fresh path: a new browser, lisi signs in where zhangsan's sub was asked for.
    fresh = browser.new_context(locale="zh-CN")
    try:
        fresh_page = fresh.new_page()
        started = portal.start("openid profile", region="zj", claims=sub_value(zhang_sub))
        fresh_page.goto(started["url"])
        sign_in_at_keycloak(fresh_page, lisi)
        fresh_page.wait_for_url(f"{portal.redirect_uri}**")
        refused = answer(site, portal)
        assert refused["error"] == ["login_required"]
        assert "code" not in refused
    finally:
        fresh.close()
    # A sub value in the userinfo member binds the sign-in too (a userinfo answer for someone
    # else would release another sub than the one asked for).
    in_userinfo = json.dumps({"userinfo": {"sub": {"value": lisi_sub}}})
    started = portal.start("openid profile", prompt="none", claims=in_userinfo)
    page.goto(started["url"])
    page.wait_for_url(f"{portal.redirect_uri}**")
    assert answer(site, portal)["error"] == ["login_required"]


def test_an_essential_acr_is_a_requirement_and_is_answered_with_a_value_asked_for(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "acr-claim")
    # loa3 needs identity proofing, which this gateway has not: refused, not answered lower.
    started = portal.start("openid profile", region="zj", claims=essential_acr("loa3"))
    page.goto(started["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{portal.redirect_uri}**")
    refused = answer(site, portal)
    assert refused["error"] == ["unmet_authentication_requirements"]
    assert "code" not in refused
    # A value the gateway does not know cannot be met when essential ...
    started = portal.start("openid profile", claims=essential_acr("urn:example:unknown"))
    page.goto(started["url"])
    page.wait_for_url(f"{portal.redirect_uri}**")
    assert answer(site, portal)["error"] == ["unmet_authentication_requirements"]
    # ... and is ignored when voluntary, as acr_values are.
    voluntary = json.dumps({"id_token": {"acr": {"values": ["urn:example:unknown"]}}})
    started = portal.start("openid profile", claims=voluntary)
    page.goto(started["url"])
    page.wait_for_url(f"{portal.redirect_uri}**")
    assert portal.finish(site.last_visit(portal.redirect_uri), started)["claims"]["acr"] == "loa1"
    # The stricter of acr_values and the claim wins: loa1 asked by the claim, loa3 by
    # acr_values.
    started = portal.start("openid profile", acr_values="loa3", claims=essential_acr("loa1"))
    page.goto(started["url"])
    page.wait_for_url(f"{portal.redirect_uri}**")
    assert answer(site, portal)["error"] == ["unmet_authentication_requirements"]

    # A region vouching loa2: an essential acr of loa1 is answered with loa1, a value asked
    # for (§5.5.1.1), never with more than happened.
    map_region(gateway, zj, {"1": "loa2"})
    try:
        started = portal.start(
            "openid profile", region="zj", prompt="login", claims=essential_acr("loa1")
        )
        page.goto(started["url"])
        page.fill("#password", zj.password)
        page.click("#kc-login")
        page.wait_for_url(f"{portal.redirect_uri}**")
        tokens: dict[str, Any] = portal.finish(site.last_visit(portal.redirect_uri), started)
        assert tokens["claims"]["acr"] == "loa1"
        plain = portal.start("openid profile")
        page.goto(plain["url"])
        page.wait_for_url(f"{portal.redirect_uri}**")
        assert portal.finish(site.last_visit(portal.redirect_uri), plain)["claims"]["acr"] == "loa2"
    finally:
        map_region(gateway, zj, {})
