"""A logout at the gateway ends the citizen's session at the region too (issue 13, "Logout means
logout, both ways"; THREAT_MODEL row 5), through the region's ``end_session_endpoint``
(RP-Initiated Logout 1.0 §2) and back through the gateway (§3), with Keycloak and Chromium.

The way back is guarded: a forged, replayed, expired or another region's ``state`` at
``/logout/return/<region>`` gets an error page and no redirect. The region's ID token the logout
needs is kept sealed in the session row (THREAT_MODEL row 8).
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
import requests
import sqlalchemy
from gateway_fixtures import (
    PERSON_ID,
    KeycloakRegion,
    Portal,
    PortalSite,
    RunningGateway,
    register_portal,
    sign_in_at_keycloak,
)
from playwright.sync_api import Page, Request, expect
from tongxing_dev.process import free_port

from gateway.provider.region_logout import MAX_PORTAL_STATE_BYTES, Onward, region_logout_request
from gateway.sessions import SEALED_REGION_ID_TOKEN, SESSION_COOKIE, open_region_id_token
from gateway.store.contract import SsoSession, token_hash

END_SESSION = "/protocol/openid-connect/logout"


def sign_in(page: Page, portal: Portal, region: KeycloakRegion, site: PortalSite) -> Any:
    """A sign-in at ``portal`` through ``region``'s login page (the portal names the region)."""
    started = portal.start("openid profile", region=region.code)
    page.goto(started["url"])
    sign_in_at_keycloak(page, region)
    page.wait_for_url(f"{portal.redirect_uri}**")
    return portal.finish(site.last_visit(portal.redirect_uri), started)


def logout_at_gateway(page: Page, gateway: RunningGateway, portal: Portal, tokens: Any) -> str:
    """RP-initiated logout at the gateway with the portal's ID token and registered
    ``post_logout_redirect_uri``; returns where the portal expects the browser."""
    bye = f"{portal.redirect_uri.removesuffix('/callback')}/bye"
    query = {
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": bye,
        "state": "bye-123",
    }
    page.goto(f"{gateway.issuer}/logout?{urlencode(query)}")
    return bye


def region_sid(gateway: RunningGateway, page: Page) -> str:
    """The Keycloak session of this browser's gateway session (the ``sid`` of the region's ID
    token the gateway kept)."""
    [cookie] = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    session = gateway.services.sessions.find(cookie["value"], datetime.now(UTC))
    assert session is not None
    id_token = open_region_id_token(gateway.services.sealer, session)
    assert id_token is not None
    payload = id_token.split(".")[1]
    sid: str = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]
    return sid


def zj_issuer(gateway: RunningGateway) -> str:
    region = gateway.services.registry.region("zj")
    assert region is not None
    return region.issuer


def keycloak_sessions(region: KeycloakRegion) -> set[str]:
    """The ids of the person's live sessions at Keycloak."""
    region.admin.change_current_realm(region.realm)
    user_id = region.admin.get_user_id(region.username)
    assert user_id is not None
    return {session["id"] for session in region.admin.get_sessions(user_id)}


def test_logout_at_portal_a_ends_the_region_session_so_the_next_sign_in_meets_the_password_form(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal_a = register_portal(gateway, site, "region-logout-a")
    portal_b = register_portal(gateway, site, "region-logout-b")
    tokens = sign_in(page, portal_a, zj, site)
    sid = region_sid(gateway, page)
    assert sid in keycloak_sessions(zj)

    at_region: list[Request] = []
    page.on(
        "request",
        lambda request: at_region.append(request) if END_SESSION in request.url else None,
    )
    bye = logout_at_gateway(page, gateway, portal_a, tokens)
    page.wait_for_url(f"{bye}**")
    assert site.last_visit(bye) == f"{bye}?state=bye-123"

    # The region was asked by form POST, the region's ID token in the body, not in a URL.
    [logout] = at_region
    assert logout.method == "POST"
    assert "id_token_hint" not in logout.url
    form = parse_qs(logout.post_data or "")
    assert form["client_id"] == ["tongxing"]
    assert form["post_logout_redirect_uri"] == [f"{gateway.issuer}/logout/return/zj"]
    assert form["id_token_hint"][0].count(".") == 2
    assert sid not in keycloak_sessions(zj)

    # The next person at this browser, through portal B and the same region, meets the
    # password form: Keycloak's SSO cookie no longer answers.
    started = portal_b.start("openid profile", region="zj")
    page.goto(started["url"])
    expect(page.locator("#username")).to_be_visible()
    expect(page.locator("#password")).to_be_visible()
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{portal_b.redirect_uri}**")
    assert portal_b.finish(site.last_visit(portal_b.redirect_uri), started)["claims"]["sub"]

    # The way back is single use: the state the region returned is refused a second time.
    [state] = form["state"]
    replayed = requests.get(
        f"{gateway.issuer}/logout/return/zj",
        params={"state": state},
        allow_redirects=False,
        timeout=10,
    )
    assert replayed.status_code == 400
    assert "Location" not in replayed.headers
    assert "退出登录的返回链接无效" in replayed.text


def test_a_logout_confirmed_on_the_gateways_page_also_ends_the_region_session(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "region-logout-confirm")
    sign_in(page, portal, zj, site)
    sid = region_sid(gateway, page)
    assert sid in keycloak_sessions(zj)

    page.goto(f"{gateway.issuer}/logout")  # no id_token_hint: the person confirms
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("您已退出登录")
    assert page.url.startswith(f"{gateway.issuer}/logout/return/zj?")
    assert sid not in keycloak_sessions(zj)


def test_the_region_id_token_is_kept_sealed_in_the_session_row(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "region-logout-sealed")
    sign_in(page, portal, zj, site)
    [cookie] = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    session_hash = token_hash(cookie["value"])

    engine = sqlalchemy.create_engine(gateway.services.settings.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sqlalchemy.text("SELECT subject, claims FROM sso_sessions WHERE session_hash = :h"),
                {"h": session_hash},
            ).one()
    finally:
        engine.dispose()
    text = row.claims if isinstance(row.claims, str) else json.dumps(row.claims)
    claims = json.loads(text)
    assert SEALED_REGION_ID_TOKEN in claims

    session = gateway.services.sessions.find(cookie["value"], datetime.now(UTC))
    assert session is not None
    id_token = open_region_id_token(gateway.services.sealer, session)
    assert id_token is not None
    _, payload, signature = id_token.split(".")
    opened = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert opened["iss"].endswith(f"/realms/{zj.realm}")
    assert opened["id_number"] == PERSON_ID  # why it must never be in clear
    for secret in (id_token, payload, signature, PERSON_ID):
        assert secret not in text

    # Bound to its subject: moved to another subject's session, it does not open.
    moved = replace(session, subject="someone-else")
    assert open_region_id_token(gateway.services.sealer, moved) is None


# --- the way back, played by an attacker ---------------------------------------------------------


def a_session(region: str, now: datetime) -> SsoSession:
    return SsoSession(
        session_hash="h" * 64,
        subject="s-1",
        region=region,
        auth_time=now,
        acr="loa1",
        amr=("pwd",),
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )


def a_state(
    gateway: RunningGateway, portal: Portal, *, sealed_at: datetime | None = None
) -> tuple[str, str]:
    """A state the gateway seals for a logout at zj, and the portal's target it carries."""
    now = sealed_at or datetime.now(UTC)
    session = a_session("zj", now)
    target = f"{portal.redirect_uri.removesuffix('/callback')}/bye"
    request = region_logout_request(
        gateway.services, session, Onward(portal.client_id, target, "st-9"), now
    )
    assert request is not None
    assert "id_token_hint" not in request.params  # no kept region ID token: client_id alone
    return request.params["state"], target


def back(gateway: RunningGateway, region: str, state: str) -> requests.Response:
    return requests.get(
        f"{gateway.issuer}/logout/return/{region}",
        params={"state": state},
        allow_redirects=False,
        timeout=10,
    )


def refused(response: requests.Response) -> bool:
    return (
        response.status_code == 400
        and "Location" not in response.headers
        and "退出登录的返回链接无效" in response.text
    )


def test_the_way_back_redirects_once_to_the_registered_target_with_the_portals_state(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite
) -> None:
    portal = register_portal(gateway, site, "return-once")
    state, target = a_state(gateway, portal)
    first = back(gateway, "zj", state)
    assert first.status_code == 303
    assert first.headers["Location"] == f"{target}?state=st-9"
    assert refused(back(gateway, "zj", state))


@pytest.mark.parametrize(
    "forged",
    [
        "",
        "x",
        "not base64 !",
        base64.urlsafe_b64encode(b"\x01" + b"k" * 8 + b"n" * 12 + b"c" * 40).decode(),
        "A" * 9000,
    ],
)
def test_a_forged_state_is_refused_with_a_page_and_no_redirect(
    gateway: RunningGateway, zj: KeycloakRegion, forged: str
) -> None:
    assert refused(back(gateway, "zj", forged))


def test_an_altered_state_is_refused(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite
) -> None:
    state, _ = a_state(gateway, register_portal(gateway, site, "return-altered"))
    flipped = state[:20] + ("A" if state[20] != "A" else "B") + state[21:]
    assert refused(back(gateway, "zj", flipped))


def test_another_regions_state_is_refused_at_this_regions_return(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite
) -> None:
    state, _ = a_state(gateway, register_portal(gateway, site, "return-foreign"))
    assert refused(back(gateway, "sh", state))
    assert back(gateway, "zj", state).status_code == 303  # not spent by the foreign attempt


def test_an_expired_state_is_refused(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite
) -> None:
    old = datetime.now(UTC) - timedelta(minutes=11)
    state, _ = a_state(gateway, register_portal(gateway, site, "return-expired"), sealed_at=old)
    assert refused(back(gateway, "zj", state))


def test_a_target_no_longer_registered_gets_the_signed_out_page_not_a_redirect(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite
) -> None:
    kept = register_portal(gateway, site, "return-unregistered")
    state_kept, target = a_state(gateway, kept)
    # The portal stays, but its registration no longer lists the target.
    registration = gateway.admin("GET", f"/portals/{kept.client_id}").json()
    body = {k: registration[k] for k in ("names", "owner", "redirect_uris", "scopes")}
    body["post_logout_redirect_uris"] = [f"{target}-elsewhere"]
    assert gateway.admin("PUT", f"/portals/{kept.client_id}", body).status_code in (200, 201)
    gone = register_portal(gateway, site, "return-removed")
    state_gone, _ = a_state(gateway, gone)
    assert gateway.admin("DELETE", f"/portals/{gone.client_id}").status_code == 204
    for state in (state_kept, state_gone):
        answer = back(gateway, "zj", state)
        assert answer.status_code == 200
        assert "Location" not in answer.headers
        assert "您已退出登录" in answer.text


def test_the_logout_request_page_keeps_the_token_out_of_caches_and_runs_only_its_own_script(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "region-logout-page")
    tokens = sign_in(page, portal, zj, site)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    query = {"id_token_hint": tokens["id_token"]}
    answer = requests.get(
        f"{gateway.issuer}/logout?{urlencode(query)}",
        cookies={SESSION_COOKIE: cookies[SESSION_COOKIE]},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'sha256-" in policy
    assert "unsafe-inline" not in policy
    assert 'name="id_token_hint"' in answer.text
    assert f'action="{zj_issuer(gateway)}{END_SESSION}"' in answer.text


def test_a_region_that_cannot_be_asked_leaves_the_logout_as_it_was(
    gateway: RunningGateway, zj: KeycloakRegion
) -> None:
    """No Logout Request at a region the gateway no longer knows, or whose discovery cannot be
    had: the gateway session is over, and the portal is answered as before."""
    response = gateway.admin(
        "PUT",
        "/regions/xq",
        {
            "names": {"zh": "新疆", "en": "Xinjiang"},
            "kind": "province",
            "issuer": f"http://127.0.0.1:{free_port()}",  # nothing listens there
            "client_id": "tongxing",
            "client_secret": "x" * 32,
        },
    )
    assert response.status_code == 201, response.text
    now = datetime.now(UTC)
    for region in ("xq", "gone"):
        assert (
            region_logout_request(gateway.services, a_session(region, now), Onward(), now) is None
        )
    assert region_logout_request(gateway.services, a_session("zj", now), Onward(), now) is not None


def test_a_longest_portal_state_fits_the_way_back_and_a_longer_one_is_refused_up_front(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite
) -> None:
    """The state comes back in a URL, which WSGI servers bound near 4 KB (gunicorn: 4094)."""
    portal = register_portal(gateway, site, "return-long")
    now = datetime.now(UTC)
    target = f"{portal.redirect_uri.removesuffix('/callback')}/bye"
    longest = "状" * 340 + "s&=\x01"  # 1024 bytes of UTF-8
    assert len(longest.encode()) == MAX_PORTAL_STATE_BYTES
    request = region_logout_request(
        gateway.services, a_session("zj", now), Onward(portal.client_id, target, longest), now
    )
    assert request is not None
    assert len(request.params["state"]) < 2400
    answer = back(gateway, "zj", request.params["state"])
    assert answer.headers["Location"] == f"{target}?{urlencode({'state': longest})}"

    too_long = requests.get(
        f"{gateway.issuer}/logout",
        params={"state": longest + "s", "client_id": portal.client_id},
        allow_redirects=False,
        timeout=10,
    )
    assert too_long.status_code == 400
    assert "Location" not in too_long.headers
