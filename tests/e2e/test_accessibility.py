"""Every page of the gateway passes axe-core (WCAG 2.2 A/AA rules) in Chromium with no serious or
critical violation, reached as a person reaches it: the chooser, the consent page, the account
page, the second-factor pages, the error page, the logout confirmation, the region logout form
and the signed-out page. axe-core is the npm package pinned in ``tests/peers``.

The pages forbid scripts of other origins (Content-Security-Policy); the browser context here
bypasses the policy so that axe can be injected, and nothing else is changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pyotp
import pytest
from gateway_fixtures import (
    KeycloakRegion,
    PortalSite,
    RunningGateway,
    register_portal,
    sign_in_at_keycloak,
)
from playwright.sync_api import Browser, Page
from second_factor_fixtures import map_region
from tongxing_dev.peers import PEERS

AXE = PEERS / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


@pytest.fixture
def page(browser: Browser, node_peers: Any) -> Iterator[Page]:
    context = browser.new_context(locale="zh-CN", bypass_csp=True)
    yield context.new_page()
    context.close()


def blocking_violations(page: Page) -> list[str]:
    """axe.run() on the page as shown; the serious and critical violations, one line each."""
    page.add_script_tag(path=str(AXE))
    violations: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']]}"
        for v in violations
        if v["impact"] in BLOCKING
    ]


def assert_accessible(page: Page) -> None:
    assert blocking_violations(page) == [], page.url


def test_axe_finds_what_it_should_on_a_broken_page(page: Page, gateway: RunningGateway) -> None:
    """The check can fail: an unlabelled field and an image with no text are critical."""
    page.goto(f"{gateway.issuer}/.well-known/openid-configuration")
    page.set_content('<html><body><img src="x.png"><input name="q"></body></html>')
    found = blocking_violations(page)
    assert any(line.startswith("image-alt") for line in found), found
    assert any(line.startswith("label") for line in found), found


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_the_chooser_passes_axe(
    browser: Browser,
    node_peers: Any,
    gateway: RunningGateway,
    zj: KeycloakRegion,
    site: PortalSite,
    locale: str,
) -> None:
    context = browser.new_context(locale=locale, bypass_csp=True)
    page = context.new_page()
    try:
        portal = register_portal(gateway, site, "a11y-chooser")
        page.goto(portal.start()["url"])
        page.wait_for_selector("input[name=region]")
        assert page.locator("html").get_attribute("lang") == locale.split("-US")[0]
        assert_accessible(page)
        page.fill("#region-search", "no such region")
        page.click("#search-button")
        page.wait_for_selector("#no-match")
        assert_accessible(page)
    finally:
        context.close()


def test_the_error_page_passes_axe(page: Page, gateway: RunningGateway) -> None:
    page.goto(f"{gateway.issuer}/authorize?client_id=nobody&response_type=code")
    assert page.locator(".error[role=alert]").count() == 1
    assert_accessible(page)


def test_the_consent_and_account_pages_pass_axe(
    page: Page, gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite
) -> None:
    portal = register_portal(gateway, site, "a11y-consent", consent_claims=["name"])
    page.goto(portal.start("openid profile", region="zj")["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_selector("button[value=allow]")
    assert_accessible(page)
    page.click("button[value=allow]")
    page.wait_for_url(f"{portal.redirect_uri}**")
    page.goto(f"{gateway.issuer}/consents")
    page.wait_for_selector("#recent-sign-ins")
    assert_accessible(page)


def test_the_second_factor_pages_pass_axe(
    page: Page, gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite
) -> None:
    """The unbound page (password only), then enrolment, recovery codes and verification."""
    strict = register_portal(gateway, site, "a11y-strict", minimum_level="loa2")
    page.goto(strict.start("openid profile", region="zj")["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{gateway.issuer}/mfa")
    assert page.locator("#unbound").count() == 1
    assert_accessible(page)

    page.context.clear_cookies()
    map_region(gateway, zj, {"1": "loa2"})
    try:
        portal = register_portal(gateway, site, "a11y-enrol")
        page.goto(portal.start("openid profile", region="zj")["url"])
        sign_in_at_keycloak(page, zj)
        page.wait_for_url(f"{portal.redirect_uri}**")
        page.goto(f"{gateway.issuer}/consents")
        page.click("#enrol-factor")
        page.wait_for_selector("#secret")
        assert_accessible(page)
        secret = page.locator("#secret").inner_text().replace(" ", "")
        page.fill("input[name=code]", pyotp.TOTP(secret).now())
        page.click("button[type=submit]")
        page.wait_for_selector("#recovery-codes")
        assert_accessible(page)
    finally:
        map_region(gateway, zj, {})

    page.context.clear_cookies()
    page.goto(strict.start("openid profile", region="zj")["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{gateway.issuer}/mfa")
    page.wait_for_selector("input[name=recovery_code]")
    assert_accessible(page)


def test_the_logout_pages_pass_axe(
    page: Page, gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite
) -> None:
    """The confirmation, the region logout form (held before it leaves), the signed-out page."""
    portal = register_portal(gateway, site, "a11y-logout")
    page.goto(portal.start("openid profile", region="zj")["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{portal.redirect_uri}**")
    page.goto(f"{gateway.issuer}/logout?{urlencode({'client_id': portal.client_id})}")
    page.wait_for_selector("form button[type=submit]")
    assert_accessible(page)
    # The region logout form sends itself with a script: hold it at the gateway's page (a 204
    # answer to a navigation leaves the page as it is).
    page.route("**/protocol/openid-connect/logout**", lambda route: route.fulfill(status=204))
    page.click("button[type=submit]")
    page.wait_for_selector("#region-logout", state="attached")
    assert_accessible(page)
    page.unroute("**/protocol/openid-connect/logout**")
    page.goto(f"{gateway.issuer}/logout")  # no session any more: signed out
    page.wait_for_selector("h1")
    assert_accessible(page)
