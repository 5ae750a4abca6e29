"""Verified claims end to end (issue 16): the ``claims`` request parameter, identity proofing at
a real proofing provider, ``verified_claims`` in the ID token and userinfo, and the
verification result only.

The proofing provider is a Keycloak realm of the harness's Keycloak whose hardcoded-claim
mapper (JSON type) puts ``verified_claims`` (OpenID Connect for Identity Assurance 1.0) in its
ID token, beside the person's identity number. The portal is openid-client
(``tests/peers/rp.mjs``); the person uses Chromium.
"""

from __future__ import annotations

import json
import secrets
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from gateway_fixtures import (
    PERSON_ID,
    KeycloakRegion,
    Portal,
    PortalSite,
    RunningGateway,
    register_portal,
    sign_in_at_keycloak,
    start_gateway,
)
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from playwright.sync_api import Page
from second_factor_fixtures import map_region
from sqlalchemy import text
from tongxing_dev.keycloak import KeycloakEndpoint

from gateway.policy import default_policy_dir
from gateway.store.sql import SqlStore

FRAMEWORK = "cn_mps_ctid"
OTHER_PERSON = "110105198001010016"  # another valid GB 11643-1999 number
VERIFIED: dict[str, Any] = {
    "verification": {
        "trust_framework": FRAMEWORK,
        "assurance_level": "high",
        "time": "2026-05-01T08:00:00Z",
        "evidence": [{"type": "document", "document_details": {"type": "idcard"}}],
    },
    "claims": {"name": "张三", "birthdate": "1949-12-31"},
}
# A regional policy of this gateway: the "culture" sector may not have the verified birth date.
CULTURE_POLICY = """
@id("no-verified-birthdate-for-culture")
@reason("culture portals do not need the verified birth date")
forbid (
  principal,
  action == Tongxing::Action::"release_claim",
  resource == Tongxing::Claim::"verified_claims/birthdate"
)
when { context.portal.sector == "culture" };
"""
CLAIMS_REQUEST = {
    "id_token": {
        "verified_claims": {
            "verification": {
                "trust_framework": {"value": FRAMEWORK},
                "time": None,
                "evidence": None,
            },
            "claims": {"name": None, "birthdate": None},
        }
    },
    "userinfo": {
        "verified_claims": {"verification": {"trust_framework": None}, "claims": {"name": None}}
    },
}


@dataclass
class ProofingRealm:
    admin: KeycloakAdmin
    realm: str
    issuer: str
    secret: str
    username: str = "zhangsan"
    password: str = "Pf-" + secrets.token_urlsafe(12)

    def assert_claims(self, verified: dict[str, Any]) -> None:
        """Make the provider's mapper assert ``verified`` from now on."""
        self.admin.change_current_realm(self.realm)
        client = self.admin.get_client_id("tongxing-proofing")
        assert client is not None
        for mapper in self.admin.get_mappers_from_client(client):
            if mapper["name"] == "verified_claims":
                mapper["config"]["claim.value"] = json.dumps(verified, ensure_ascii=False)
                self.admin.update_client_mapper(client, mapper["id"], mapper)

    def place_claims(self, *, id_token: bool, userinfo: bool) -> None:
        """Make the provider's mapper put ``verified_claims`` in its ID token, its UserInfo
        response, or both (IDA §5 allows either)."""
        self.admin.change_current_realm(self.realm)
        client = self.admin.get_client_id("tongxing-proofing")
        assert client is not None
        for mapper in self.admin.get_mappers_from_client(client):
            if mapper["name"] == "verified_claims":
                mapper["config"]["id.token.claim"] = str(id_token).lower()
                mapper["config"]["userinfo.token.claim"] = str(userinfo).lower()
                self.admin.update_client_mapper(client, mapper["id"], mapper)


@pytest.fixture(scope="module")
def proofing(keycloak: KeycloakEndpoint) -> Iterator[ProofingRealm]:
    """A Keycloak realm playing the proofing provider (MPS real-name check, say)."""
    admin = KeycloakAdmin(
        connection=KeycloakOpenIDConnection(
            server_url=keycloak.url,
            username=keycloak.admin_user,
            password=keycloak.admin_password,
            realm_name="master",
            user_realm_name="master",
        )
    )
    realm = f"proof-{uuid.uuid4().hex[:6]}"
    admin.create_realm({"realm": realm, "enabled": True})
    admin.change_current_realm(realm)
    profile = admin.get_realm_users_profile()
    profile["unmanagedAttributePolicy"] = "ENABLED"
    admin.update_realm_users_profile(profile)
    secret = secrets.token_urlsafe(24)
    admin.create_client(
        {
            "clientId": "tongxing-proofing",
            "secret": secret,
            "publicClient": False,
            "standardFlowEnabled": True,
            "directAccessGrantsEnabled": False,
            "redirectUris": ["http://127.0.0.1/placeholder"],
            "attributes": {"pkce.code.challenge.method": "S256"},
            "protocolMappers": [
                {
                    "name": "id_number",
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-usermodel-attribute-mapper",
                    "config": {
                        "user.attribute": "id_number",
                        "claim.name": "id_number",
                        "id.token.claim": "true",
                        "access.token.claim": "false",
                        "userinfo.token.claim": "false",
                        "jsonType.label": "String",
                    },
                },
                {
                    "name": "verified_claims",
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-hardcoded-claim-mapper",
                    "config": {
                        "claim.name": "verified_claims",
                        "claim.value": json.dumps(VERIFIED, ensure_ascii=False),
                        "jsonType.label": "JSON",
                        "id.token.claim": "true",
                        "access.token.claim": "false",
                        "userinfo.token.claim": "false",
                    },
                },
            ],
        }
    )
    found = ProofingRealm(admin, realm, keycloak.issuer(realm), secret)
    for username, number in (("zhangsan", PERSON_ID), ("lisi", OTHER_PERSON)):
        admin.create_user(
            {
                "username": username,
                "firstName": "三",
                "lastName": "张",
                "enabled": True,
                "email": f"{username}@proof.example.cn",
                "emailVerified": True,
                "attributes": {"id_number": [number]},
                "credentials": [{"type": "password", "value": found.password, "temporary": False}],
            }
        )
    yield found
    admin.change_current_realm("master")
    admin.delete_realm(realm)


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, proofing: ProofingRealm
) -> Iterator[RunningGateway]:
    """This module's gateway: the proofing provider configured, a regional policy added."""
    policies = tmp_path_factory.mktemp("policies") / "policies"
    shutil.copytree(default_policy_dir(), policies)
    (policies / "culture.cedar").write_text(CULTURE_POLICY, encoding="utf-8")
    provider = {
        "id": "mps",
        "names": {"zh": "公安部实名核验", "en": "MPS real-name check"},
        "issuer": proofing.issuer,
        "client_id": "tongxing-proofing",
        "client_secret": proofing.secret,
        "trust_frameworks": [FRAMEWORK],
        "claims": ["name", "birthdate"],
        "evidence": ["document"],
        "documents": ["idcard"],
    }
    yield from start_gateway(
        tmp_path_factory.mktemp("gateway"),
        proofing_providers=[provider],
        policy_dir=policies,
        rate_limits={"verification": "6/minute"},
    )


@pytest.fixture(scope="module")
def loa2_zj(gateway: RunningGateway, zj: KeycloakRegion, proofing: ProofingRealm) -> KeycloakRegion:
    """zj vouches loa2 for a password sign-in; the provider's client knows the callback."""
    map_region(gateway, zj, {"1": "loa2"})
    proofing.admin.change_current_realm(proofing.realm)
    client = proofing.admin.get_client_id("tongxing-proofing")
    assert client is not None
    proofing.admin.update_client(client, {"redirectUris": [f"{gateway.issuer}/proofing/callback"]})
    return zj


def proof_at_provider(page: Page, proofing: ProofingRealm, username: str = "zhangsan") -> None:
    page.wait_for_url(f"{proofing.issuer}/**")
    page.fill("#username", username)
    page.fill("#password", proofing.password)
    page.click("#kc-login")


def sign_in_and_proof(
    gateway: RunningGateway,
    zj: KeycloakRegion,
    proofing: ProofingRealm,
    page: Page,
    portal: Portal,
    **extra: str,
) -> dict[str, Any]:
    started = portal.start("openid profile", region="zj", **extra)
    page.goto(started["url"])
    sign_in_at_keycloak(page, zj)
    proof_at_provider(page, proofing)
    return started


def verify(gateway: RunningGateway, token: str | None, **form: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"{gateway.issuer}/verification", data=form, headers=headers, timeout=10)


def test_discovery_says_what_the_gateway_supports(
    gateway: RunningGateway, loa2_zj: KeycloakRegion, site: PortalSite
) -> None:
    portal = register_portal(gateway, site, "discover")
    metadata = portal.rp("discover")
    assert metadata["claims_parameter_supported"] is True
    assert metadata["verified_claims_supported"] is True
    assert metadata["trust_frameworks_supported"] == [FRAMEWORK]
    assert metadata["evidence_supported"] == ["document"]
    assert metadata["documents_supported"] == ["idcard"]
    assert metadata["claims_in_verified_claims_supported"] == ["name", "birthdate"]
    assert "verified_claims" in metadata["claims_supported"]


def test_a_citizen_is_proofed_for_a_loa3_portal_and_gets_only_what_was_asked(
    gateway: RunningGateway,
    loa2_zj: KeycloakRegion,
    proofing: ProofingRealm,
    site: PortalSite,
    page: Page,
) -> None:
    tax = register_portal(gateway, site, "tax-vc", sector="tax")
    started = sign_in_and_proof(
        gateway, loa2_zj, proofing, page, tax, claims=json.dumps(CLAIMS_REQUEST)
    )
    # Verified claims leave only with the person's own consent.
    page.wait_for_url(f"{gateway.issuer}/**")
    assert "经核验的实名信息" in page.locator("#claims").inner_text()
    page.click("button[value=allow]")
    page.wait_for_url(f"{tax.redirect_uri}**")
    tokens = tax.finish(site.last_visit(tax.redirect_uri), started)  # openid-client's checks
    claims = tokens["claims"]
    assert claims["acr"] == "loa3"
    assert claims["verified_claims"] == {
        "verification": {
            "trust_framework": FRAMEWORK,
            "time": VERIFIED["verification"]["time"],
            "evidence": VERIFIED["verification"]["evidence"],
        },  # assurance_level was not asked for: not released
        "claims": {"name": "张三", "birthdate": "1949-12-31"},
    }
    # userinfo: only what its member asked for (name; no verification details beyond the
    # trust framework).
    info = tax.rp("userinfo", tokens["access_token"], claims["sub"])
    assert info["verified_claims"] == {
        "verification": {"trust_framework": FRAMEWORK},
        "claims": {"name": "张三"},
    }
    # The claims request belongs to this authorization, kept with its grant: a refreshed ID
    # token honours it as the first did (OIDC Core §5.5, §12.2)...
    refreshed = tax.rp("refresh", tokens["refresh_token"])
    assert refreshed["claims"]["verified_claims"] == claims["verified_claims"]
    # ... and a later authorization of the same portal without the parameter gets no verified
    # claims, and takes nothing from the tokens of the first.
    later = tax.start("openid profile")
    page.goto(later["url"])
    page.wait_for_url(f"{tax.redirect_uri}**")
    assert "verified_claims" not in tax.finish(site.last_visit(tax.redirect_uri), later)["claims"]
    assert tax.rp("userinfo", tokens["access_token"], claims["sub"]) == info

    # A portal whose policy forbids the verified birth date does not get it (same session,
    # single sign-on: no second proofing).
    culture = register_portal(gateway, site, "culture-vc", sector="culture")
    again = culture.start("openid profile", claims=json.dumps(CLAIMS_REQUEST))
    page.goto(again["url"])
    page.click("button[value=allow]")
    page.wait_for_url(f"{culture.redirect_uri}**")
    other = culture.finish(site.last_visit(culture.redirect_uri), again)["claims"]
    assert other["verified_claims"]["claims"] == {"name": "张三"}

    # A portal that did not use the claims parameter gets no verified claims at all.
    plain = register_portal(gateway, site, "plain-vc", sector="tax")
    third = plain.start("openid profile")
    page.goto(third["url"])
    page.wait_for_url(f"{plain.redirect_uri}**")
    plain_claims = plain.finish(site.last_visit(plain.redirect_uri), third)["claims"]
    assert plain_claims["acr"] == "loa3"
    assert "verified_claims" not in plain_claims

    # The verification result only: match or no match, never the number.
    token = tokens["access_token"]
    match = verify(gateway, token, name="张三", id_number=PERSON_ID)
    assert match.status_code == 200
    assert match.json() == {"match": True}
    assert PERSON_ID not in match.text
    assert verify(gateway, token, name="张三", id_number=OTHER_PERSON).json() == {"match": False}
    assert verify(gateway, token, name="李四", id_number=PERSON_ID).json() == {"match": False}
    assert verify(gateway, token, name="张三", id_number="not-a-number").json() == {"match": False}
    assert verify(gateway, None, name="张三", id_number=PERSON_ID).status_code == 401
    assert verify(gateway, "forged", name="张三", id_number=PERSON_ID).status_code == 401
    # Limited per portal: six checks a minute (this gateway's setting), then 429.
    for _ in range(2):
        assert verify(gateway, token, name="张三", id_number=PERSON_ID).status_code == 200
    limited = verify(gateway, token, name="张三", id_number=PERSON_ID)
    assert limited.status_code == 429
    assert "Retry-After" in limited.headers

    # Audited, without the number; and the verified claims are sealed at rest.
    store = gateway.services.store
    assert isinstance(store, SqlStore)
    with store.engine.connect() as conn:
        kinds = conn.execute(
            text(
                "SELECT kind, outcome FROM audit_records WHERE kind IN "
                "('identity.proofed', 'verification.checked') ORDER BY sequence"
            )
        ).fetchall()
        dump = str(conn.execute(text("SELECT * FROM verified_claims")).fetchall())
        trail = str(conn.execute(text("SELECT * FROM audit_records")).fetchall())
    assert ("identity.proofed", "accepted") in kinds
    assert ("verification.checked", "match") in kinds
    assert ("verification.checked", "no_match") in kinds
    assert "张三" not in dump
    assert "1949-12-31" not in dump
    assert PERSON_ID not in trail


@pytest.mark.parametrize(
    ("asserted", "why"),
    [
        ({**VERIFIED, "verification": {"trust_framework": "eidas"}}, "trust framework"),
        ({**VERIFIED, "claims": {"name": "张三", "address": {"country": "CN"}}}, "claims"),
    ],
)
def test_a_provider_vouching_beyond_what_the_platform_allows_is_refused(
    gateway: RunningGateway,
    loa2_zj: KeycloakRegion,
    proofing: ProofingRealm,
    site: PortalSite,
    page: Page,
    asserted: dict[str, Any],
    why: str,
) -> None:
    proofing.assert_claims(asserted)
    try:
        portal = register_portal(gateway, site, "tax-refused", sector="tax")
        sign_in_and_proof(gateway, loa2_zj, proofing, page, portal)
        page.wait_for_url(f"{gateway.issuer}/proofing/callback**")
        assert "实名核验未通过" in page.content()
        assert not [url for url in site.visits if url.startswith(portal.redirect_uri)]
    finally:
        proofing.assert_claims(VERIFIED)
    store = gateway.services.store
    assert isinstance(store, SqlStore)
    with store.engine.connect() as conn:
        refused = conn.execute(
            text(
                "SELECT details FROM audit_records WHERE kind = 'identity.proofed' "
                "AND outcome = 'refused' ORDER BY sequence DESC"
            )
        ).first()
    assert refused is not None
    assert why in str(refused[0])


def test_a_proofing_of_another_person_is_refused(
    gateway: RunningGateway,
    loa2_zj: KeycloakRegion,
    proofing: ProofingRealm,
    site: PortalSite,
    page: Page,
) -> None:
    portal = register_portal(gateway, site, "tax-other", sector="tax")
    started = portal.start("openid profile", region="zj")
    page.goto(started["url"])
    sign_in_at_keycloak(page, loa2_zj)
    proof_at_provider(page, proofing, "lisi")  # the provider proofs someone else
    page.wait_for_url(f"{gateway.issuer}/proofing/callback**")
    assert "实名核验未通过" in page.content()
    assert not [url for url in site.visits if url.startswith(portal.redirect_uri)]


@pytest.mark.parametrize(
    "claims",
    [
        "not json",
        "[]",
        '{"id_token": []}',
        '{"userinfo": {"verified_claims": {"claims": {"name": null}}}}',
        '{"userinfo": {"verified_claims": {"verification": {"trust_framework": null}}}}',
        '{"userinfo": {"verified_claims": {"verification": {"trust_framework": null}, '
        '"claims": {}}}}',
        '{"userinfo": {"verified_claims": {"verification": {"trust_framework": {"value": 3}}, '
        '"claims": {"name": null}}}}',
        '{"id_token": {"name": {"essential": "yes"}}}',
        json.dumps({"userinfo": {f"c{i}": None for i in range(40)}}),  # too many claims
        json.dumps({"userinfo": {"name": {"purpose": "x" * 5000}}}),  # longer than 4096 bytes
    ],
)
def test_a_malformed_claims_parameter_is_invalid_request_at_the_portal(
    gateway: RunningGateway, site: PortalSite, claims: str
) -> None:
    portal = register_portal(gateway, site, "malformed")
    started = portal.start("openid profile", claims=claims)
    answer = requests.get(started["url"], allow_redirects=False, timeout=10)
    assert answer.status_code in (302, 303)
    location = answer.headers["Location"]
    assert location.startswith(portal.redirect_uri)
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == ["invalid_request"]
    assert query["state"] == [started["pending"]["state"]]
    assert query["iss"] == [gateway.issuer]


def test_a_well_formed_claims_parameter_is_kept_with_the_authorization(
    gateway: RunningGateway, site: PortalSite
) -> None:
    portal = register_portal(gateway, site, "kept")
    started = portal.start("openid profile", claims=json.dumps(CLAIMS_REQUEST))
    answer = requests.get(started["url"], allow_redirects=False, timeout=10)
    assert answer.status_code == 200  # the chooser: the request waits in its record
    store = gateway.services.store
    assert isinstance(store, SqlStore)
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT request FROM pending_authorizations")).fetchall()
    kept = [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in rows]
    assert any(
        r.get("client_id") == portal.client_id and json.loads(r["claims"]) == CLAIMS_REQUEST
        for r in kept
    )


def test_verified_claims_from_the_provider_s_userinfo_only_are_fetched_and_checked(
    gateway: RunningGateway,
    loa2_zj: KeycloakRegion,
    proofing: ProofingRealm,
    site: PortalSite,
    page: Page,
) -> None:
    """IDA §5: a provider may answer ``verified_claims`` in its UserInfo response only; the
    gateway fetches them there with the provider's access token, and checks them as it checks
    the ID token's (a framework the platform does not trust is refused all the same)."""
    proofing.place_claims(id_token=False, userinfo=True)
    try:
        tax = register_portal(gateway, site, "tax-userinfo", sector="tax")
        started = sign_in_and_proof(
            gateway, loa2_zj, proofing, page, tax, claims=json.dumps(CLAIMS_REQUEST)
        )
        page.wait_for_url(f"{gateway.issuer}/**")
        page.click("button[value=allow]")
        page.wait_for_url(f"{tax.redirect_uri}**")
        claims = tax.finish(site.last_visit(tax.redirect_uri), started)["claims"]
        assert claims["acr"] == "loa3"
        assert claims["verified_claims"]["claims"] == {"name": "张三", "birthdate": "1949-12-31"}

        proofing.assert_claims({**VERIFIED, "verification": {"trust_framework": "eidas"}})
        refused = register_portal(gateway, site, "tax-userinfo-refused", sector="tax")
        other = page.context.browser
        assert other is not None
        fresh = other.new_context(locale="zh-CN")
        try:
            fresh_page = fresh.new_page()
            sign_in_and_proof(gateway, loa2_zj, proofing, fresh_page, refused)
            fresh_page.wait_for_url(f"{gateway.issuer}/proofing/callback**")
            assert "实名核验未通过" in fresh_page.content()
        finally:
            fresh.close()
        assert not [url for url in site.visits if url.startswith(refused.redirect_uri)]
    finally:
        proofing.assert_claims(VERIFIED)
        proofing.place_claims(id_token=True, userinfo=False)
