"""Keycloak as a broker in front of the gateway (issue 18): a province's own Keycloak realm whose
identity provider is Tongxing, with Chromium and the harness's Keycloak.

The broker realm (new per module) imports the gateway's discovery document (Keycloak's admin
``identity-provider/import-config``), uses PKCE S256, checks signatures with the gateway's JWKS
URL and logs out upstream in its "back-channel" mode. At the gateway the broker is a portal whose
redirect URI is Keycloak's broker endpoint, whose ``backchannel_logout_uri`` is the broker
realm's ``/protocol/openid-connect/logout/backchannel-logout`` and which registered
``backchannel_logout_session_required: false`` (Keycloak 26.x, bug #12142, ends nothing for a
logout token with ``sid``). An application of the broker realm signs a person in: Keycloak, the
gateway's chooser, the region's login page, and back. Then a logout at either end ends the
session at the other (RP-Initiated Logout 1.0 §2; Back-Channel Logout 1.0 §2.5, §2.2).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from gateway_fixtures import (
    KeycloakRegion,
    PortalSite,
    RunningGateway,
    register_portal,
    rp,
    sign_in_at_keycloak,
)
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from playwright.sync_api import Page
from tongxing_dev.keycloak import KeycloakEndpoint

from gateway.sessions import SESSION_COOKIE
from gateway.store.contract import SsoSession

ALIAS = "tongxing"
APP = "province-app"


@dataclass
class Broker:
    """The broker realm, its application (a client of the broker) and its portal's id."""

    realm: str
    issuer: str
    admin: KeycloakAdmin
    portal: str
    app_secret: str
    redirect_uri: str

    @property
    def app(self) -> str:
        return json.dumps({"client_id": APP, "client_secret": self.app_secret})

    def user_sessions(self) -> list[dict[str, Any]]:
        """The live sessions of every user the broker imported from the gateway."""
        self.admin.change_current_realm(self.realm)
        found: list[dict[str, Any]] = []
        for user in self.admin.get_users({}):
            found.extend(self.admin.get_sessions(user["id"]))
        return found


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


@pytest.fixture(scope="module")
def broker(
    keycloak: KeycloakEndpoint, gateway: RunningGateway, site: PortalSite, zj: KeycloakRegion
) -> Iterator[Broker]:
    admin = _admin(keycloak)
    realm = f"broker-{uuid.uuid4().hex[:6]}"
    issuer = keycloak.issuer(realm)
    admin.create_realm({"realm": realm, "enabled": True})
    admin.change_current_realm(realm)
    try:
        # The gateway releases a name, not an email: no attribute the first broker login would
        # stop to ask for.
        profile = admin.get_realm_users_profile()
        for attribute in profile["attributes"]:
            if attribute["name"] in ("email", "firstName", "lastName"):
                attribute.pop("required", None)
        admin.update_realm_users_profile(profile)

        # The broker at the gateway: a confidential portal (as the README tells an integrator).
        portal = register_portal(
            gateway,
            site,
            "kc-broker",
            redirect_uris=[f"{issuer}/broker/{ALIAS}/endpoint"],
            post_logout_redirect_uris=[f"{issuer}/broker/{ALIAS}/endpoint/logout_response"],
            # The realm's own back-channel logout endpoint, for every identity provider of it
            # (the token's iss says which); Keycloak has none under /broker/<alias>.
            backchannel_logout_uri=f"{issuer}/protocol/openid-connect/logout/backchannel-logout",
            backchannel_logout_session_required=False,
        )
        imported = admin.connection.raw_post(
            f"admin/realms/{realm}/identity-provider/import-config",
            data=json.dumps(
                {
                    "providerId": "oidc",
                    "fromUrl": f"{gateway.issuer}/.well-known/openid-configuration",
                }
            ),
        )
        assert imported.status_code == 200, imported.text
        config = imported.json()
        assert config["issuer"] == gateway.issuer
        assert config["logoutUrl"] == f"{gateway.issuer}/logout"
        admin.create_idp(
            {
                "alias": ALIAS,
                "displayName": "全国统一身份认证",
                "providerId": "oidc",
                "enabled": True,
                "trustEmail": False,
                "config": config
                | {
                    "clientId": portal.client_id,
                    "clientSecret": portal.client_secret,
                    "clientAuthMethod": "client_secret_basic",
                    "defaultScope": "openid profile",
                    "pkceEnabled": "true",
                    "pkceMethod": "S256",
                    "validateSignature": "true",
                    "useJwksUrl": "true",
                    "backchannelSupported": "true",  # logout upstream from Keycloak's server
                    "sendIdTokenOnLogout": "true",
                    "syncMode": "IMPORT",
                },
            }
        )
        secret = secrets.token_urlsafe(24)
        redirect_uri = f"{site.base}/{APP}/callback"
        admin.create_client(
            {
                "clientId": APP,
                "secret": secret,
                "publicClient": False,
                "standardFlowEnabled": True,
                "directAccessGrantsEnabled": False,
                "redirectUris": [redirect_uri],
                "attributes": {
                    "pkce.code.challenge.method": "S256",
                    "post.logout.redirect.uris": f"{site.base}/{APP}/bye",
                },
            }
        )
        yield Broker(realm, issuer, admin, portal.client_id, secret, redirect_uri)
    finally:
        admin.change_current_realm("master")
        admin.delete_realm(realm)


def sign_in_through_the_broker(
    page: Page, broker: Broker, region: KeycloakRegion, site: PortalSite
) -> Any:
    """The broker's application signs the person in: Keycloak sends the browser to the gateway
    (``kc_idp_hint``), the person picks the region on the gateway's chooser and signs in there,
    and the browser comes back through Keycloak to the application."""
    extra = json.dumps({"kc_idp_hint": ALIAS})
    started = rp("authorize", broker.issuer, broker.app, broker.redirect_uri, "openid", extra)
    page.goto(started["url"])
    page.check(f"input[value={region.code}]")  # the gateway's chooser
    page.click("button[type=submit]")
    sign_in_at_keycloak(page, region)
    page.wait_for_url(f"{broker.redirect_uri}**")
    callback = site.last_visit(broker.redirect_uri)
    return rp("callback", broker.issuer, broker.app, callback, json.dumps(started["pending"]))


def gateway_session(gateway: RunningGateway, page: Page) -> SsoSession | None:
    cookies = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    if not cookies:
        return None
    return gateway.services.sessions.find(cookies[0]["value"], datetime.now(UTC))


def eventually(check: Callable[[], bool], seconds: float = 10) -> bool:
    """Keycloak ends sessions on its own threads: look again for a while."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_person_signs_in_through_the_broker_and_the_brokers_logout_ends_the_gateway_session(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, broker: Broker, page: Page
) -> None:
    tokens = sign_in_through_the_broker(page, broker, zj, site)
    assert tokens["claims"]["iss"] == broker.issuer
    assert tokens["claims"]["preferred_username"]
    session = gateway_session(gateway, page)
    assert session is not None
    assert session.region == "zj"
    assert broker.user_sessions()

    # The person signs out of the broker's application; Keycloak ends its session and, in its
    # back-channel mode, asks the gateway from its server with the gateway's ID token.
    bye = f"{site.base}/{APP}/bye"
    query = {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": bye}
    page.goto(f"{broker.issuer}/protocol/openid-connect/logout?{urlencode(query)}")
    page.wait_for_url(f"{bye}**")
    assert not broker.user_sessions()
    assert eventually(lambda: gateway_session(gateway, page) is None)


def test_a_logout_at_the_gateway_ends_the_brokers_session(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, broker: Broker, page: Page
) -> None:
    sign_in_through_the_broker(page, broker, zj, site)
    assert gateway_session(gateway, page) is not None
    assert broker.user_sessions()

    # The person signs out at the gateway (its confirmation page); the gateway's logout token,
    # with sub and no sid, reaches Keycloak's broker back-channel logout endpoint.
    page.goto(f"{gateway.issuer}/logout")
    page.click("form button[type=submit]")
    page.wait_for_load_state()
    assert gateway_session(gateway, page) is None
    assert eventually(lambda: not broker.user_sessions())
