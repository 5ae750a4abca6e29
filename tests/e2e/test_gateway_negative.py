"""What the gateway refuses, end to end: every attack of the issue against a real gateway.

The gateway is served over HTTP on loopback with a Keycloak realm as region ``zj``. Protocol
checks use ``requests`` without following redirects, so each answer is seen as the portal or
the attacker would see it; a person's browser (Chromium) is used where a person is involved.
One sign-in at the start gives an SSO session whose cookie the protocol checks reuse: with it
the gateway answers an authorization request at once, which is exactly when a bad redirect URI
would leak a code.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from gateway_fixtures import (
    KeycloakRegion,
    Portal,
    PortalSite,
    RunningGateway,
    add_keycloak_person,
    register_portal,
    sign_in_at_keycloak,
)
from joserfc import jwt
from joserfc.jwk import RSAKey
from playwright.sync_api import Browser, BrowserContext, Page, Route
from tongxing_dev.peers import start_op
from tongxing_dev.process import free_port

from gateway.sessions import SESSION_COOKIE

# GB 11643-1999's worked example with a wrong check character (the right one is X).
BAD_CHECK_DIGIT = "110105194912310021"
HTML = {"Accept": "text/html,application/xhtml+xml"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def portal(gateway: RunningGateway, site: PortalSite) -> Portal:
    """A confidential portal (client_secret_basic), as most portals are."""
    return register_portal(gateway, site, "main")


@pytest.fixture(scope="module")
def sso(gateway: RunningGateway, zj: KeycloakRegion, portal: Portal, browser: Browser) -> str:
    """The SSO session cookie of zhangsan, signed in once through Keycloak."""
    context = browser.new_context(locale="zh-CN")
    try:
        page = context.new_page()
        page.goto(authorize_url(gateway, authorization_request(portal, region="zj")[0]))
        sign_in_at_keycloak(page, zj)
        page.wait_for_url(f"{portal.redirect_uri}**")
        return session_cookie(context) or pytest.fail("no SSO session after signing in")
    finally:
        context.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(locale="zh-CN")
    yield context
    context.close()


# --- helpers --------------------------------------------------------------------------------


def pkce() -> tuple[str, str]:
    """A code verifier and its S256 challenge (RFC 7636 §4.1, §4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorization_request(portal: Portal, **changes: str | None) -> tuple[dict[str, str], str]:
    """A valid authorization request with PKCE, changed by ``changes`` (None drops a key)."""
    verifier, challenge = pkce()
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": portal.client_id,
        "redirect_uri": portal.redirect_uri,
        "scope": "openid profile",
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **changes,
    }
    return {k: v for k, v in params.items() if v is not None}, verifier


def authorize_url(gateway: RunningGateway, params: dict[str, str]) -> str:
    return f"{gateway.issuer}/authorize?{urlencode(params)}"


def authorize(
    gateway: RunningGateway, params: dict[str, str], sso: str | None = None
) -> requests.Response:
    cookies = {SESSION_COOKIE: sso} if sso else None
    return requests.get(
        f"{gateway.issuer}/authorize",
        params=params,
        cookies=cookies,
        headers=HTML,
        allow_redirects=False,
        timeout=10,
    )


def redirect_query(response: requests.Response, redirect_uri: str) -> dict[str, str]:
    """The parameters of an authorization response sent to ``redirect_uri``."""
    assert response.status_code in (302, 303), (response.status_code, response.text[:300])
    location = response.headers["Location"]
    assert location.split("?")[0] == redirect_uri, location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def code_for(
    gateway: RunningGateway, portal: Portal, sso: str, **changes: str | None
) -> tuple[str, str]:
    """An authorization code from the SSO session, and its PKCE verifier."""
    params, verifier = authorization_request(portal, **changes)
    answer = redirect_query(authorize(gateway, params, sso), portal.redirect_uri)
    assert answer["state"] == params["state"]
    assert answer["iss"] == gateway.issuer
    return answer["code"], verifier


def token(portal: Portal, auth: str = "basic", **form: str) -> requests.Response:
    """A token request; ``auth`` is basic, post or none (the client_id alone)."""
    basic = None
    if auth == "basic":
        basic = (portal.client_id, portal.client_secret)
    elif auth == "post":
        form |= {"client_id": portal.client_id, "client_secret": portal.client_secret}
    else:
        form |= {"client_id": portal.client_id}
    return requests.post(f"{portal.gateway.issuer}/token", data=form, auth=basic, timeout=10)


def redeem(
    portal: Portal, code: str, verifier: str | None, auth: str = "basic"
) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": portal.redirect_uri}
    if verifier is not None:
        form["code_verifier"] = verifier
    return token(portal, auth, **form)


def tokens_for(gateway: RunningGateway, portal: Portal, sso: str) -> dict[str, Any]:
    code, verifier = code_for(gateway, portal, sso)
    response = redeem(portal, code, verifier)
    assert response.status_code == 200, response.text
    issued: dict[str, Any] = response.json()
    assert issued["refresh_token"]
    return issued


def refresh(portal: Portal, refresh_token: str) -> requests.Response:
    return token(portal, grant_type="refresh_token", refresh_token=refresh_token)


def oauth_error(response: requests.Response, status: int = 400) -> str:
    """The RFC 6749 §5.2 error code of a JSON error response."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    error: str = response.json()["error"]
    return error


def userinfo_status(gateway: RunningGateway, access_token: str) -> int:
    headers = {"Authorization": f"Bearer {access_token}"}
    return requests.get(f"{gateway.issuer}/userinfo", headers=headers, timeout=10).status_code


def introspect(portal: Portal, value: str) -> dict[str, Any]:
    response = requests.post(
        f"{portal.gateway.issuer}/introspect",
        data={"token": value},
        auth=(portal.client_id, portal.client_secret),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def assert_error_page(response: requests.Response, code: str, status: int = 400) -> None:
    """A page for the person (HTML, the error code shown), and no redirect anywhere."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    assert f"<code>{code}</code>" in response.text


def session_cookie(context: BrowserContext) -> str | None:
    values = [c.get("value") for c in context.cookies() if c.get("name") == SESSION_COOKIE]
    return values[0] if values else None


def keycloak_login_page(page: Page, gateway: RunningGateway, portal: Portal) -> str:
    """Open the portal's request naming zj; return the state the gateway sent to Keycloak."""
    page.goto(authorize_url(gateway, authorization_request(portal, region="zj")[0]))
    page.wait_for_selector("#kc-login")
    return parse_qs(urlsplit(page.url).query)["state"][0]


def page_code(page: Page) -> str:
    return page.locator("p.code code").inner_text()


# --- 1. code replay -------------------------------------------------------------------------


def test_code_replay_is_refused_and_revokes_the_tokens_of_the_first_redemption(
    gateway: RunningGateway, portal: Portal, sso: str
) -> None:
    """RFC 6749 §4.1.2 and §10.5, RFC 9700 §4.5: one use; a second revokes what the first got."""
    code, verifier = code_for(gateway, portal, sso)
    first = redeem(portal, code, verifier)
    assert first.status_code == 200, first.text
    issued = first.json()
    assert userinfo_status(gateway, issued["access_token"]) == 200
    assert introspect(portal, issued["access_token"])["active"] is True

    assert oauth_error(redeem(portal, code, verifier)) == "invalid_grant"

    assert userinfo_status(gateway, issued["access_token"]) == 401
    assert introspect(portal, issued["access_token"]) == {"active": False}
    assert introspect(portal, issued["refresh_token"]) == {"active": False}
    assert oauth_error(refresh(portal, issued["refresh_token"])) == "invalid_grant"


def test_a_code_presented_by_another_portal_is_refused_and_burnt(
    gateway: RunningGateway, portal: Portal, site: PortalSite, sso: str
) -> None:
    """RFC 6749 §4.1.3: the code must have been issued to the authenticated client."""
    thief = register_portal(gateway, site, "thief")
    code, verifier = code_for(gateway, portal, sso)
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    stolen = token(thief, **form, redirect_uri=portal.redirect_uri)
    assert oauth_error(stolen) == "invalid_grant"
    assert oauth_error(redeem(portal, code, verifier)) == "invalid_grant"


def test_a_code_is_bound_to_its_redirect_uri(
    gateway: RunningGateway, portal: Portal, sso: str
) -> None:
    """RFC 6749 §4.1.3: redirect_uri at the token endpoint must be identical to the request's."""
    for redirect_uri in (None, f"{portal.redirect_uri}/", "https://evil.example/cb"):
        code, verifier = code_for(gateway, portal, sso)
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
        if redirect_uri is not None:
            form["redirect_uri"] = redirect_uri
        assert oauth_error(token(portal, **form)) == "invalid_grant"


# --- 2. redirect URIs -----------------------------------------------------------------------

REGISTERED_HTTPS = "https://portal.example.cn/zj/callback"
# {port} is the portal site's loopback port, {other} another one. Every variant differs from a
# registered URI as a string; RFC 9700 §4.1.3 asks for exact string comparison.
REDIRECT_VARIANTS = {
    "https-trailing-slash": "https://portal.example.cn/zj/callback/",
    "https-path-case": "https://portal.example.cn/zj/Callback",
    "https-host-case": "https://PORTAL.example.cn/zj/callback",
    "https-added-query": "https://portal.example.cn/zj/callback?next=https://evil.example",
    "https-dot-dot-semicolon": "https://portal.example.cn/evil/..;/zj/callback",
    "https-userinfo-host": "https://portal.example.cn@evil.example/zj/callback",
    "https-userinfo-twice": "https://portal.example.cn@evil.example@portal.example.cn/zj/callback",
    "https-encoded-at": "https://evil.example%40portal.example.cn/zj/callback",
    "https-look-alike-host": "https://portal.example.cn.evil.example/zj/callback",
    "https-other-port": "https://portal.example.cn:8443/zj/callback",
    "https-default-port-spelt-out": "https://portal.example.cn:443/zj/callback",
    "https-downgraded-to-http": "http://portal.example.cn/zj/callback",
    "https-fragment": "https://portal.example.cn/zj/callback#x",
    "https-percent-encoded-path": "https://portal.example.cn/zj/%63allback",
    "loopback-trailing-slash": "http://127.0.0.1:{port}/strict/callback/",
    "loopback-path-case": "http://127.0.0.1:{port}/STRICT/callback",
    "loopback-added-query": "http://127.0.0.1:{port}/strict/callback?x=1",
    "loopback-dot-dot-semicolon": "http://127.0.0.1:{port}/evil/..;/strict/callback",
    "loopback-userinfo-host": "http://127.0.0.1:{port}@evil.example/strict/callback",
    "loopback-userinfo-twice": "http://127.0.0.1:{port}@evil.example@127.0.0.1:{port}/strict/callback",
    "loopback-look-alike-suffix": "http://127.0.0.1.evil.example:{port}/strict/callback",
    "loopback-look-alike-l27": "http://l27.0.0.1:{port}/strict/callback",
    "loopback-short-form": "http://127.1:{port}/strict/callback",
    "loopback-localhost": "http://localhost:{port}/strict/callback",
    "loopback-ipv6": "http://[::1]:{port}/strict/callback",
    "loopback-other-port": "http://127.0.0.1:{other}/strict/callback",
    "loopback-no-port": "http://127.0.0.1/strict/callback",
    "loopback-https": "https://127.0.0.1:{port}/strict/callback",
}


@pytest.fixture(scope="module")
def strict(gateway: RunningGateway, site: PortalSite) -> Portal:
    """A portal with an https redirect URI and a loopback one."""
    loopback = f"{site.base}/strict/callback"
    registered = register_portal(
        gateway, site, "strict", redirect_uris=[loopback, REGISTERED_HTTPS]
    )
    registered.redirect_uri = loopback
    return registered


@pytest.mark.parametrize("redirect_uri", [REGISTERED_HTTPS, "loopback"])
def test_the_registered_redirect_uris_get_a_code(
    redirect_uri: str, gateway: RunningGateway, strict: Portal, site: PortalSite, sso: str
) -> None:
    uri = f"{site.base}/strict/callback" if redirect_uri == "loopback" else redirect_uri
    params, _ = authorization_request(strict, redirect_uri=uri)
    assert redirect_query(authorize(gateway, params, sso), uri)["code"]


@pytest.mark.parametrize("variant", REDIRECT_VARIANTS.values(), ids=REDIRECT_VARIANTS.keys())
def test_a_redirect_uri_variant_gets_an_error_page_never_a_redirect(
    variant: str, gateway: RunningGateway, strict: Portal, site: PortalSite, sso: str
) -> None:
    """RFC 6749 §4.1.2.1, RFC 9700 §4.1.3: an unregistered URI is never redirected to."""
    uri = variant.format(port=site.server.server_address[1], other=free_port())
    params, _ = authorization_request(strict, redirect_uri=uri)
    for cookie in (sso, None):  # with a session no code leaks; without, no region trip starts
        assert_error_page(authorize(gateway, params, cookie), "invalid_request")


@pytest.mark.parametrize(
    "changes",
    [{"client_id": "portal-nobody"}, {"client_id": None}, {"redirect_uri": None}],
    ids=["unknown-client", "no-client", "no-redirect-uri"],
)
def test_an_unidentified_client_or_uri_gets_an_error_page_never_a_redirect(
    changes: dict[str, str | None], gateway: RunningGateway, portal: Portal, sso: str
) -> None:
    params, _ = authorization_request(portal, **changes)
    response = authorize(gateway, params, sso)
    code = "invalid_request" if "redirect_uri" in changes else "invalid_client"
    assert_error_page(response, code)


def test_a_repeated_redirect_uri_gets_an_error_page(
    gateway: RunningGateway, portal: Portal, sso: str
) -> None:
    """RFC 6749 §3.1: parameters must not be repeated; the second value must not win."""
    params, _ = authorization_request(portal)
    query = urlencode([*params.items(), ("redirect_uri", "https://evil.example/cb")])
    response = requests.get(
        f"{gateway.issuer}/authorize?{query}",
        cookies={SESSION_COOKIE: sso},
        headers=HTML,
        allow_redirects=False,
        timeout=10,
    )
    assert_error_page(response, "invalid_request")


# --- 3. PKCE --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def public(gateway: RunningGateway, site: PortalSite) -> Portal:
    """A public portal (token_endpoint_auth_method none): PKCE is its only proof."""
    return register_portal(gateway, site, "public", token_endpoint_auth_method="none")


@pytest.mark.parametrize(
    "changes",
    [
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge_method": "plain"},
        {"code_challenge_method": None},  # RFC 7636 §4.3: absent means plain
        {"code_challenge": "too-short"},
    ],
    ids=["no-challenge", "plain", "method-absent", "malformed-challenge"],
)
def test_a_public_client_without_a_usable_s256_challenge_gets_invalid_request(
    changes: dict[str, str | None], gateway: RunningGateway, public: Portal, sso: str
) -> None:
    """RFC 9700 §2.1.1 and RFC 7636 §4.4.1: the error goes back to the portal, with state and
    iss (RFC 9207 §2)."""
    params, _ = authorization_request(public, **changes)
    if changes.get("code_challenge_method") == "plain":
        params["code_challenge"] = secrets.token_urlsafe(48)
    for cookie in (None, sso):
        answer = redirect_query(authorize(gateway, params, cookie), public.redirect_uri)
        assert answer["error"] == "invalid_request"
        assert answer["state"] == params["state"]
        assert answer["iss"] == gateway.issuer
        assert "code" not in answer


def test_plain_pkce_is_refused_for_a_confidential_client_too(
    gateway: RunningGateway, portal: Portal, sso: str
) -> None:
    params, _ = authorization_request(portal, code_challenge_method="plain")
    answer = redirect_query(authorize(gateway, params, sso), portal.redirect_uri)
    assert answer["error"] == "invalid_request"


def test_a_public_client_redeems_with_the_right_verifier_only(
    gateway: RunningGateway, public: Portal, sso: str
) -> None:
    code, verifier = code_for(gateway, public, sso)
    assert oauth_error(redeem(public, code, None, auth="none")) == "invalid_request"
    code, verifier = code_for(gateway, public, sso)
    assert oauth_error(redeem(public, code, pkce()[0], auth="none")) == "invalid_grant"
    code, verifier = code_for(gateway, public, sso)
    assert redeem(public, code, verifier, auth="none").status_code == 200


def test_a_wrong_code_verifier_gets_invalid_grant(
    gateway: RunningGateway, portal: Portal, sso: str
) -> None:
    """RFC 7636 §4.6."""
    code, _ = code_for(gateway, portal, sso)
    assert oauth_error(redeem(portal, code, pkce()[0])) == "invalid_grant"


def test_a_code_verifier_without_a_challenge_is_refused(
    gateway: RunningGateway, portal: Portal, sso: str
) -> None:
    """RFC 9700 §4.8.2: no challenge in the request, so a verifier at the token endpoint is an
    injection attempt."""
    code, _ = code_for(gateway, portal, sso, code_challenge=None, code_challenge_method=None)
    assert oauth_error(redeem(portal, code, pkce()[0])) in ("invalid_request", "invalid_grant")


# --- 4. refresh token reuse -----------------------------------------------------------------


def test_a_reused_refresh_token_revokes_its_whole_family(
    gateway: RunningGateway, portal: Portal, sso: str
) -> None:
    """RFC 9700 §4.14.2: rotation, and reuse of a rotated token ends the family."""
    issued = tokens_for(gateway, portal, sso)
    old = issued["refresh_token"]
    rotated = refresh(portal, old)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["refresh_token"] != old
    assert introspect(portal, new["refresh_token"])["active"] is True
    assert userinfo_status(gateway, new["access_token"]) == 200

    assert oauth_error(refresh(portal, old)) == "invalid_grant"

    assert oauth_error(refresh(portal, new["refresh_token"])) == "invalid_grant"
    assert introspect(portal, new["refresh_token"]) == {"active": False}
    assert userinfo_status(gateway, new["access_token"]) == 401
    assert userinfo_status(gateway, issued["access_token"]) == 401


def test_a_refresh_token_of_another_portal_is_refused(
    gateway: RunningGateway, portal: Portal, site: PortalSite, sso: str
) -> None:
    other = register_portal(gateway, site, "other")
    issued = tokens_for(gateway, portal, sso)
    assert oauth_error(refresh(other, issued["refresh_token"])) == "invalid_grant"


# --- 5. prompt=none -------------------------------------------------------------------------


def test_prompt_none_without_a_session_returns_login_required(
    gateway: RunningGateway, portal: Portal, sso: str
) -> None:
    """OIDC Core §3.1.2.6: an error to the portal with state and iss, no page in between."""
    params, _ = authorization_request(portal, prompt="none")
    answer = redirect_query(authorize(gateway, params), portal.redirect_uri)
    assert answer["error"] == "login_required"
    assert answer["state"] == params["state"]
    assert answer["iss"] == gateway.issuer
    assert "code" not in answer
    # The same request with the session answers at once.
    assert redirect_query(authorize(gateway, params, sso), portal.redirect_uri)["code"]


# --- 6. mix-up ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sh(
    gateway: RunningGateway, node_peers: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A second region, served by Node's oidc-provider: its issuer is what a mix-up names."""
    secret = secrets.token_urlsafe(24)
    client = {
        "client_id": "tongxing",
        "client_secret": secret,
        "redirect_uris": [f"{gateway.issuer}/callback/sh"],
    }
    server, issuer = start_op(tmp_path_factory.mktemp("op"), client)
    try:
        body = {
            "names": {"zh": "上海", "en": "Shanghai"},
            "kind": "municipality",
            "issuer": issuer,
            "client_id": "tongxing",
            "client_secret": secret,
        }
        response = gateway.admin("PUT", "/regions/sh", body)
        assert response.status_code == 201, response.text
        yield issuer
    finally:
        server.stop()


def test_a_callback_naming_another_regions_issuer_is_refused(
    gateway: RunningGateway, zj: KeycloakRegion, portal: Portal, sh: str, context: BrowserContext
) -> None:
    """RFC 9207 §2.4, RFC 9700 §4.4: the code is never sent anywhere, no session starts."""
    page = context.new_page()
    state = keycloak_login_page(page, gateway, portal)
    query = urlencode({"code": "stolen-at-sh", "state": state, "iss": sh})
    response = page.goto(f"{gateway.issuer}/callback/zj?{query}")
    assert response is not None
    assert response.status == 400
    assert page_code(page) == "issuer_mismatch"
    assert session_cookie(context) is None


def test_a_response_for_zj_delivered_to_the_callback_of_sh_is_refused(
    gateway: RunningGateway, zj: KeycloakRegion, portal: Portal, sh: str, context: BrowserContext
) -> None:
    """RFC 9700 §4.4.2.2: one callback per region; a transaction of zj is not accepted at sh."""
    page = context.new_page()
    state = keycloak_login_page(page, gateway, portal)
    query = urlencode({"code": "x", "state": state, "iss": sh})
    response = page.goto(f"{gateway.issuer}/callback/sh?{query}")
    assert response is not None
    assert response.status == 400
    assert page_code(page) == "issuer_mismatch"
    assert session_cookie(context) is None


# --- 7. login CSRF --------------------------------------------------------------------------


def test_a_callback_started_in_another_browser_is_refused(
    gateway: RunningGateway, zj: KeycloakRegion, portal: Portal, browser: Browser
) -> None:
    """RFC 6749 §10.12, RFC 9700 §4.7: an attacker signs in as themselves, stops before the
    gateway's callback and plants that URL in the victim's browser."""
    attacker = browser.new_context()
    victim = browser.new_context()
    try:
        captured: list[str] = []

        def stop(route: Route) -> None:
            # Playwright routes only the first request of a redirect chain: the attacker's
            # browser posts the password itself and keeps the redirect to the gateway.
            answer = route.fetch(max_redirects=0)
            captured.append(answer.headers["location"])
            route.fulfill(status=200, body="stopped before the gateway")

        page = attacker.new_page()
        page.route("**/login-actions/authenticate?**", stop)
        keycloak_login_page(page, gateway, portal)
        with page.expect_response("**/login-actions/authenticate?**"):
            sign_in_at_keycloak(page, zj)
        assert len(captured) == 1
        assert captured[0].startswith(f"{gateway.issuer}/callback/zj?")
        assert "code=" in captured[0]

        planted = victim.new_page()
        response = planted.goto(captured[0])
        assert response is not None
        assert response.status == 400
        assert page_code(planted) == "login_csrf"
        assert session_cookie(victim) is None
        assert session_cookie(attacker) is None
    finally:
        attacker.close()
        victim.close()


# --- 8. malformed identity number -----------------------------------------------------------


def test_an_identity_number_with_a_wrong_check_digit_gets_a_clear_page(
    gateway: RunningGateway, zj: KeycloakRegion, portal: Portal, context: BrowserContext
) -> None:
    """GB 11643-1999 §5 (ISO 7064 MOD 11-2): the national identity cannot be formed."""
    lisi = add_keycloak_person(zj, f"lisi-{uuid.uuid4().hex[:4]}", BAD_CHECK_DIGIT)
    page = context.new_page()
    keycloak_login_page(page, gateway, portal)
    with page.expect_response(lambda r: "/callback/zj?" in r.url) as answer:
        sign_in_at_keycloak(page, lisi)
    assert answer.value.status == 502
    assert page_code(page) == "identity_number_invalid"
    assert "居民身份证号码" in page.locator("section.error").inner_text()
    assert session_cookie(context) is None
    assert BAD_CHECK_DIGIT not in page.content()


def test_a_portal_removed_during_the_login_gets_a_page_and_the_session_stays(
    gateway: RunningGateway,
    zj: KeycloakRegion,
    site: PortalSite,
    portal: Portal,
    context: BrowserContext,
) -> None:
    """/callback answers the portal's request itself; when that request no longer stands, the
    person sees why, and their sign-in at the region is not lost (SSO for the next portal)."""
    leaving = register_portal(gateway, site, "leaving")
    page = context.new_page()
    keycloak_login_page(page, gateway, leaving)
    assert gateway.admin("DELETE", f"/portals/{leaving.client_id}").status_code == 204
    with page.expect_response(lambda r: "/callback/zj?" in r.url) as answer:
        sign_in_at_keycloak(page, zj)
    assert answer.value.status == 400
    assert page_code(page) == "invalid_client"
    assert session_cookie(context) is not None
    request, _ = authorization_request(portal)
    with page.expect_response(lambda r: r.url.startswith(portal.redirect_uri)) as back:
        page.goto(authorize_url(gateway, request))  # no region, no password: the session
    assert "code" in parse_qs(urlsplit(back.value.url).query)


# --- 9. a region that is down ---------------------------------------------------------------


def put_region(gateway: RunningGateway, code: str, issuer: str) -> None:
    body = {
        "names": {"zh": f"地区{code}", "en": f"Region {code}"},
        "kind": "province",
        "issuer": issuer,
        "client_id": "tongxing",
        "client_secret": secrets.token_urlsafe(24),
    }
    response = gateway.admin("PUT", f"/regions/{code}", body)
    assert response.status_code == 201, response.text


def choose(page: Page, gateway: RunningGateway, portal: Portal, code: str) -> tuple[int, float]:
    """Open the chooser, pick ``code``; return the status of the answer and how long it took."""
    page.goto(authorize_url(gateway, authorization_request(portal)[0]))
    page.check(f"input[value={code}]")
    began = time.monotonic()
    with page.expect_response(lambda r: f"region={code}" in r.url) as answer:
        page.click("button[type=submit]")
    return answer.value.status, time.monotonic() - began


def test_a_region_that_is_down_gets_a_503_page_and_the_others_still_sign_in(
    gateway: RunningGateway, zj: KeycloakRegion, portal: Portal, browser: Browser
) -> None:
    """DESIGN.md: an upstream outage degrades only that region, with a clear page."""
    put_region(gateway, "dn", f"http://127.0.0.1:{free_port()}/realms/dn")  # refuses
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel accepts connections; nobody ever answers
    put_region(gateway, "hg", f"http://127.0.0.1:{silent.getsockname()[1]}/realms/hg")
    signed_in, chooser = browser.new_context(locale="zh-CN"), browser.new_context(locale="zh-CN")
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            # While a request for hg waits on its silent upstream, zj signs a person in.
            stuck = pool.submit(authorize, gateway, authorization_request(portal, region="hg")[0])
            page = signed_in.new_page()
            page.goto(authorize_url(gateway, authorization_request(portal)[0]))
            page.check("input[value=zj]")
            page.click("button[type=submit]")
            sign_in_at_keycloak(page, zj)
            page.wait_for_url(f"{portal.redirect_uri}**")
            assert "code=" in page.url
            assert_error_page(stuck.result(timeout=10), "region_unavailable", 503)

        page = chooser.new_page()
        for code in ("dn", "hg"):
            status, took = choose(page, gateway, portal, code)
            assert status == 503
            assert took < 5.0, f"{code} answered after {took:.1f} s"  # the issue: within 5 s
            assert page_code(page) == "region_unavailable"
            assert "暂时无法访问" in page.locator("section.error").inner_text()
    finally:
        signed_in.close()
        chooser.close()
        silent.close()


# --- 11. client authentication --------------------------------------------------------------


@pytest.fixture(scope="module")
def backend(gateway: RunningGateway, site: PortalSite) -> Portal:
    return register_portal(
        gateway,
        site,
        "post",
        token_endpoint_auth_method="client_secret_post",
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
    )


def test_client_secret_post_authenticates_and_a_wrong_secret_gets_401(
    backend: Portal, portal: Portal
) -> None:
    """RFC 6749 §2.3.1 and §5.2."""
    granted = token(backend, "post", grant_type="client_credentials")
    assert granted.status_code == 200, granted.text
    assert granted.json()["token_type"] == "Bearer"

    wrong = Portal(backend.gateway, backend.client_id, "x" * 43, backend.redirect_uri)
    assert oauth_error(token(wrong, "post", grant_type="client_credentials"), 401) == (
        "invalid_client"
    )
    # The right secret by a method the portal did not register is no authentication either.
    assert oauth_error(token(backend, "basic", grant_type="client_credentials"), 401) == (
        "invalid_client"
    )
    wrong_basic = Portal(portal.gateway, portal.client_id, "x" * 43, portal.redirect_uri)
    refused = token(wrong_basic, "basic", grant_type="authorization_code", code="x")
    assert oauth_error(refused, 401) == "invalid_client"
    assert refused.headers["WWW-Authenticate"].startswith("Basic")


def assertion(client_id: str, key: RSAKey, audience: str, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
        **changes,
    }
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def test_private_key_jwt_authenticates_once_per_assertion(
    gateway: RunningGateway, site: PortalSite
) -> None:
    """OIDC Core §9 and RFC 7523 §3: a signed assertion, whose jti may be used once."""
    key = RSAKey.generate_key(2048, parameters={"kid": "portal-1", "use": "sig"})
    jwks = {"keys": [key.as_dict(private=False)]}
    signer = register_portal(
        gateway,
        site,
        "jwt",
        token_endpoint_auth_method="private_key_jwt",
        jwks=jwks,
        grant_types=["authorization_code", "client_credentials"],
    )
    audience = f"{gateway.issuer}/token"

    def credentials(value: str) -> requests.Response:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": value,
        }
        return requests.post(audience, data=form, timeout=10)

    signed = assertion(signer.client_id, key, audience)
    granted = credentials(signed)
    assert granted.status_code == 200, granted.text
    assert granted.json()["token_type"] == "Bearer"

    refused = [
        signed,  # replayed: the same jti
        assertion(
            signer.client_id, RSAKey.generate_key(2048, parameters={"kid": "portal-1"}), audience
        ),
        assertion(signer.client_id, key, "https://other.example/token"),
        assertion(signer.client_id, key, audience, exp=int(time.time()) - 120),
        assertion(signer.client_id, key, audience, exp=int(time.time()) + 86400),
        assertion("portal-nobody", key, audience),
    ]
    for value in refused:
        assert_client_refused(credentials(value))
    # The far-off assertion was refused before its jti was recorded; a fresh one still works.
    assert credentials(assertion(signer.client_id, key, audience)).status_code == 200


def assert_client_refused(response: requests.Response) -> None:
    """RFC 6749 §5.2: invalid_client, with 401 (required when the Authorization header was
    used) or 400 (allowed otherwise, e.g. for a client assertion)."""
    assert response.status_code in (400, 401), (response.status_code, response.text)
    assert response.json()["error"] == "invalid_client"


# --- 12. headers and methods ----------------------------------------------------------------


def test_pages_forbid_framing_and_referrers(gateway: RunningGateway, portal: Portal) -> None:
    chooser = authorize(gateway, authorization_request(portal)[0])
    error = authorize(gateway, authorization_request(portal, client_id="portal-nobody")[0])
    assert chooser.status_code == 200
    assert "选择您注册的地区" in chooser.text
    assert error.status_code == 400
    for response in (chooser, error):
        policy = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in [p.strip() for p in policy.split(";")]
        assert response.headers["Referrer-Policy"] == "no-referrer"


def test_a_form_post_to_authorize_is_answered_with_303(
    gateway: RunningGateway, portal: Portal, public: Portal, sso: str
) -> None:
    """RFC 9700 §4.12: a 307 would replay the form, credentials included, at the portal."""

    def post(params: dict[str, str], cookie: str | None = None) -> requests.Response:
        return requests.post(
            f"{gateway.issuer}/authorize",
            data=params,
            cookies={SESSION_COOKIE: cookie} if cookie else None,
            headers=HTML,
            allow_redirects=False,
            timeout=10,
        )

    with_session = post(authorization_request(portal)[0], sso)
    assert with_session.status_code == 303
    assert redirect_query(with_session, portal.redirect_uri)["code"]

    to_region = post(authorization_request(portal, region="zj")[0])
    assert to_region.status_code == 303

    refused = post(authorization_request(public, code_challenge=None)[0])
    assert refused.status_code == 303
    assert redirect_query(refused, public.redirect_uri)["error"] == "invalid_request"


# --- request parameters the session must satisfy ------------------------------------------------


def test_a_malformed_max_age_is_an_error_for_the_portal(
    gateway: RunningGateway, portal: Portal, sso: str
) -> None:
    for cookie in (sso, None):
        params, _ = authorization_request(portal, max_age="soon")
        answer = redirect_query(authorize(gateway, params, cookie), portal.redirect_uri)
        assert answer["error"] == "invalid_request"
        assert answer["state"] == params["state"]
        assert answer["iss"] == gateway.issuer


def test_an_id_token_hint_for_someone_else_is_not_answered_by_this_session(
    gateway: RunningGateway, portal: Portal, sso: str
) -> None:
    """OIDC Core §3.1.2.1: with prompt=none, a hint the session does not match is login_required."""
    tokens = tokens_for(gateway, portal, sso)
    own_hint = tokens["id_token"]
    params, _ = authorization_request(portal, prompt="none", id_token_hint=own_hint)
    assert redirect_query(authorize(gateway, params, sso), portal.redirect_uri)["code"]

    claims = gateway.services.keys.verify(own_hint)
    forged = gateway.services.keys.sign({**claims, "sub": "someone-else"})
    params, _ = authorization_request(portal, prompt="none", id_token_hint=forged)
    answer = redirect_query(authorize(gateway, params, sso), portal.redirect_uri)
    assert answer["error"] == "login_required"


def test_cancelling_at_the_region_sends_access_denied_to_the_portal(
    gateway: RunningGateway, portal: Portal, sh: str, context: BrowserContext
) -> None:
    page = context.new_page()
    params, _ = authorization_request(portal, region="sh")
    page.goto(authorize_url(gateway, params))
    page.click("text=Cancel")  # oidc-provider's own login page: abort the interaction
    page.wait_for_url(f"{portal.redirect_uri}**")
    answer = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
    assert answer["error"] == "access_denied"
    assert answer["state"] == params["state"]
    assert answer["iss"] == gateway.issuer
    assert session_cookie(context) is None
