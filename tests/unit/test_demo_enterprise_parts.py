"""The demo's enterprise and proofing parts (issue 16), without Keycloak: the enterprise, its
people and portal, the proofing provider's realm and its entry in the gateway's settings.
The running demo is tests/e2e/test_demo.py's."""

from __future__ import annotations

import json
from pathlib import Path

from realm_operator.templates import GATEWAY_CLIENT_ID, RealmTemplates

from gateway.enterprise import parse_credit_code
from gateway.identity import parse_identity_number
from gateway.registry import RegionKind
from gateway.settings import Settings
from gateway.verified import checked_assertion
from tongxing_demo.demo import proofing_provider
from tongxing_demo.federation import (
    AGENT,
    CITIZENS,
    ENTERPRISE,
    ENTERPRISE_PORTAL,
    ENTERPRISE_REGION,
    PROOFED_PORTAL,
    PROOFING,
    REGIONS,
    REPRESENTATIVE,
    verified_claims,
)
from tongxing_demo.realms import (
    PROOFED_AT,
    VERIFIED_CLAIMS,
    ProofingRealm,
    demo_blueprint,
    enterprise_attributes,
    proofing_blueprint,
    region_spec,
)
from tongxing_demo.secrets_file import required_secrets

GATEWAY = "http://127.0.0.1:8400"


def test_the_enterprise_has_a_valid_credit_code_and_a_region_of_kind_enterprise() -> None:
    assert parse_credit_code(ENTERPRISE.credit_code).value == ENTERPRISE.credit_code
    region = next(r for r in REGIONS if r.code == ENTERPRISE_REGION)
    assert region.kind is RegionKind.ENTERPRISE
    spec = region_spec(region, "tongxing-demo-ebl", "http://127.0.0.1:8080")
    assert spec.template_name == "enterprise"
    mappers = {
        m["name"] for m in RealmTemplates().render_for(spec, GATEWAY).client["protocolMappers"]
    }
    assert set(enterprise_attributes(REPRESENTATIVE)) <= mappers


def test_the_representative_is_at_the_enterprise_region_and_the_agent_at_a_province() -> None:
    assert enterprise_attributes(REPRESENTATIVE)["enterprise_role"] == "legal_representative"
    assert enterprise_attributes(REPRESENTATIVE)["credit_code"] == ENTERPRISE.credit_code
    assert REPRESENTATIVE.regions == (ENTERPRISE_REGION,)
    provinces = {r.code for r in REGIONS if r.kind is RegionKind.PROVINCE}
    assert set(AGENT.regions) <= provinces
    assert enterprise_attributes(AGENT) == {}  # he acts for it by mandate, not by the licence
    assert parse_identity_number(AGENT.identity_number).value == AGENT.identity_number


def test_the_enterprise_portal_serves_both_and_the_tax_portal_needs_loa3() -> None:
    assert ENTERPRISE_PORTAL.subject_kinds == "both"
    assert "enterprise" in ENTERPRISE_PORTAL.scopes
    assert PROOFED_PORTAL.minimum_level == "loa3"
    assert PROOFED_PORTAL.claims is not None
    asked = json.loads(PROOFED_PORTAL.claims)["id_token"]["verified_claims"]
    assert set(asked["claims"]) == {"name", "birthdate"}


def test_the_proofing_realm_asserts_each_persons_verified_claims_to_the_proofing_callback() -> None:
    spec = region_spec(PROOFING, "tongxing-demo-proof", "http://127.0.0.1:8080")
    template = demo_blueprint(RealmTemplates().render_for(spec, GATEWAY))
    blueprint = proofing_blueprint(template, GATEWAY)
    assert blueprint.client["clientId"] == GATEWAY_CLIENT_ID
    assert blueprint.client["redirectUris"] == [f"{GATEWAY}/proofing/callback"]
    assert blueprint.client["attributes"]["backchannel.logout.url"] == ""
    mappers = {m["name"]: m for m in blueprint.client["protocolMappers"]}
    assert mappers[VERIFIED_CLAIMS]["config"]["jsonType.label"] == "JSON"
    assert "id_number" in mappers  # the gateway keeps a proofing of the session's person only
    attributes = {a["name"]: a for a in blueprint.user_profile["attributes"]}
    assert attributes[VERIFIED_CLAIMS]["permissions"] == {"view": ["admin"], "edit": ["admin"]}
    assert VERIFIED_CLAIMS not in {m["name"] for m in template.client["protocolMappers"]}


def test_what_the_provider_asserts_is_what_the_platform_lets_it_vouch_for(tmp_path: Path) -> None:
    realm = ProofingRealm("tongxing-demo-proof", "http://kc/realms/x", GATEWAY_CLIENT_ID, "s" * 32)
    settings = Settings.model_validate(
        {
            "issuer": GATEWAY,
            "data_dir": tmp_path,
            "insecure_allow_http": True,
            "proofing_providers": [proofing_provider(realm)],
            **dict.fromkeys(required_secrets(), "x" * 43),
        }
    )
    (provider,) = settings.proofing_providers
    for citizen in CITIZENS:
        asserted = verified_claims(citizen, PROOFED_AT)
        assert len(json.dumps(asserted, ensure_ascii=False, separators=(",", ":"))) <= 2048
        assert asserted["claims"]["name"] == citizen.full_name
        kept = checked_assertion(asserted, provider)  # raises if beyond what it may vouch for
        assert kept[0]["claims"] == asserted["claims"]
    assert verified_claims(CITIZENS[0], PROOFED_AT)["claims"]["birthdate"] == "1990-03-07"
