"""Keycloak from Maven Central is real: a realm and a user made with python-keycloak sign in."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from playwright.sync_api import Browser, Route
from tongxing_dev import peers
from tongxing_dev.keycloak import KeycloakEndpoint

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the test reads the Location


@pytest.fixture
def realm(keycloak: KeycloakEndpoint) -> Iterator[tuple[KeycloakAdmin, str]]:
    admin = KeycloakAdmin(
        connection=KeycloakOpenIDConnection(
            server_url=keycloak.url,
            username=keycloak.admin_user,
            password=keycloak.admin_password,
            realm_name="master",
            user_realm_name="master",
        )
    )
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    admin.create_realm({"realm": name, "enabled": True})
    admin.change_current_realm(name)
    try:
        yield admin, name
    finally:
        admin.change_current_realm("master")
        if name in {r["realm"] for r in admin.get_realms()}:
            admin.delete_realm(name)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_a_user_created_with_python_keycloak_signs_in_with_the_code_flow(
    keycloak: KeycloakEndpoint, realm: tuple[KeycloakAdmin, str], browser: Browser
) -> None:
    admin, name = realm
    admin.create_client(
        {
            "clientId": "portal-smoke",
            "publicClient": True,
            "standardFlowEnabled": True,
            "redirectUris": [REDIRECT_URI],
            "attributes": {"pkce.code.challenge.method": "S256"},
        }
    )
    admin.create_user(
        {
            "username": "zhangsan",
            "email": "zhangsan@example.cn",
            "firstName": "三",
            "lastName": "张",
            "enabled": True,
            "emailVerified": True,
            "credentials": [{"type": "password", "value": "Ss-0123456789", "temporary": False}],
        }
    )
    issuer = keycloak.issuer(name)
    metadata = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    verifier, challenge = _pkce()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)

    # Keycloak's session cookies are `Secure`: only a browser (which trusts loopback as a secure
    # context) carries them over plain HTTP, as a citizen's browser would.
    page = browser.new_page(locale="zh-CN")
    redirects: list[str] = []

    def portal_callback(route: Route) -> None:
        redirects.append(route.request.url)
        route.fulfill(status=200, body="signed in")

    page.route(f"{REDIRECT_URI}**", portal_callback)
    try:
        page.goto(
            metadata["authorization_endpoint"]
            + "?"
            + urlencode(
                {
                    "client_id": "portal-smoke",
                    "redirect_uri": REDIRECT_URI,
                    "response_type": "code",
                    "scope": "openid",
                    "state": state,
                    "nonce": nonce,
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                }
            )
        )
        page.fill("#username", "zhangsan")
        page.fill("#password", "Ss-0123456789")
        page.click("#kc-login")
        page.wait_for_url(f"{REDIRECT_URI}**")
    finally:
        page.close()
    assert len(redirects) == 1
    location = urlsplit(redirects[0])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = parse_qs(location.query)
    assert query["state"] == [state]
    assert query["iss"] == [issuer]  # RFC 9207

    tokens = requests.post(
        metadata["token_endpoint"],
        timeout=10,
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": REDIRECT_URI,
            "client_id": "portal-smoke",
            "code_verifier": verifier,
        },
    )
    assert tokens.status_code == 200, tokens.text
    keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    id_token = jwt.decode(tokens.json()["id_token"], keys, algorithms=["RS256"])
    claims = id_token.claims
    assert claims["iss"] == issuer
    assert claims["aud"] == "portal-smoke"
    assert claims["nonce"] == nonce
    assert claims["preferred_username"] == "zhangsan"
    assert claims["name"] == "三 张"


def test_a_deleted_realm_is_gone(
    keycloak: KeycloakEndpoint, realm: tuple[KeycloakAdmin, str]
) -> None:
    admin, name = realm
    discovery = f"{keycloak.issuer(name)}/.well-known/openid-configuration"
    assert requests.get(discovery, timeout=10).status_code == 200
    admin.change_current_realm("master")
    admin.delete_realm(name)
    assert requests.get(discovery, timeout=10).status_code == 404
    assert name not in {r["realm"] for r in admin.get_realms()}


def test_openid_client_fetches_keycloaks_discovery(
    keycloak: KeycloakEndpoint, realm: tuple[KeycloakAdmin, str], node_peers: object
) -> None:
    _, name = realm
    metadata = peers.rp("discover", keycloak.issuer(name))
    assert metadata["issuer"] == keycloak.issuer(name)
    assert "authorization_code" in metadata["grant_types_supported"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
