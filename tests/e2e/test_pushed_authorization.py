"""Pushed authorization requests (RFC 9126, task P20), against the real servers: openid-client
6.8.9 (``tests/peers/par_rp.mjs``, ``buildAuthorizationUrlWithPAR``) pushes the request of a
confidential portal and of a portal of OpenID Federation automatic registration (§12.1.1.2: a
signed request object, ``private_key_jwt``), Chromium signs the person in at a Keycloak region,
openid-client validates the ID token.

The refusals: a ``request_uri`` used twice, expired, another portal's, or an https URL (never
fetched, THREAT_MODEL row 1), each a page (RFC 9126 §4: the redirect URI cannot be trusted);
at ``/par`` (JSON, RFC 9126 §2.3, never a redirect): no client authentication (401
``invalid_client``), an unregistered redirect URI, a ``request_uri``; a portal that must push
(§6) sending a plain request is refused.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from federation_fixtures import node_peer, serve_entity_configuration
from gateway_fixtures import (
    KeycloakRegion,
    Portal,
    PortalSite,
    RunningGateway,
    register_portal,
    sign_in_at_keycloak,
    start_gateway,
)
from joserfc import jwt
from playwright.sync_api import Page

from gateway.provider.oauth.authorization import REQUEST_URI_PREFIX, pushed_requests
from gateway.store.contract import token_hash
from gateway.store.contract.pushed_requests import PushedRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_automatic_registration import POLICY, Entity  # type: ignore[import-not-found]
from test_sector_identifier import Tls, _certificates  # type: ignore[import-not-found]

HTML = {"Accept": "text/html,application/xhtml+xml"}


def par_rp(command: str, gateway: RunningGateway, *args: str) -> Any:
    return node_peer("par_rp.mjs", command, gateway.issuer, *args)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return _certificates(tmp_path_factory.mktemp("tls"), ["127.0.0.1"], [])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, tls: Tls) -> Iterator[RunningGateway]:
    yield from start_gateway(
        tmp_path_factory.mktemp("gateway"),
        outbound_ca_file=tls.ca_file,
        federation_metadata_policy=POLICY,
        federation_automatic_registration=True,
    )


@pytest.fixture
def entity(tls: Tls, gateway: RunningGateway, site: PortalSite) -> Iterator[Entity]:
    made = Entity(tls, gateway.issuer, f"{site.base}/fed-{secrets.token_hex(3)}/callback")
    yield made
    made.close()


def credentials(portal: Portal) -> str:
    return json.dumps({"client_id": portal.client_id, "client_secret": portal.client_secret})


def push(portal: Portal, **parameters: str) -> requests.Response:
    """A pushed request as a portal sends it (client_secret_basic, PKCE S256)."""
    body = {
        "response_type": "code",
        "client_id": portal.client_id,
        "redirect_uri": portal.redirect_uri,
        "scope": "openid profile",
        "state": "s-1",
        "nonce": "n-1",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        **parameters,
    }
    auth = (portal.client_id, portal.client_secret)
    return requests.post(f"{portal.gateway.issuer}/par", data=body, auth=auth, timeout=10)


def authorize(gateway: RunningGateway, client_id: str, request_uri: str) -> requests.Response:
    query = urlencode({"client_id": client_id, "request_uri": request_uri})
    return requests.get(
        f"{gateway.issuer}/authorize?{query}", headers=HTML, allow_redirects=False, timeout=30
    )


def assert_error_page(response: requests.Response, code: str) -> None:
    """A page for the person (the error code shown), no redirect."""
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert "Location" not in response.headers
    assert f"<code>{code}</code>" in response.text


def assert_taken(response: requests.Response) -> None:
    """The pushed request was taken: the sign-in goes on (the chooser or the region)."""
    assert response.status_code in (200, 302, 303), (response.status_code, response.text[:300])
    assert "invalid_request_uri" not in response.text


def sign_in(page: Page, url: str, region: KeycloakRegion, redirect_uri: str) -> None:
    page.goto(url)
    if page.locator(f"input[value={region.code}]").count():
        page.check(f"input[value={region.code}]")
        page.click("button[type=submit]")
        sign_in_at_keycloak(page, region)
    page.wait_for_url(f"{redirect_uri}**")


def test_discovery_names_the_par_endpoint(gateway: RunningGateway) -> None:
    """RFC 9126 §5."""
    metadata = requests.get(f"{gateway.issuer}/.well-known/openid-configuration", timeout=10)
    assert metadata.json()["pushed_authorization_request_endpoint"] == f"{gateway.issuer}/par"
    assert metadata.json()["require_pushed_authorization_requests"] is False


def test_a_confidential_portal_pushes_its_request_and_the_request_uri_is_used_once(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "par")
    started = par_rp("authorize", gateway, credentials(portal), portal.redirect_uri)
    query = parse_qs(urlsplit(started["url"]).query)
    assert set(query) == {"client_id", "request_uri"}  # RFC 9126 §4: nothing else
    assert query["request_uri"][0].startswith(REQUEST_URI_PREFIX)
    sign_in(page, started["url"], zj, portal.redirect_uri)
    callback = site.last_visit(portal.redirect_uri)
    tokens = par_rp(
        "callback", gateway, credentials(portal), callback, json.dumps(started["pending"])
    )
    assert tokens["claims"]["aud"] == portal.client_id  # openid-client checked nonce, iss, sig
    assert tokens["scope"] == "openid profile"
    # RFC 9126 §4: one-time use.
    assert_error_page(requests.get(started["url"], headers=HTML, timeout=30), "invalid_request_uri")


def test_a_portal_of_automatic_registration_pushes_a_signed_request(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page, entity: Entity
) -> None:
    """OpenID Federation 1.0 §12.1.1.2: private_key_jwt and a request object at /par."""
    entity.join(gateway)
    client = entity.credentials()
    started = par_rp("authorize", gateway, client, entity.redirect_uri)
    assert set(parse_qs(urlsplit(started["url"]).query)) == {"client_id", "request_uri"}
    sign_in(page, started["url"], zj, entity.redirect_uri)
    callback = site.last_visit(entity.redirect_uri)
    tokens = par_rp("callback", gateway, client, callback, json.dumps(started["pending"]))
    assert tokens["claims"]["aud"] == entity.entity_id
    assert tokens["claims"]["iss"] == gateway.issuer


def assertion(entity: Entity, audience: str | list[str]) -> str:
    """A ``private_key_jwt`` client assertion (OIDC Core §9) signed with the entity's RP key."""
    now = int(time.time())
    claims = {
        "iss": entity.entity_id,
        "sub": entity.entity_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + 60,
    }
    header = {"alg": "ES256", "kid": entity.rp_key.thumbprint()}
    return jwt.encode(header, claims, entity.rp_key)


def test_a_portal_of_automatic_registration_pushes_a_request_object_with_the_ops_audience(
    gateway: RunningGateway, entity: Entity
) -> None:
    """§12.1.1.1 and §12.1.1.2.1 at /par: plain parameters are refused, and an assertion whose
    aud holds more than the OP's entity identifier; in JSON, never a redirect."""
    entity.join(gateway)
    plain = {
        "response_type": "code",
        "client_id": entity.entity_id,
        "redirect_uri": entity.redirect_uri,
        "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    answer = requests.post(
        f"{gateway.issuer}/par",
        data={**plain, "client_assertion": assertion(entity, gateway.issuer)},
        timeout=10,
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request"
    assert "Location" not in answer.headers
    wide = requests.post(
        f"{gateway.issuer}/par",
        data={
            **plain,
            "client_assertion": assertion(entity, [gateway.issuer, f"{gateway.issuer}/token"]),
        },
        timeout=10,
    )
    assert wide.status_code == 401, wide.text
    assert wide.json()["error"] == "invalid_client"


def test_another_portals_request_uri_is_refused_and_left_to_its_owner(
    gateway: RunningGateway, site: PortalSite
) -> None:
    owner = register_portal(gateway, site, "owner")
    other = register_portal(gateway, site, "other")
    pushed = push(owner)
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["Cache-Control"] == "no-store"
    body = pushed.json()
    assert body["expires_in"] == 60
    reference = body["request_uri"]
    assert len(reference) >= len(REQUEST_URI_PREFIX) + 22  # 128 bits at least, base64url
    assert_error_page(authorize(gateway, other.client_id, reference), "invalid_request_uri")
    assert_taken(authorize(gateway, owner.client_id, reference))
    assert_error_page(authorize(gateway, owner.client_id, reference), "invalid_request_uri")


def test_an_expired_request_uri_is_refused(gateway: RunningGateway, site: PortalSite) -> None:
    portal = register_portal(gateway, site, "expired")
    reference = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
    now = gateway.services.clock()
    pushed_requests(gateway.services.store).save_pushed_request(
        PushedRequest(
            reference_hash=token_hash(reference),
            client_id=portal.client_id,
            parameters={
                "response_type": "code",
                "client_id": portal.client_id,
                "redirect_uri": portal.redirect_uri,
                "scope": "openid",
            },
            expires_at=now - timedelta(seconds=1),
        )
    )
    assert_error_page(authorize(gateway, portal.client_id, reference), "invalid_request_uri")


def test_an_https_request_uri_is_never_fetched(
    gateway: RunningGateway, site: PortalSite, tls: Tls
) -> None:
    portal = register_portal(gateway, site, "fetch")
    fetched: list[str] = []

    def answer() -> str:
        fetched.append("fetched")
        return "eyJhbGciOiJub25lIn0.e30."

    server, base = serve_entity_configuration(tls.cert_file, tls.key_file, answer)
    try:
        url = f"{base}/.well-known/openid-federation"
        assert requests.get(url, verify=str(tls.ca_file), timeout=10).status_code == 200
        fetched.clear()  # the server answers; the gateway must not ask it
        assert_error_page(authorize(gateway, portal.client_id, url), "invalid_request_uri")
    finally:
        server.shutdown()
        server.server_close()
    assert fetched == []


def test_par_without_client_authentication_is_invalid_client(
    gateway: RunningGateway, site: PortalSite
) -> None:
    portal = register_portal(gateway, site, "noauth")
    answer = requests.post(
        f"{gateway.issuer}/par",
        data={
            "response_type": "code",
            "client_id": portal.client_id,
            "redirect_uri": portal.redirect_uri,
            "scope": "openid",
        },
        timeout=10,
    )
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_client"
    wrong = requests.post(
        f"{gateway.issuer}/par",
        data={"response_type": "code", "redirect_uri": portal.redirect_uri, "scope": "openid"},
        auth=(portal.client_id, "not-the-secret"),
        timeout=10,
    )
    assert wrong.status_code == 401, wrong.text
    assert wrong.json()["error"] == "invalid_client"


def test_par_refuses_an_unregistered_redirect_uri_and_a_request_uri_in_json(
    gateway: RunningGateway, site: PortalSite
) -> None:
    portal = register_portal(gateway, site, "badpar")
    unregistered = push(portal, redirect_uri=f"{site.base}/elsewhere/callback")
    assert unregistered.status_code == 400, unregistered.text
    assert "Location" not in unregistered.headers
    assert unregistered.json()["error"] == "invalid_request"
    nested = push(portal, request_uri=REQUEST_URI_PREFIX + "x")
    assert nested.status_code == 400, nested.text
    assert nested.json()["error"] == "invalid_request"
    no_pkce = push(portal, code_challenge_method="plain")
    assert no_pkce.status_code == 400, no_pkce.text
    assert no_pkce.json()["error"] == "invalid_request"
    bad_claims = push(portal, claims="{not json")
    assert bad_claims.status_code == 400, bad_claims.text
    assert bad_claims.json()["error"] == "invalid_request"


def test_a_portal_that_must_push_is_refused_a_plain_request(
    gateway: RunningGateway, site: PortalSite
) -> None:
    """RFC 9126 §6: ``require_pushed_authorization_requests`` in the portal's registration."""
    portal = register_portal(gateway, site, "mustpush", require_pushed_authorization_requests=True)
    started = portal.start()
    plain = requests.get(started["url"], headers=HTML, allow_redirects=False, timeout=30)
    assert plain.status_code in (302, 303), plain.text[:300]
    answered = plain.headers["Location"]
    assert answered.startswith(portal.redirect_uri)
    assert "error=invalid_request" in answered
    assert "code=" not in answered
    pushed = push(portal)
    assert pushed.status_code == 201, pushed.text
    assert_taken(authorize(gateway, portal.client_id, pushed.json()["request_uri"]))


def test_a_public_native_app_pushes_with_its_client_id(
    gateway: RunningGateway, site: PortalSite
) -> None:
    """RFC 9126 §2 with RFC 8252 §8.5: a public client names itself; PKCE stays required."""
    app = register_portal(gateway, site, "native", application_type="native")
    body = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": app.redirect_uri,
        "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    pushed = requests.post(f"{gateway.issuer}/par", data=body, timeout=10)
    assert pushed.status_code == 201, pushed.text
    assert_taken(authorize(gateway, app.client_id, pushed.json()["request_uri"]))
    without_pkce = {k: v for k, v in body.items() if not k.startswith("code_challenge")}
    refused = requests.post(f"{gateway.issuer}/par", data=without_pkce, timeout=10)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_request"


@pytest.fixture(scope="module")
def strict_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    yield from start_gateway(
        tmp_path_factory.mktemp("strict"), require_pushed_authorization_requests=True
    )


def test_the_platform_may_require_pushed_requests_of_every_portal(
    strict_gateway: RunningGateway, site: PortalSite
) -> None:
    """RFC 9126 §5 (``require_pushed_authorization_requests`` in discovery), §6."""
    metadata = requests.get(
        f"{strict_gateway.issuer}/.well-known/openid-configuration", timeout=10
    ).json()
    assert metadata["require_pushed_authorization_requests"] is True
    portal = register_portal(strict_gateway, site, "strict")
    plain = requests.get(portal.start()["url"], headers=HTML, allow_redirects=False, timeout=30)
    assert plain.status_code in (302, 303), plain.text[:300]
    assert "error=invalid_request" in plain.headers["Location"]
    pushed = push(portal)
    assert pushed.status_code == 201, pushed.text
    assert_taken(authorize(strict_gateway, portal.client_id, pushed.json()["request_uri"]))
