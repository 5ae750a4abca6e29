"""Explicit registration (OpenID Federation 1.0 §12.2), against the real servers: a new portal
joins the federation as a subordinate only (never through ``/admin/v1/portals``), POSTs its
entity configuration (served on loopback too, its entity identifier an https URL the platform
records) to ``/federation/register``, checks the signed response with ``jose``
(``tests/peers/explicit_rp.mjs``) against the gateway's federation keys, and signs a person in
through openid-client 6.8.9 with the assigned ``client_id`` and ``private_key_jwt``, in
Chromium, with a Keycloak region.

The refusals of §12.2.4 (§8.9, RFC 7591 §3.2.2): a configuration signed with a key not in the
anchor's subordinate statement, an entity unknown to the anchor, an expired configuration, an
``aud`` that is not the OP, metadata breaking the policy, metadata the OP does not register, a
garbage body or content type, a chain to another anchor; the endpoint off is ``not_found``.
Never a 5xx.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

from gateway.federation.explicit import ExplicitRegistration
from gateway.federation.statements import ENTITY_STATEMENT_TYP
from gateway.registry import Registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_sector_identifier import Tls, _certificates  # type: ignore[import-not-found]

POLICY = {
    "openid_relying_party": {
        "token_endpoint_auth_method": {"one_of": ["private_key_jwt"]},
        "grant_types": {"subset_of": ["authorization_code", "refresh_token"]},
    }
}
EC = "application/entity-statement+jwt"
CHAIN = "application/trust-chain+json"


class Entity(PortalEntity):
    """A portal of explicit registration: its entity configuration is for the OP (§12.2.1:
    ``aud``, ``client_registration_types`` explicit) and lists the key it is signed with."""

    def __init__(self, tls: Tls, gateway: RunningGateway, redirect_uri: str) -> None:
        super().__init__(
            tls.cert_file,
            tls.key_file,
            gateway.issuer,
            redirect_uri,
            client_name="宁波市民卡",
            scope="openid profile",
            registration_type="explicit",
            aud=gateway.issuer,
        )
        self.gateway = gateway

    def own_key(self) -> ECKey:
        return self.signing_key

    def join(self) -> None:
        """The platform records the entity as a portal subordinate with its federation key."""
        self.record(self.gateway.admin, self.key)

    key = ""

    def register(self, body: str | None = None, media_type: str = EC) -> requests.Response:
        return requests.post(
            f"{self.gateway.issuer}/federation/register",
            data=(body if body is not None else self.entity_configuration()).encode(),
            headers={"Content-Type": media_type},
            timeout=30,
        )

    def credentials(self, client_id: str) -> str:
        jwk = {**self.rp_key.as_dict(private=True), "kid": self.rp_key.thumbprint(), "alg": "ES256"}
        return json.dumps({"client_id": client_id, "jwk": jwk})


def explicit_rp(command: str, issuer: str, *args: str) -> Any:
    return node_peer("explicit_rp.mjs", command, issuer, *args)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return _certificates(tmp_path_factory.mktemp("tls"), ["127.0.0.1"], [])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, tls: Tls) -> Iterator[RunningGateway]:
    yield from start_gateway(
        tmp_path_factory.mktemp("gateway"),
        outbound_ca_file=tls.ca_file,
        federation_metadata_policy=POLICY,
        federation_explicit_registration=True,
    )


@pytest.fixture
def entity(tls: Tls, gateway: RunningGateway, site: PortalSite) -> Iterator[Entity]:
    made = Entity(tls, gateway, f"{site.base}/xr-{uuid.uuid4().hex[:6]}/callback")
    made.key = f"xr-{uuid.uuid4().hex[:8]}"
    yield made
    made.close()


def federation_jwks(gateway: RunningGateway) -> str:
    """The anchor's federation keys, from its entity configuration (§9)."""
    answer = requests.get(f"{gateway.issuer}/.well-known/openid-federation", timeout=10)
    return json.dumps(json.loads(jws.extract_compact(answer.text.encode()).payload)["jwks"])


def assert_refused(answer: requests.Response, code: str, status: int = 400) -> None:
    assert answer.status_code == status, (answer.status_code, answer.text[:300])
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json()["error"] == code, answer.text[:300]


def test_the_gateway_says_it_offers_explicit_registration(gateway: RunningGateway) -> None:
    """§5.1.3 ``federation_registration_endpoint``, ``client_registration_types_supported``:
    in the discovery document and in the entity configuration's ``openid_provider`` metadata."""
    discovery = requests.get(f"{gateway.issuer}/.well-known/openid-configuration", timeout=10)
    assert discovery.json()["client_registration_types_supported"] == ["explicit"]
    endpoint = discovery.json()["federation_registration_endpoint"]
    assert endpoint == f"{gateway.issuer}/federation/register"
    configuration = requests.get(f"{gateway.issuer}/.well-known/openid-federation", timeout=10)
    provider = json.loads(jws.extract_compact(configuration.text.encode()).payload)["metadata"][
        "openid_provider"
    ]
    assert provider["client_registration_types_supported"] == ["explicit"]
    assert provider["federation_registration_endpoint"] == endpoint


def test_a_new_portal_registers_explicitly_and_signs_in(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page, entity: Entity
) -> None:
    entity.join()
    posted = entity.entity_configuration()
    answer = entity.register(posted)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/explicit-registration-response+jwt"
    checked = explicit_rp(
        "verify", gateway.issuer, federation_jwks(gateway), answer.text, entity.entity_id
    )
    claims, header = checked["payload"], checked["header"]
    assert header["typ"] == "explicit-registration-response+jwt"
    assert claims["trust_anchor"] == gateway.issuer
    assert claims["authority_hints"] == [gateway.issuer]
    assert claims["exp"] <= json.loads(jws.extract_compact(posted.encode()).payload)["exp"]
    assert claims["jwks"] == {"keys": [entity.public(entity.federation_key)]}
    registered = claims["metadata"]["openid_relying_party"]
    client_id = registered["client_id"]
    assert client_id.startswith("fedreg:")
    assert registered["token_endpoint_auth_method"] == "private_key_jwt"
    assert registered["redirect_uris"] == [entity.redirect_uri]

    credentials = entity.credentials(client_id)
    started = explicit_rp("authorize", gateway.issuer, credentials, entity.redirect_uri)
    page.goto(started["url"])
    if page.locator(f"input[value={zj.code}]").count():
        page.check(f"input[value={zj.code}]")
        page.click("button[type=submit]")
        sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{entity.redirect_uri}**")
    callback = site.last_visit(entity.redirect_uri)
    tokens = explicit_rp(
        "callback", gateway.issuer, credentials, callback, json.dumps(started["pending"])
    )
    assert tokens["claims"]["aud"] == client_id  # openid-client validated the ID token
    info = explicit_rp(
        "userinfo", gateway.issuer, credentials, tokens["access_token"], tokens["claims"]["sub"]
    )
    assert info["sub"] == tokens["claims"]["sub"]
    # Kept in the store, not in this process: a registry built afresh finds it (a restart,
    # another replica).
    services = gateway.services
    assert services.federation is not None
    fresh = ExplicitRegistration(services.federation, Registry(services.store), services.store)
    found = fresh.portal(client_id)
    assert found is not None
    assert found.jwks == {"keys": [entity.public(entity.rp_key)]}


def test_re_registration_after_a_key_change_takes_the_new_keys(
    gateway: RunningGateway, entity: Entity
) -> None:
    entity.join()
    first = entity.register()
    assert first.status_code == 200, first.text
    old_client = json.loads(jws.extract_compact(first.text.encode()).payload)["metadata"][
        "openid_relying_party"
    ]["client_id"]
    assert gateway.services.registry.portal(old_client) is not None
    # The platform re-keys the subordinate: the registration made with the old keys ends.
    old_key = entity.federation_key
    entity.federation_key = entity.signing_key = ECKey.generate_key("P-256")
    entity.rp_key = ECKey.generate_key("P-256")
    entity.metadata["jwks"] = {"keys": [entity.public(entity.rp_key)]}
    entity.join()
    assert gateway.services.registry.portal(old_client) is None
    entity.signing_key = old_key  # the old key no longer registers
    assert_refused(entity.register(), "invalid_trust_chain")
    entity.signing_key = entity.federation_key
    second = entity.register()
    assert second.status_code == 200, second.text
    registered = json.loads(jws.extract_compact(second.text.encode()).payload)["metadata"][
        "openid_relying_party"
    ]
    assert registered["client_id"] != old_client
    portal = gateway.services.registry.portal(registered["client_id"])
    assert portal is not None
    assert portal.jwks == {"keys": [entity.public(entity.rp_key)]}


def test_a_trust_chain_body_registers_and_another_anchor_is_refused(
    gateway: RunningGateway, entity: Entity
) -> None:
    """§12.2.1: ``application/trust-chain+json``, the entity's configuration first."""
    entity.join()
    statement = requests.get(
        f"{gateway.issuer}/federation/fetch", params={"sub": entity.entity_id}, timeout=10
    ).text
    anchor = requests.get(f"{gateway.issuer}/.well-known/openid-federation", timeout=10).text
    chain = [entity.entity_configuration(), statement, anchor]
    answer = entity.register(json.dumps(chain), CHAIN)
    assert answer.status_code == 200, answer.text
    other = ECKey.generate_key("P-256")
    foreign = jwt.encode(
        {"alg": "ES256", "kid": "x", "typ": ENTITY_STATEMENT_TYP},
        {"iss": "https://other.example", "sub": "https://other.example", "iat": 1, "exp": 2},
        other,
    )
    refused = entity.register(json.dumps([entity.entity_configuration(), foreign]), CHAIN)
    assert_refused(refused, "invalid_trust_anchor", 404)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("key-not-in-the-subordinate-statement", "invalid_trust_chain"),
        ("unknown-entity", "invalid_trust_chain"),
        ("expired", "invalid_trust_chain"),
        ("wrong-aud", "invalid_request"),
        ("aud-with-another-value", "invalid_request"),
        ("policy-violation", "invalid_metadata"),
        ("not-for-explicit-registration", "invalid_client_metadata"),
        ("garbage-body", "invalid_request"),
        ("garbage-chain", "invalid_request"),
        ("json-content-type", "invalid_request"),
    ],
)
def test_refusals(gateway: RunningGateway, entity: Entity, case: str, code: str) -> None:
    """§12.2.4: the §8.9 / RFC 7591 §3.2.2 error, JSON, never a 5xx; nothing registered."""
    if case != "unknown-entity":
        entity.join()
    body: str | None = None
    media_type = EC
    if case == "key-not-in-the-subordinate-statement":
        # Self-consistent (its own jwks lists the key that signs it), but the anchor's
        # subordinate statement names another key (§10.2).
        entity.signing_key = ECKey.generate_key("P-256")
    elif case == "expired":
        entity.lifetime = -10
    elif case == "wrong-aud":
        entity.aud = "https://another-op.example"
    elif case == "aud-with-another-value":
        entity.aud = [gateway.issuer, "https://another-op.example"]
    elif case == "policy-violation":
        entity.metadata["token_endpoint_auth_method"] = "client_secret_basic"
    elif case == "not-for-explicit-registration":
        entity.metadata["client_registration_types"] = ["automatic"]
    elif case == "garbage-body":
        body = "not.a.jws"
    elif case == "garbage-chain":
        body, media_type = "{not json", CHAIN
    elif case == "json-content-type":
        media_type = "application/json"
    assert_refused(entity.register(body, media_type), code)
    stored = gateway.services.store
    assert stored.delete_federation_registrations(entity.entity_id) == 0


def test_the_endpoint_is_not_found_when_off(
    tmp_path_factory: pytest.TempPathFactory, tls: Tls
) -> None:
    for off in start_gateway(tmp_path_factory.mktemp("off"), outbound_ca_file=tls.ca_file):
        discovery = requests.get(f"{off.issuer}/.well-known/openid-configuration", timeout=10)
        assert "federation_registration_endpoint" not in discovery.json()
        answer = requests.post(
            f"{off.issuer}/federation/register",
            data=b"x.y.z",
            headers={"Content-Type": EC},
            timeout=10,
        )
        assert_refused(answer, "not_found", 404)
