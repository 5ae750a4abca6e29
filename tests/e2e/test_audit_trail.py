"""A real sign-in and logout leave audit records, and the citizen sees the sign-in on their
account page (issue 14, "the audit trail"; GB/T 22239-2019 §8.1.4; THREAT_MODEL row 9).

Keycloak is the region, Chromium the citizen's browser, openid-client the portal. With
``TONGXING_ACCOUNT_PAGE_SCREENSHOT=<path.png>`` the account page is also saved as a picture (the
README's ``docs/account-page.png`` is made this way).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from gateway_fixtures import (
    PERSON_ID,
    KeycloakRegion,
    Portal,
    PortalSite,
    RunningGateway,
    register_portal,
    sign_in_at_keycloak,
)
from playwright.sync_api import Page, expect

from gateway.audit import AUDITED_KINDS

SCREENSHOT = "TONGXING_ACCOUNT_PAGE_SCREENSHOT"


def _sign_in(page: Page, portal: Portal, region: KeycloakRegion, site: PortalSite) -> Any:
    started = portal.start("openid profile", region=region.code)
    page.goto(started["url"])
    sign_in_at_keycloak(page, region)
    page.wait_for_url(f"{portal.redirect_uri}**")
    return portal.finish(site.last_visit(portal.redirect_uri), started)


def test_a_sign_in_and_a_logout_leave_records_and_the_account_page_shows_the_sign_in(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    store = gateway.services.store
    already = store.audit_anchor().head_sequence
    portal = register_portal(gateway, site, "audit")
    tokens = _sign_in(page, portal, zj, site)

    records = store.list_audit(after_sequence=already)
    [signin] = [r for r in records if r.entry.kind == "signin.completed"]
    subject = signin.entry.subject
    assert subject is not None
    assert (signin.entry.portal, signin.entry.region, signin.entry.outcome) == (
        portal.client_id,
        "zj",
        "success",
    )
    assert signin.entry.level == tokens["claims"]["acr"]

    # The account page: the sign-in (portal, region, time, level) and the linked region.
    page.goto(f"{gateway.issuer}/consents")
    row = page.locator(f"#recent-sign-ins tr[data-client='{portal.client_id}']")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("门户audit")
    expect(row).to_contain_text("浙江")
    expect(row).to_contain_text(signin.entry.occurred_at.strftime("%Y-%m-%d %H:%M"))
    expect(row).to_contain_text(signin.entry.level or "")
    expect(page.locator("#linked-regions li[data-region='zj']")).to_contain_text("浙江")
    if os.environ.get(SCREENSHOT):
        Path(os.environ[SCREENSHOT]).parent.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 900, "height": 700})
        page.screenshot(path=os.environ[SCREENSHOT], full_page=True)

    # RP-initiated logout at the gateway.
    bye = f"{portal.redirect_uri.removesuffix('/callback')}/bye"
    query = {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": bye}
    page.goto(f"{gateway.issuer}/logout?{urlencode(query)}")
    page.wait_for_url(f"{bye}**")

    records = store.list_audit(after_sequence=already)
    [logout] = [r for r in records if r.entry.kind == "logout"]
    assert (logout.entry.subject, logout.entry.region) == (subject, "zj")
    assert {r.entry.kind for r in records} <= AUDITED_KINDS
    # No identity number, token or secret in any record (THREAT_MODEL row 8).
    exported = "".join(str(r.as_json()) for r in records)
    for secret in (PERSON_ID, tokens["id_token"], tokens["access_token"], portal.client_secret):
        assert secret not in exported
    assert store.verify_audit().intact
