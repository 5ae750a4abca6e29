"""The broker signs people in at real Keycloak realms (two provinces), through Chromium.

Each realm has a confidential client for the gateway whose redirect URI is a loopback callback
the test intercepts in the browser, and a user whose ``id_number`` attribute a protocol mapper
puts into the ID token. The same genuine callback is then replayed, forged and mixed up.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from playwright.sync_api import Browser, Route
from pydantic import SecretStr
from tongxing_dev.keycloak import KeycloakEndpoint

from gateway.broker import (
    IdentityNumberInvalid,
    LoginTransaction,
    MetadataCache,
    MixUpError,
    RegionClient,
    StateMismatch,
    TokenExchangeFailed,
)
from gateway.registry import Names, Region, RegionKind

PERSON_ID = "11010519491231002X"  # GB 11643-1999's worked example
CLIENT_ID = "tongxing-gateway"
PASSWORD = "Zs-" + secrets.token_urlsafe(12)


def callback_for(code: str) -> str:
    return f"http://127.0.0.1:9/broker/{code}/callback"  # never contacted: the browser is stopped


@dataclass(frozen=True)
class Province:
    region: Region
    realm: str
    user_ids: dict[str, str]


def _admin(keycloak: KeycloakEndpoint) -> KeycloakAdmin:
    return KeycloakAdmin(
        connection=KeycloakOpenIDConnection(
            server_url=keycloak.url,
            username=keycloak.admin_user,
            password=keycloak.admin_password,
            realm_name="master",
            user_realm_name="master",
        )
    )


def _create_province(admin: KeycloakAdmin, keycloak: KeycloakEndpoint, code: str) -> Province:
    realm = f"broker-{code}-{uuid.uuid4().hex[:6]}"
    admin.change_current_realm("master")
    admin.create_realm({"realm": realm, "enabled": True})
    admin.change_current_realm(realm)
    profile = admin.get_realm_users_profile()
    profile["unmanagedAttributePolicy"] = "ENABLED"  # Keycloak 24+: id_number is not declared
    admin.update_realm_users_profile(profile)
    secret = secrets.token_urlsafe(24)
    admin.create_client(
        {
            "clientId": CLIENT_ID,
            "secret": secret,
            "publicClient": False,
            "clientAuthenticatorType": "client-secret",
            "standardFlowEnabled": True,
            "directAccessGrantsEnabled": False,
            "redirectUris": [callback_for(code)],
            "attributes": {"pkce.code.challenge.method": "S256"},
            "protocolMappers": [
                {
                    "name": "id_number",
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-usermodel-attribute-mapper",
                    "config": {
                        "user.attribute": "id_number",
                        "claim.name": "id_number",
                        "jsonType.label": "String",
                        "id.token.claim": "true",
                        "access.token.claim": "false",
                        "userinfo.token.claim": "true",
                    },
                }
            ],
        }
    )
    user_ids: dict[str, str] = {}
    for username, number in (("zhangsan", PERSON_ID), ("wangwu", "110105194912310021")):
        user_ids[username] = admin.create_user(
            {
                "username": username,
                "email": f"{username}@{code}.example.cn",
                "firstName": "三",
                "lastName": "张",
                "enabled": True,
                "emailVerified": True,
                "attributes": {"id_number": [number]},
                "credentials": [{"type": "password", "value": PASSWORD, "temporary": False}],
            }
        )
    region = Region(
        code=code,
        names=Names(zh=f"省{code}", en=f"Province {code}"),
        kind=RegionKind.PROVINCE,
        issuer=keycloak.issuer(realm),
        client_id=CLIENT_ID,
        client_secret=SecretStr(secret),
    )
    return Province(region, realm, user_ids)


@pytest.fixture(scope="module")
def provinces(keycloak: KeycloakEndpoint) -> Iterator[dict[str, Province]]:
    admin = _admin(keycloak)
    made: dict[str, Province] = {}
    try:
        for code in ("zj", "js"):
            made[code] = _create_province(admin, keycloak, code)
        yield made
    finally:
        admin.change_current_realm("master")
        existing = {r["realm"] for r in admin.get_realms()}
        for province in made.values():
            if province.realm in existing:
                admin.delete_realm(province.realm)


@pytest.fixture(scope="module")
def cache() -> Iterator[MetadataCache]:
    regions = MetadataCache()
    yield regions
    regions.close()


def sign_in(browser: Browser, url: str, callback: str, username: str) -> dict[str, list[str]]:
    """Sign in on Keycloak's own login page; return the query of the redirect to ``callback``."""
    page = browser.new_page(locale="zh-CN")
    seen: list[str] = []

    def intercept(route: Route) -> None:
        seen.append(route.request.url)
        route.fulfill(status=200, body="ok")

    page.route(f"{callback}**", intercept)
    try:
        page.goto(url)
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        page.click("#kc-login")
        page.wait_for_url(f"{callback}**")
    finally:
        page.close()
    assert len(seen) == 1
    return parse_qs(urlsplit(seen[0]).query)


def test_a_person_signs_in_at_a_keycloak_realm_and_the_callback_cannot_be_abused(
    provinces: dict[str, Province], cache: MetadataCache, browser: Browser
) -> None:
    zj, js = provinces["zj"].region, provinces["js"].region
    client = RegionClient(zj, cache)
    assert cache.metadata(zj).authorization_response_iss_parameter_supported is True
    url, transaction = client.start_login(callback_for("zj"), ui_locales="zh-CN")
    callback = sign_in(browser, url, callback_for("zj"), "zhangsan")
    assert callback["iss"] == [zj.issuer]

    # Before the code is redeemed, every variation of the genuine callback is refused, and the
    # code stays unspent (the checks come before the token request).
    with pytest.raises(StateMismatch):
        client.finish_login(callback | {"state": [secrets.token_urlsafe(32)]}, transaction)
    other = client.start_login(callback_for("zj")).transaction
    with pytest.raises(StateMismatch):
        client.finish_login(callback, other)  # a state that belongs to another sign-in
    with pytest.raises(MixUpError, match="is not the region's issuer"):
        client.finish_login(callback | {"iss": [js.issuer]}, transaction)
    with pytest.raises(MixUpError, match="iss is missing"):
        client.finish_login({k: v for k, v in callback.items() if k != "iss"}, transaction)
    with pytest.raises(MixUpError, match="received a sign-in to zj"):
        RegionClient(js, cache).finish_login(callback, transaction)

    identity = client.finish_login(callback, transaction)
    assert identity.region == "zj"
    assert identity.issuer == zj.issuer
    assert identity.identity_number.value == PERSON_ID
    assert identity.name == "三 张"
    assert identity.claims["preferred_username"] == "zhangsan"
    assert identity.claims["azp"] == CLIENT_ID
    assert identity.auth_time is not None
    assert identity.subject == provinces["zj"].user_ids["zhangsan"]

    # The callback replayed (as if the transaction had not been consumed): the code is spent.
    with pytest.raises(TokenExchangeFailed) as replay:
        client.finish_login(callback, transaction)
    assert replay.value.error == "invalid_grant"


def test_a_response_from_another_province_is_a_mix_up(
    provinces: dict[str, Province], cache: MetadataCache, browser: Browser
) -> None:
    zj, js = provinces["zj"].region, provinces["js"].region
    # The person started at zj; an attacker relays a genuine js response (code and iss of js)
    # to zj's callback, with zj's state (RFC 9700 §4.4.1).
    transaction = RegionClient(zj, cache).start_login(callback_for("zj")).transaction
    url, _ = RegionClient(js, cache).start_login(callback_for("js"))
    from_js = sign_in(browser, url, callback_for("js"), "zhangsan")
    relayed = from_js | {"state": [transaction.state]}
    with pytest.raises(MixUpError, match="is not the region's issuer"):
        RegionClient(zj, cache).finish_login(relayed, transaction)


def test_a_malformed_identity_number_from_keycloak_is_refused(
    provinces: dict[str, Province], cache: MetadataCache, browser: Browser
) -> None:
    zj = provinces["zj"].region
    client = RegionClient(zj, cache)
    url, transaction = client.start_login(callback_for("zj"))
    callback = sign_in(browser, url, callback_for("zj"), "wangwu")
    with pytest.raises(IdentityNumberInvalid, match="check character"):
        client.finish_login(callback, LoginTransaction.from_dict(transaction.to_dict()))
