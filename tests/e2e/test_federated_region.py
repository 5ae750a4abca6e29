"""The gateway as relying party of a federated region (issue 17; OpenID Federation 1.0 §5.1.3,
§10), against the real servers: a Keycloak realm whose issuer is its entity identifier, on
https (the realm's ``frontendUrl`` names a TLS front on loopback, :class:`TlsFront`, which also
serves the realm's entity configuration, signed by the region's federation key). The platform
records the region as a subordinate and registers it with ``metadata_from: "federation"``: the
gateway never reads the realm's discovery document, it resolves the region's trust chain. A
citizen signs in through it to a portal (Chromium, openid-client validates the ID token).

The refusals: an entity configuration signed with a key the subordinate statement does not list
(the gateway then calls none of the endpoints it names), metadata breaking the platform's
policy, a region not recorded as a subordinate, an ``issuer`` other than the entity identifier;
each the page of an unavailable region (``region_not_trusted``), never a 5xx.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from federation_fixtures import TlsFront
from gateway_fixtures import (
    KeycloakRegion,
    PortalSite,
    RunningGateway,
    keycloak_region,
    register_portal,
    sign_in_at_keycloak,
    start_gateway,
)
from joserfc import jwt
from joserfc.jwk import ECKey
from playwright.sync_api import Browser, Page
from tongxing_dev.keycloak import KeycloakEndpoint

from gateway.federation.statements import ENTITY_STATEMENT_TYP

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_sector_identifier import Tls, _certificates  # type: ignore[import-not-found]

HTML = {"Accept": "text/html,application/xhtml+xml"}
#: The platform's policy for regions: PKCE with S256 (§6.1.3.1.6 superset_of, essential).
POLICY = {
    "openid_provider": {
        "code_challenge_methods_supported": {"superset_of": ["S256"], "essential": True},
    }
}
CODE = "fj"


def public(key: ECKey) -> dict[str, Any]:
    return {**key.as_dict(private=False), "kid": key.thumbprint(), "alg": "ES256"}


class FederatedRealm:
    """The realm behind its https front, and the region's federation entity (§9)."""

    def __init__(self, tls: Tls, keycloak: KeycloakEndpoint, region: KeycloakRegion) -> None:
        self.region = region
        self.front = TlsFront(tls.cert_file, tls.key_file, keycloak.url)
        prefix = urlsplit(keycloak.url).path.rstrip("/")
        region.admin.change_current_realm(region.realm)
        region.admin.update_realm(
            region.realm, {"attributes": {"frontendUrl": self.front.base + prefix}}
        )
        self.entity_id = f"{self.front.base}{prefix}/realms/{region.realm}"
        # The realm's own discovery, read once here (never by the gateway): what it serves.
        discovery = requests.get(
            f"{keycloak.url}/realms/{region.realm}/.well-known/openid-configuration",
            timeout=10,
        ).json()
        assert discovery["issuer"] == self.entity_id, discovery["issuer"]
        self.provider = {
            name: discovery[name]
            for name in (
                "issuer",
                "authorization_endpoint",
                "token_endpoint",
                "jwks_uri",
                "userinfo_endpoint",
                "end_session_endpoint",
                "code_challenge_methods_supported",
                "token_endpoint_auth_methods_supported",
                "authorization_response_iss_parameter_supported",
            )
            if name in discovery
        }
        self.federation_key = ECKey.generate_key("P-256")
        self.reset()
        well_known = urlsplit(self.entity_id).path + "/.well-known/openid-federation"
        self.front.statements[well_known] = self.entity_configuration

    def reset(self) -> None:
        self.signing_key = self.federation_key
        self.metadata: dict[str, Any] = {
            **self.provider,
            "client_registration_types_supported": ["automatic"],
        }

    def entity_configuration(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.entity_id,
            "sub": self.entity_id,
            "iat": now,
            "exp": now + 3600,
            # The entity's own keys: the signing key always among them (§3), so only the
            # subordinate statement tells a right key from a wrong one.
            "jwks": {"keys": [public(self.signing_key)]},
            "authority_hints": [self.anchor],
            "metadata": {"openid_provider": self.metadata},
        }
        header = {"alg": "ES256", "kid": self.signing_key.thumbprint(), "typ": ENTITY_STATEMENT_TYP}
        return jwt.encode(header, claims, self.signing_key)

    anchor = ""

    def upstream_calls(self) -> list[str]:
        """What the front forwarded to the realm (its endpoints), well-known paths aside."""
        return [path for path in self.front.forwarded if "/.well-known/" not in path]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return _certificates(tmp_path_factory.mktemp("tls"), ["127.0.0.1"], [])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, tls: Tls) -> Iterator[RunningGateway]:
    # The broker's own pool (token endpoint, jwks_uri) trusts outbound_ca_file too.
    yield from start_gateway(
        tmp_path_factory.mktemp("gateway"),
        outbound_ca_file=tls.ca_file,
        federation_metadata_policy=POLICY,
    )


@pytest.fixture(scope="module")
def realm(
    keycloak: KeycloakEndpoint, gateway: RunningGateway, tls: Tls
) -> Iterator[FederatedRealm]:
    region = keycloak_region(keycloak, gateway, CODE)  # a realm and its client "tongxing"
    made = FederatedRealm(tls, keycloak, region)
    made.anchor = gateway.issuer
    client = region.admin.get_client_id("tongxing")
    assert client is not None
    secret = region.admin.get_client_secrets(client)["value"]
    # Registered again: by its entity identifier, its metadata from the federation.
    answer = gateway.admin(
        "PUT",
        f"/regions/{CODE}",
        {
            "names": {"zh": "福建", "en": "Fujian"},
            "kind": "province",
            "issuer": made.entity_id,
            "metadata_from": "federation",
            "client_id": "tongxing",
            "client_secret": secret,
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata_from"] == "federation"
    yield made
    made.front.close()
    region.admin.change_current_realm("master")
    region.admin.delete_realm(region.realm)


@pytest.fixture
def fresh(gateway: RunningGateway, realm: FederatedRealm) -> FederatedRealm:
    """The realm as it should be, recorded as a subordinate, nothing cached for it."""
    realm.reset()
    join(gateway, realm, realm.federation_key)
    forget(gateway)
    realm.front.forwarded.clear()
    return realm


def join(gateway: RunningGateway, realm: FederatedRealm, key: ECKey) -> None:
    answer = gateway.admin(
        "PUT",
        f"/federation/subordinates/region/{CODE}",
        {"entity_id": realm.entity_id, "jwks": {"keys": [public(key)]}},
    )
    assert answer.status_code == 200, answer.text


def forget(gateway: RunningGateway) -> None:
    region = gateway.services.registry.region(CODE)
    assert region is not None
    gateway.services.regions.forget(region)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="zh-CN", ignore_https_errors=True)  # the test CA
    yield context.new_page()
    context.close()


def refused(gateway: RunningGateway, site: PortalSite, realm: FederatedRealm) -> None:
    """The sign-in stops at the gateway with the unavailable region's page, never a 5xx, and
    the gateway called none of the realm's endpoints."""
    portal = register_portal(gateway, site, f"refused-{uuid.uuid4().hex[:4]}")
    started = portal.start("openid profile", region=CODE)
    answer = requests.get(started["url"], headers=HTML, allow_redirects=False, timeout=30)
    assert answer.status_code == 400, (answer.status_code, answer.text[:300])
    assert "Location" not in answer.headers
    assert "region_not_trusted" in answer.text
    assert "该地区的身份认证服务暂时无法访问" in answer.text  # the unavailable region's page
    assert realm.upstream_calls() == []


def test_a_citizen_signs_in_through_a_federated_region(
    gateway: RunningGateway, fresh: FederatedRealm, site: PortalSite, page: Page
) -> None:
    portal = register_portal(gateway, site, "fed-region")
    started = portal.start("openid profile", region=CODE)
    page.goto(started["url"])
    sign_in_at_keycloak(page, fresh.region)
    page.wait_for_url(f"{portal.redirect_uri}**")
    claims = portal.finish(site.last_visit(portal.redirect_uri), started)["claims"]
    assert claims["iss"] == gateway.issuer
    assert claims["name"] == "三 张"
    # Resolved through the chain: the realm's discovery document was never asked for.
    assert not [p for p in fresh.front.forwarded if p.endswith("/openid-configuration")]
    assert any(p.endswith("/token") for p in fresh.front.forwarded)


def test_a_configuration_signed_with_a_key_not_in_the_subordinate_statement_is_refused(
    gateway: RunningGateway, fresh: FederatedRealm, site: PortalSite
) -> None:
    fresh.signing_key = ECKey.generate_key("P-256")  # self-consistent, but not the recorded key
    refused(gateway, site, fresh)


def test_metadata_breaking_the_platform_policy_is_refused(
    gateway: RunningGateway, fresh: FederatedRealm, site: PortalSite
) -> None:
    fresh.metadata["code_challenge_methods_supported"] = ["plain"]
    refused(gateway, site, fresh)


def test_an_issuer_other_than_the_entity_identifier_is_refused(
    gateway: RunningGateway, fresh: FederatedRealm, site: PortalSite
) -> None:
    fresh.metadata["issuer"] = fresh.entity_id + "-elsewhere"
    refused(gateway, site, fresh)


def test_a_region_not_recorded_as_a_subordinate_is_refused(
    gateway: RunningGateway, fresh: FederatedRealm, site: PortalSite
) -> None:
    answer = gateway.admin("DELETE", f"/federation/subordinates/region/{CODE}")
    assert answer.status_code == 204, answer.text
    refused(gateway, site, fresh)


def test_re_keying_the_subordinate_takes_effect_at_once(
    gateway: RunningGateway, fresh: FederatedRealm, site: PortalSite, page: Page
) -> None:
    """A resolved chain is cached; the platform re-keying the region is seen at the next
    sign-in, without waiting for the chain's exp."""
    portal = register_portal(gateway, site, "fed-rekey")
    started = portal.start("openid profile", region=CODE)
    first = requests.get(started["url"], allow_redirects=False, timeout=30)
    assert first.status_code in (302, 303), first.text[:300]
    assert first.headers["Location"].startswith(fresh.entity_id)
    join(gateway, fresh, ECKey.generate_key("P-256"))  # the platform records another key
    fresh.front.forwarded.clear()
    refused(gateway, site, fresh)


def test_keys_by_value_in_the_metadata_are_used_without_jwks_uri(
    gateway: RunningGateway, fresh: FederatedRealm, site: PortalSite, page: Page, tls: Tls
) -> None:
    """``jwks`` in the resolved metadata (§5.2.1 allows it by value): the gateway verifies the
    ID token with it and never asks the realm's JWK Set."""
    certs = requests.get(fresh.provider["jwks_uri"], verify=str(tls.ca_file), timeout=10).json()
    fresh.front.forwarded.clear()  # the test's own fetch
    fresh.metadata.pop("jwks_uri")
    fresh.metadata["jwks"] = {"keys": [k for k in certs["keys"] if k.get("use") == "sig"]}
    portal = register_portal(gateway, site, "fed-jwks")
    started = portal.start("openid profile", region=CODE)
    page.goto(started["url"])
    sign_in_at_keycloak(page, fresh.region)
    page.wait_for_url(f"{portal.redirect_uri}**")
    claims = portal.finish(site.last_visit(portal.redirect_uri), started)["claims"]
    assert claims["name"] == "三 张"
    assert not [p for p in fresh.front.forwarded if p.endswith("/certs")]


def signed_jwks(realm: FederatedRealm, keys: list[dict[str, Any]], signer: ECKey) -> str:
    """A Signed JWK Set (§5.2.1): ``iss`` the entity, the protocol keys, signed by ``signer``."""
    now = int(time.time())
    claims = {"iss": realm.entity_id, "iat": now, "exp": now + 3600, "keys": keys}
    header = {"alg": "ES256", "kid": signer.thumbprint(), "typ": "jwk-set+jwt"}
    return jwt.encode(header, claims, signer)


def serve_signed_jwks(realm: FederatedRealm, tls: Tls, signer: ECKey) -> None:
    """The realm's metadata names a ``signed_jwks_uri`` (on the front) in place of
    ``jwks_uri``: its signing keys, signed by ``signer``."""
    certs = requests.get(realm.provider["jwks_uri"], verify=str(tls.ca_file), timeout=10).json()
    keys = [k for k in certs["keys"] if k.get("use") == "sig"]
    path = urlsplit(realm.entity_id).path + "/signed-jwks"
    realm.front.statements[path] = lambda: signed_jwks(realm, keys, signer)
    realm.front.forwarded.clear()  # the test's own fetch
    realm.metadata.pop("jwks_uri")
    realm.metadata["signed_jwks_uri"] = realm.entity_id + "/signed-jwks"


def test_keys_from_a_signed_jwks_uri_verified_with_the_federation_keys(
    gateway: RunningGateway, fresh: FederatedRealm, site: PortalSite, page: Page, tls: Tls
) -> None:
    """``signed_jwks_uri`` (§5.2.1): the JWK Set is a JWT the entity signs with a federation
    key of its (verified) entity configuration; the ID token verifies with its keys and the
    realm's plain JWK Set is never asked."""
    serve_signed_jwks(fresh, tls, fresh.federation_key)
    portal = register_portal(gateway, site, "fed-signed-jwks")
    started = portal.start("openid profile", region=CODE)
    page.goto(started["url"])
    sign_in_at_keycloak(page, fresh.region)
    page.wait_for_url(f"{portal.redirect_uri}**")
    claims = portal.finish(site.last_visit(portal.redirect_uri), started)["claims"]
    assert claims["name"] == "三 张"
    assert not [p for p in fresh.front.forwarded if p.endswith("/certs")]


def test_a_signed_jwks_not_signed_with_a_federation_key_is_refused(
    gateway: RunningGateway, fresh: FederatedRealm, site: PortalSite, tls: Tls
) -> None:
    """Whoever can change the JWK Set's file but holds no federation key cannot slip keys in:
    the set must verify with the entity's federation keys."""
    serve_signed_jwks(fresh, tls, ECKey.generate_key("P-256"))
    refused(gateway, site, fresh)
