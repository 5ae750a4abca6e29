"""A password alone never earns a second factor (THREAT_MODEL row 4), the help desk resets a
factor, and pages that show a secret are never cached (issue 13).

Real Keycloak (the region), Chromium, openid-client portals, and a gateway whose records are in
PostgreSQL. The rule is NIST SP 800-63B §6.1.2.1; see docs/security/second-factor.md.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import requests
from gateway_fixtures import (
    KeycloakRegion,
    PortalSite,
    RunningGateway,
    register_portal,
    sign_in_at_keycloak,
    start_gateway,
)
from playwright.sync_api import Page
from second_factor_fixtures import bind_factor_at_loa2, next_code
from sqlalchemy import text
from tongxing_dev.postgres import PostgresEndpoint


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresEndpoint
) -> Iterator[RunningGateway]:
    url = postgres.create_database(f"second_factor_{secrets.token_hex(4)}")
    yield from start_gateway(tmp_path_factory.mktemp("gateway"), database_url=url)


def _subject(gateway: RunningGateway) -> str:
    """The national subject of the only person who signed in to this module's gateway."""
    store = gateway.services.store
    subject = store.find_subject("zj", _upstream_sub(gateway))
    assert subject is not None
    return subject.id


def _upstream_sub(gateway: RunningGateway) -> str:
    engine = gateway.services.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT upstream_sub FROM subject_links")).scalars().all()
    assert len(rows) == 1
    return str(rows[0])


def test_a_password_only_session_cannot_bind_a_factor_and_gets_no_loa2(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    """The attacker holds the citizen's phished regional password and nothing else."""
    portal = register_portal(gateway, site, "tax-lite", minimum_level="loa2")
    started = portal.start("openid profile", region="zj")
    page.goto(started["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{gateway.issuer}/mfa")
    # No key, no QR code: a page that says how a factor is bound instead.
    assert page.locator("#unbound").count() == 1
    assert page.locator("#secret").count() == 0
    assert page.locator("img").count() == 0
    # The step-up's old enrolment form is gone, whatever is posted to it.
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    posted = requests.post(
        f"{gateway.issuer}/mfa/enrol", data={"code": "123456"}, cookies=cookies, timeout=10
    )
    assert posted.status_code in (404, 405)
    # The account page refuses to bind for this session, too.
    page.goto(f"{gateway.issuer}/consents")
    assert page.locator("#factor-none").count() == 1
    with page.expect_response(lambda r: r.url.endswith("/second-factor/enrol")) as refused:
        page.click("#enrol-factor")
    assert refused.value.status == 403
    assert "stronger_sign_in_needed" in page.content()
    assert page.locator("#secret").count() == 0
    subject = _subject(gateway)
    assert gateway.services.store.get_totp_credential(subject) is None
    # Back at the step-up, the portal hears unmet_authentication_requirements, and no code.
    again = portal.start("openid profile", region="zj")
    page.goto(again["url"])
    page.wait_for_url(f"{gateway.issuer}/mfa")
    page.click("#back-to-portal")
    page.wait_for_url(f"{portal.redirect_uri}**")
    visit = site.last_visit(portal.redirect_uri)
    assert "error=unmet_authentication_requirements" in visit
    assert "code=" not in visit
    assert f"state={again['pending']['state']}" in visit


def test_binding_needs_loa2_at_the_region_never_raises_the_session_and_pages_are_not_cached(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    secret, responses = bind_factor_at_loa2(gateway, zj, site, page, "account")
    for shown in responses:  # the key and QR code, then the recovery codes
        assert shown.status == 200
        assert shown.headers["cache-control"] == "no-store"
        assert shown.headers["pragma"] == "no-cache"
    # The account page says when it was bound.
    assert page.locator("#factor-bound time").count() >= 1

    # Binding raised nothing: the binding session's amr has no otp (the region vouched loa2).
    portal = register_portal(gateway, site, "after-binding", minimum_level="loa2")
    started = portal.start("openid", region="zj")
    page.goto(started["url"])
    page.wait_for_url(f"{portal.redirect_uri}**")
    claims = portal.finish(site.last_visit(portal.redirect_uri), started)["claims"]
    assert "otp" not in claims.get("amr", [])

    # The next (password) sign-in with the code is raised; the verify page is not cached.
    page.context.clear_cookies()
    started = portal.start("openid", region="zj")
    page.goto(started["url"])
    with page.expect_response(lambda r: r.url.endswith("/mfa")) as form:
        sign_in_at_keycloak(page, zj)
    assert form.value.headers["cache-control"] == "no-store"
    page.fill("input[name=code]", next_code(secret))
    page.click("button[type=submit]")
    page.wait_for_url(f"{portal.redirect_uri}**")
    claims = portal.finish(site.last_visit(portal.redirect_uri), started)["claims"]
    assert (claims["acr"], "otp" in claims["amr"]) == ("loa2", True)

    # A stepped-up session is not a region sign-in at loa2: it cannot replace the factor.
    page.goto(f"{gateway.issuer}/consents")
    with page.expect_response(lambda r: r.url.endswith("/second-factor/enrol")) as refused:
        page.click("#replace-factor")
    assert refused.value.status == 403
    assert gateway.services.totp.status(_subject(gateway)).enrolled


def test_the_help_desk_resets_a_factor_and_the_next_step_up_cannot_use_it(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    subject = _subject(gateway)
    if not gateway.services.totp.status(subject).enrolled:
        bind_factor_at_loa2(gateway, zj, site, page, "account-2")
        page.context.clear_cookies()
    no_reason = gateway.admin("DELETE", f"/subjects/{subject}/second-factor", {})
    assert no_reason.status_code == 400
    unknown = gateway.admin("DELETE", "/subjects/nobody/second-factor", {"reason": "HD-1"})
    assert unknown.status_code == 404
    reader = gateway.admin_as(
        gateway.operator_token, "DELETE", f"/subjects/{subject}/second-factor", {"reason": "x"}
    )
    assert reader.status_code == 403
    assert gateway.services.totp.status(subject).enrolled
    # A live session of the person (say, one the factor raised to loa2) before the reset.
    plain = register_portal(gateway, site, "before-reset")
    started = plain.start("openid", region="zj")
    page.goto(started["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{plain.redirect_uri}**")
    store, now = gateway.services.store, gateway.services.clock()
    assert store.find_subject_sessions(subject, now)
    done = gateway.admin(
        "DELETE", f"/subjects/{subject}/second-factor", {"reason": "HD-4711 phone lost"}
    )
    assert done.status_code == 204
    assert gateway.services.store.get_totp_credential(subject) is None
    # No session the factor could have raised outlives it (THREAT_MODEL row 4).
    assert store.find_subject_sessions(subject, gateway.services.clock()) == []
    page.context.clear_cookies()

    portal = register_portal(gateway, site, "after-reset", minimum_level="loa2")
    started = portal.start("openid", region="zj")
    page.goto(started["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{gateway.issuer}/mfa")
    assert page.locator("#unbound").count() == 1
