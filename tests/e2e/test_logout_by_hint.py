"""A logout with an ``id_token_hint`` and no browser session: what a portal's server sends (a
Keycloak broker in its "back-channel" logout mode), with Keycloak as the region and Chromium.

The hint's ``aud`` and ``sid`` name the session it was issued in (RP-Initiated Logout 1.0 §2):
a live one is ended, its portals told (Back-Channel Logout 1.0 §2.5, with ``sid`` or not as each
registered, §2.2) and its region session ended from the server; a hint that names nothing live
ends nothing, and the answer says so. THREAT_MODEL row 5, the attacker: an old ID token (from a
stolen laptop's history) does not end the person's current session.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from gateway_fixtures import (
    KeycloakRegion,
    Portal,
    PortalSite,
    RpError,
    RunningGateway,
    register_portal,
    sign_in_at_keycloak,
)
from playwright.sync_api import Page, expect

from gateway.sessions import SESSION_COOKIE
from gateway.store.contract import SsoSession

SIGNED_OUT = "您已退出登录"
NOTHING = "没有需要退出的登录"


def sign_in(page: Page, portal: Portal, region: KeycloakRegion, site: PortalSite) -> Any:
    """A sign-in at ``portal``: through ``region``'s login page, or the SSO session."""
    started = portal.start("openid profile", region=region.code)
    page.goto(started["url"])
    if "/realms/" in page.url:  # the region's login page, not the SSO session's answer
        sign_in_at_keycloak(page, region)
    page.wait_for_url(f"{portal.redirect_uri}**")
    return portal.finish(site.last_visit(portal.redirect_uri), started)


def browser_session(gateway: RunningGateway, page: Page) -> SsoSession | None:
    """The live gateway session of this browser, if any."""
    cookies = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    if not cookies:
        return None
    return gateway.services.sessions.find(cookies[0]["value"], datetime.now(UTC))


def keycloak_sessions(region: KeycloakRegion) -> set[str]:
    region.admin.change_current_realm(region.realm)
    user_id = region.admin.get_user_id(region.username)
    assert user_id is not None
    return {session["id"] for session in region.admin.get_sessions(user_id)}


def from_server(gateway: RunningGateway, **params: str) -> requests.Response:
    """The end-session request as a portal's server sends it: no cookie, no redirect followed."""
    return requests.get(
        f"{gateway.issuer}/logout", params=params, allow_redirects=False, timeout=30
    )


def claims(gateway: RunningGateway, token: str) -> dict[str, Any]:
    """A logout token's claims, its signature and type checked (Back-Channel Logout 1.0 §2.4)."""
    return gateway.services.keys.verify(token, typ="logout+jwt")


def test_a_hint_from_a_server_ends_the_session_it_names_and_tells_every_portal(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    # Portal A registered that it does not need sid (as a Keycloak broker must); B did not say.
    portal_a = register_portal(gateway, site, "hint-a", backchannel_logout_session_required=False)
    portal_b = register_portal(gateway, site, "hint-b")
    tokens_a = sign_in(page, portal_a, zj, site)
    tokens_b = sign_in(page, portal_b, zj, site)
    assert tokens_a["claims"]["sid"]  # the gateway's ID tokens carry the portal's sid
    session = browser_session(gateway, page)
    assert session is not None
    at_region = keycloak_sessions(zj)
    assert at_region

    answer = from_server(gateway, id_token_hint=tokens_a["id_token"], state="kc-state")
    assert answer.status_code == 200
    assert SIGNED_OUT in answer.text
    assert browser_session(gateway, page) is None
    # Every portal of the session was told: A by sub alone, B by sub and its sid.
    [to_a] = site.logout_tokens[portal_a.client_id]
    [to_b] = site.logout_tokens[portal_b.client_id]
    assert claims(gateway, to_a)["sub"] == tokens_a["claims"]["sub"]
    assert "sid" not in claims(gateway, to_a)
    assert claims(gateway, to_b)["sid"] == tokens_b["claims"]["sid"]
    assert claims(gateway, to_b)["sub"] == tokens_b["claims"]["sub"]
    # The session's tokens are revoked, and the region's session ended from the server.
    with pytest.raises(RpError):
        portal_a.rp("userinfo", tokens_a["access_token"], tokens_a["claims"]["sub"])
    assert not keycloak_sessions(zj) & at_region

    # The same request again ends nothing, and says so; nobody is told twice.
    again = from_server(gateway, id_token_hint=tokens_a["id_token"])
    assert again.status_code == 200
    assert NOTHING in again.text
    assert SIGNED_OUT not in again.text
    assert len(site.logout_tokens[portal_a.client_id]) == 1
    assert len(site.logout_tokens[portal_b.client_id]) == 1

    # Nothing signed in, no hint: the same truthful page, not "signed out".
    nothing = from_server(gateway)
    assert nothing.status_code == 200
    assert NOTHING in nothing.text


def test_an_old_id_token_does_not_end_the_persons_current_session(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    """THREAT_MODEL row 5: the ID token of an earlier session (left in a stolen laptop's
    history) names that session only; the person's current session is not its to end."""
    portal = register_portal(gateway, site, "hint-old")
    old = sign_in(page, portal, zj, site)
    assert from_server(gateway, id_token_hint=old["id_token"]).status_code == 200
    assert browser_session(gateway, page) is None

    current = sign_in(page, portal, zj, site)  # the person signs in again: a new session
    live = browser_session(gateway, page)
    assert live is not None
    assert current["claims"]["sid"] != old["claims"]["sid"]

    # From anywhere without the cookie: nothing ended, and said so.
    replayed = from_server(gateway, id_token_hint=old["id_token"], client_id=portal.client_id)
    assert replayed.status_code == 200
    assert NOTHING in replayed.text
    assert browser_session(gateway, page) == live
    # In the person's own browser: the old token is no proof (it names another session), so
    # the person is asked; nothing ends unless they confirm.
    page.goto(f"{gateway.issuer}/logout?id_token_hint={old['id_token']}")
    expect(page.locator("form button[type=submit]")).to_be_visible()
    assert browser_session(gateway, page) == live
    # A logout token the portal received (same key, same sid) is no hint at all.
    logout_token = site.logout_tokens[portal.client_id][0]
    refused = from_server(gateway, id_token_hint=logout_token)
    assert refused.status_code == 400
    assert browser_session(gateway, page) == live

    # The current token, from the portal's server, ends the current session.
    ended = from_server(gateway, id_token_hint=current["id_token"])
    assert SIGNED_OUT in ended.text
    assert browser_session(gateway, page) is None
