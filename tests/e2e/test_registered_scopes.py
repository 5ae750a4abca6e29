"""A portal gets only what it is registered for (THREAT_MODEL row 6), against the real servers:
an openid-client portal, the gateway, a Keycloak region that asserts a phone number, Chromium.

The attack: a portal registered for ``openid profile`` asks for ``openid profile phone
payments:write``. Before issue 13 the gateway stored the raw request, so the portal's tokens
carried ``phone`` and ``payments:write`` and userinfo released the phone number.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from gateway_fixtures import (
    KeycloakRegion,
    Portal,
    PortalSite,
    RunningGateway,
    register_portal,
    sign_in_at_keycloak,
)
from playwright.sync_api import Page

PHONE = "+86 138 0013 8000"


@pytest.fixture(scope="module")
def region(zj: KeycloakRegion) -> KeycloakRegion:
    """The module's zj realm, made to assert the person's phone number in its ID token."""
    admin = zj.admin
    admin.change_current_realm(zj.realm)
    client_uuid = admin.get_client_id("tongxing")
    assert client_uuid is not None
    admin.add_mapper_to_client(
        client_uuid,
        {
            "name": "phone_number",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-usermodel-attribute-mapper",
            "config": {
                "user.attribute": "phone_number",
                "claim.name": "phone_number",
                "id.token.claim": "true",
                "access.token.claim": "false",
                "userinfo.token.claim": "true",
                "jsonType.label": "String",
            },
        },
    )
    user_id = admin.get_user_id(zj.username)
    assert user_id is not None
    person = admin.get_user(user_id)  # the whole representation: a partial one clears names
    person["attributes"] = {**person.get("attributes", {}), "phone_number": [PHONE]}
    admin.update_user(user_id, person)
    return zj


def sign_in(
    page: Page, portal: Portal, region: KeycloakRegion, site: PortalSite, scope: str
) -> Any:
    started = portal.start(scope)
    page.goto(started["url"])
    if page.locator(f"input[value={region.code}]").count():
        page.check(f"input[value={region.code}]")
        page.click("button[type=submit]")
        sign_in_at_keycloak(page, region)
    page.wait_for_url(f"{portal.redirect_uri}**")
    return portal.finish(site.last_visit(portal.redirect_uri), started)


def introspect(gateway: RunningGateway, portal: Portal, token: str) -> Any:
    return requests.post(
        f"{gateway.issuer}/introspect",
        data={"token": token},
        timeout=10,
        auth=(portal.client_id, portal.client_secret),
    ).json()


def test_a_portal_asking_beyond_its_registration_gets_only_the_registered_scopes(
    gateway: RunningGateway, region: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    # Registered for the phone scope: the region's phone number does reach this portal, so the
    # refusal below is the registration's doing, not a phone number that was never there.
    entitled = register_portal(gateway, site, "entitled", scopes=["openid", "profile", "phone"])
    granted = sign_in(page, entitled, region, site, "openid profile phone")
    assert granted["scope"] == "openid profile phone"
    shown = entitled.rp("userinfo", granted["access_token"], granted["claims"]["sub"])
    assert shown["phone_number"] == PHONE

    greedy = register_portal(gateway, site, "greedy", scopes=["openid", "profile"])
    tokens = sign_in(page, greedy, region, site, "openid profile phone payments:write")
    assert tokens["scope"] == "openid profile"  # RFC 6749 §3.3: the granted scope, named
    assert "phone_number" not in tokens["claims"]
    answer = introspect(gateway, greedy, tokens["access_token"])
    assert answer["active"] is True
    assert answer["scope"] == "openid profile"
    info = greedy.rp("userinfo", tokens["access_token"], tokens["claims"]["sub"])
    assert "phone_number" not in info
    assert info["name"] == "三 张"

    refreshed = greedy.rp("refresh", tokens["refresh_token"])
    assert refreshed["scope"] == "openid profile"
    assert introspect(gateway, greedy, refreshed["access_token"])["scope"] == "openid profile"


def test_a_portal_left_without_openid_gets_invalid_scope_at_its_redirect_uri(
    gateway: RunningGateway, region: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "no-openid", scopes=["openid", "profile"])
    started = portal.start("profile phone")
    page.goto(started["url"])
    page.wait_for_url(f"{portal.redirect_uri}**")
    answered = site.last_visit(portal.redirect_uri)
    assert "error=invalid_scope" in answered
    assert f"state={started['pending']['state']}" in answered
    assert "code=" not in answered
