"""What the second-factor end-to-end tests share: a region's acr mapping, and binding a factor
on the account page from a region sign-in that vouched loa2 (NIST SP 800-63B §6.1.2.1)."""

from __future__ import annotations

import time

import pyotp
from gateway_fixtures import (
    KeycloakRegion,
    PortalSite,
    RunningGateway,
    register_portal,
    sign_in_at_keycloak,
)
from playwright.sync_api import Page, Response


def map_region(gateway: RunningGateway, region: KeycloakRegion, mapping: dict[str, str]) -> None:
    """Register ``region`` again with ``acr_mapping`` (Keycloak's acr "1" is a password
    sign-in in this request; mapping it to loa2 plays a region that vouches loa2)."""
    current = gateway.admin("GET", f"/regions/{region.code}").json()
    region.admin.change_current_realm(region.realm)
    client = region.admin.get_client_id("tongxing")
    assert client is not None
    secret = region.admin.get_client_secrets(client)["value"]
    body = {
        "names": current["names"],
        "kind": current["kind"],
        "issuer": current["issuer"],
        "client_id": current["client_id"],
        "client_secret": secret,
        "acr_mapping": mapping,
    }
    answer = gateway.admin("PUT", f"/regions/{region.code}", body)
    assert answer.status_code == 200, answer.text


def bind_factor_at_loa2(
    gateway: RunningGateway, region: KeycloakRegion, site: PortalSite, page: Page, name: str
) -> tuple[str, list[Response]]:
    """Sign in where the region vouches loa2, bind a TOTP on the account page, and restore the
    region's mapping; return the secret and the responses of the enrolment and recovery pages."""
    map_region(gateway, region, {"1": "loa2"})
    try:
        portal = register_portal(gateway, site, name)
        started = portal.start("openid profile", region=region.code)
        page.goto(started["url"])
        sign_in_at_keycloak(page, region)
        page.wait_for_url(f"{portal.redirect_uri}**")
        claims = portal.finish(site.last_visit(portal.redirect_uri), started)["claims"]
        assert claims["acr"] == "loa2"
        page.goto(f"{gateway.issuer}/consents")
        with page.expect_response(lambda r: r.url.endswith("/second-factor/enrol")) as enrol:
            page.click("#enrol-factor")
        secret = page.locator("#secret").inner_text().replace(" ", "")
        page.fill("input[name=code]", pyotp.TOTP(secret).now())
        with page.expect_response(lambda r: r.url.endswith("/second-factor/confirm")) as shown:
            page.click("button[type=submit]")
        assert len(page.locator("#recovery-codes li").all_inner_texts()) == 10
        page.click("button[type=submit]")
        page.wait_for_url(f"{gateway.issuer}/consents**")
        assert page.locator("#factor-bound").count() == 1
    finally:
        map_region(gateway, region, {})
    return secret, [enrol.value, shown.value]


def next_code(secret: str) -> str:
    """The code of the next time step: accepted now (one step either side, RFC 6238 §5.2), and
    later than the step the enrolment spent, so it is not a replay."""
    totp = pyotp.TOTP(secret)
    return totp.at(int(time.time()) + totp.interval)
