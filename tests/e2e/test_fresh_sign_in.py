"""A portal's ``prompt=login`` reaches the region: Keycloak asks for the password again, and the
ID token's ``auth_time`` is the new sign-in's, its ``amr`` only what the region said (issue 13,
"Say only what happened"). Each sign-in is said once, as it completed (issue 14)."""

from __future__ import annotations

import time

from gateway_fixtures import (
    PERSON_ID,
    KeycloakRegion,
    PortalSite,
    RunningGateway,
    register_portal,
    sign_in_at_keycloak,
)
from playwright.sync_api import Page, expect

from gateway.observe import Event, SignInCompleted


def test_prompt_login_at_portal_b_makes_keycloak_ask_for_the_password_again(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal_a = register_portal(gateway, site, "fresh-a")
    portal_b = register_portal(gateway, site, "fresh-b")
    heard: list[Event] = []
    gateway.services.events.subscribe(heard.append)

    started_a = portal_a.start("openid profile", region="zj")
    page.goto(started_a["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{portal_a.redirect_uri}**")
    first = portal_a.finish(site.last_visit(portal_a.redirect_uri), started_a)["claims"]
    # Keycloak's ID token names no authentication method (no amr mapper in the realm): the
    # gateway assumes none either (THREAT_MODEL row 3; it used to say ["pwd"]).
    assert "amr" not in first
    assert first["acr"] == "loa1"

    time.sleep(2)  # auth_time counts whole seconds: the second sign-in must be later
    started_b = portal_b.start("openid profile", region="zj", prompt="login")
    page.goto(started_b["url"])
    # Both the gateway's and Keycloak's sessions stand, yet the password form is shown.
    expect(page.locator("#password")).to_be_visible()
    # Keycloak re-authenticates the person it knows: the username is shown, not asked for.
    page.fill("#password", zj.password)
    page.click("#kc-login")
    page.wait_for_url(f"{portal_b.redirect_uri}**")
    second = portal_b.finish(site.last_visit(portal_b.redirect_uri), started_b)["claims"]
    assert second["auth_time"] > first["auth_time"]

    # Each real sign-in was said once, by the gateway that made it, naming no identity number.
    completed = [e for e in heard if isinstance(e, SignInCompleted)]
    assert [(e.portal, e.region, e.level, e.single_sign_on) for e in completed] == [
        (portal_a.client_id, "zj", "loa1", False),
        (portal_b.client_id, "zj", "loa1", False),
    ]
    assert PERSON_ID not in repr(heard)
