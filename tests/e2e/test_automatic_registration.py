"""Automatic registration (OpenID Federation 1.0 §12.1), against the real servers: a new portal
joins the federation as a subordinate only (never through ``/admin/v1/portals``), serves its own
entity configuration over HTTPS on loopback (a test CA the gateway trusts through
``outbound_ca_file``) and signs a person in through openid-client 6.8.9
(``tests/peers/federated_rp.mjs``: a signed request object, RFC 9101, and ``private_key_jwt``),
Chromium and a Keycloak region; openid-client validates the ID token.

The refusals of §12.1 and RFC 9101 §6.3: an entity not chaining to the gateway, an expired
entity configuration, metadata breaking the policy, a request object not signed with the keys
of the resolved metadata, no request object, a replayed one, an entity identifier too long to
be a client id, and a token request signed with another key; each a page or an OAuth error,
never a 5xx.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from federation_fixtures import PortalEntity, node_peer
from gateway_fixtures import (
    KeycloakRegion,
    PortalSite,
    RunningGateway,
    sign_in_at_keycloak,
    start_gateway,
)
from joserfc import jws, jwt
from joserfc.jwk import ECKey
from playwright.sync_api import Page

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_sector_identifier import Tls, _certificates  # type: ignore[import-not-found]

HTML = {"Accept": "text/html,application/xhtml+xml"}
POLICY = {
    "openid_relying_party": {
        "token_endpoint_auth_method": {"one_of": ["private_key_jwt"]},
        "grant_types": {"subset_of": ["authorization_code", "refresh_token"]},
    }
}


class Entity(PortalEntity):
    """A portal of automatic registration on loopback (§12.1: ``client_registration_types``
    automatic)."""

    def __init__(self, tls: Tls, anchor: str, redirect_uri: str) -> None:
        super().__init__(
            tls.cert_file,
            tls.key_file,
            anchor,
            redirect_uri,
            client_name="杭州市民卡",
            scope="openid profile id_number",
            registration_type="automatic",
        )

    def credentials(self, key: ECKey | None = None, kid: str | None = None) -> str:
        """The client-json of ``federated_rp.mjs``: signing with ``key`` (the RP key)."""
        key = key or self.rp_key
        jwk = {**key.as_dict(private=True), "kid": kid or key.thumbprint(), "alg": "ES256"}
        return json.dumps({"client_id": self.entity_id, "jwk": jwk})

    def join(self, gateway: RunningGateway, name: str | None = None) -> None:
        """The platform records the entity as a subordinate (the federation endpoint only)."""
        self.record(gateway.admin, name or f"fed-{uuid.uuid4().hex[:8]}")


def federated_rp(command: str, gateway: RunningGateway, *args: str) -> Any:
    return node_peer("federated_rp.mjs", command, gateway.issuer, *args)


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
    made = Entity(tls, gateway.issuer, f"{site.base}/fed-{uuid.uuid4().hex[:6]}/callback")
    yield made
    made.close()


def authorize_page(gateway: RunningGateway, url: str) -> requests.Response:
    return requests.get(url, headers=HTML, allow_redirects=False, timeout=30)


def assert_error_page(response: requests.Response, code: str) -> None:
    """A page for the person (the error code shown), no redirect to an unverified URI."""
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert "Location" not in response.headers
    assert f"<code>{code}</code>" in response.text


def test_the_gateway_says_it_offers_automatic_registration(gateway: RunningGateway) -> None:
    """§5.1.3 ``client_registration_types_supported``; RFC 9101 §10.1 discovery."""
    discovery = requests.get(f"{gateway.issuer}/.well-known/openid-configuration", timeout=10)
    assert discovery.json()["request_parameter_supported"] is True
    assert "ES256" in discovery.json()["request_object_signing_alg_values_supported"]
    configuration = requests.get(f"{gateway.issuer}/.well-known/openid-federation", timeout=10)
    claims = json.loads(jws.extract_compact(configuration.text.encode()).payload)
    provider = claims["metadata"]["openid_provider"]
    assert provider["client_registration_types_supported"] == ["automatic"]


def test_a_new_portal_signs_in_by_automatic_registration(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page, entity: Entity
) -> None:
    entity.join(gateway)
    credentials = entity.credentials()
    started = federated_rp("authorize", gateway, credentials, entity.redirect_uri)
    query = parse_qs(urlsplit(started["url"]).query)
    assert set(query) == {"client_id", "request"}  # everything else is in the request object
    page.goto(started["url"])
    if page.locator(f"input[value={zj.code}]").count():
        page.check(f"input[value={zj.code}]")
        page.click("button[type=submit]")
        sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{entity.redirect_uri}**")
    callback = site.last_visit(entity.redirect_uri)
    tokens = federated_rp(
        "callback", gateway, credentials, callback, json.dumps(started["pending"])
    )
    claims = tokens["claims"]  # openid-client validated the ID token: iss, aud, nonce, signature
    assert claims["aud"] == entity.entity_id
    assert claims["iss"] == gateway.issuer
    assert tokens["scope"] == "openid profile"  # id_number is never served to such a portal
    info = federated_rp("userinfo", gateway, credentials, tokens["access_token"], claims["sub"])
    assert info["sub"] == claims["sub"]
    assert info["name"] == "三 张"
    # Pairwise, the sector being the entity identifier's host (OIDC Core §8.1).
    portal = gateway.services.registry.portal(entity.entity_id)
    assert portal is not None
    assert portal.subject_type == "pairwise"
    assert portal.sector_identifier == "127.0.0.1"
    # Nothing stored as a registration (§12.1).
    listed = gateway.admin("GET", "/portals").json()
    assert entity.entity_id not in json.dumps(listed)

    # The same request object a second time: used once (jti, RFC 9101 §10.8).
    assert_error_page(authorize_page(gateway, started["url"]), "invalid_request_object")


def test_an_entity_not_chaining_to_the_gateway_is_refused(
    gateway: RunningGateway, entity: Entity
) -> None:
    started = federated_rp("authorize", gateway, entity.credentials(), entity.redirect_uri)
    assert_error_page(authorize_page(gateway, started["url"]), "invalid_client")


def test_an_expired_entity_configuration_is_refused(
    gateway: RunningGateway, entity: Entity
) -> None:
    entity.lifetime = -10
    entity.join(gateway)
    started = federated_rp("authorize", gateway, entity.credentials(), entity.redirect_uri)
    assert_error_page(authorize_page(gateway, started["url"]), "invalid_client")


def test_metadata_breaking_the_policy_is_refused(gateway: RunningGateway, entity: Entity) -> None:
    entity.metadata["token_endpoint_auth_method"] = "client_secret_basic"
    entity.join(gateway)
    started = federated_rp("authorize", gateway, entity.credentials(), entity.redirect_uri)
    assert_error_page(authorize_page(gateway, started["url"]), "invalid_client")


@pytest.mark.parametrize("signer", ["federation-key", "stranger-with-the-rp-kid"])
def test_a_request_object_not_signed_with_the_resolved_keys_is_refused(
    gateway: RunningGateway, entity: Entity, signer: str
) -> None:
    """§12.1.1.1: signed with a key of the resolved ``openid_relying_party`` ``jwks``; the
    federation key (in the entity's chain, not its metadata) or a stranger is refused."""
    entity.join(gateway)
    if signer == "federation-key":
        credentials = entity.credentials(entity.federation_key)
    else:
        credentials = entity.credentials(ECKey.generate_key("P-256"), entity.rp_key.thumbprint())
    started = federated_rp("authorize", gateway, credentials, entity.redirect_uri)
    assert_error_page(authorize_page(gateway, started["url"]), "invalid_request_object")


def test_a_request_without_a_request_object_is_refused(
    gateway: RunningGateway, entity: Entity
) -> None:
    entity.join(gateway)
    params = {
        "client_id": entity.entity_id,
        "response_type": "code",
        "scope": "openid",
        "redirect_uri": entity.redirect_uri,
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    answer = requests.get(
        f"{gateway.issuer}/authorize",
        params=params,
        headers=HTML,
        allow_redirects=False,
        timeout=30,
    )
    assert_error_page(answer, "invalid_request")


def test_an_entity_identifier_too_long_for_a_client_id_is_refused(
    gateway: RunningGateway,
) -> None:
    params = {"client_id": "https://portal.example.cn/" + "a" * 250, "request": "x.y.z"}
    answer = requests.get(
        f"{gateway.issuer}/authorize",
        params=params,
        headers=HTML,
        allow_redirects=False,
        timeout=30,
    )
    assert_error_page(answer, "invalid_client")


def test_a_token_request_signed_with_another_key_is_invalid_client(
    gateway: RunningGateway, entity: Entity
) -> None:
    """§12.1: the token endpoint authenticates the RP with ``private_key_jwt`` against the keys
    of its resolved metadata (OIDC Core §9); RFC 6749 §5.2: ``invalid_client`` (400: no
    Authorization header was sent)."""
    entity.join(gateway)
    now = int(time.time())
    stranger = ECKey.generate_key("P-256")
    for key, kid in ((stranger, entity.rp_key.thumbprint()), (entity.federation_key, None)):
        assertion = jwt.encode(
            {"alg": "ES256", "kid": kid or key.thumbprint()},
            {
                "iss": entity.entity_id,
                "sub": entity.entity_id,
                "aud": gateway.issuer,
                "iat": now,
                "exp": now + 60,
                "jti": uuid.uuid4().hex,
            },
            key,
        )
        answer = requests.post(
            f"{gateway.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": "nothing",
                "redirect_uri": entity.redirect_uri,
                "client_id": entity.entity_id,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
            timeout=30,
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_client"
