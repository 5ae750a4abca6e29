"""Intermediate authorities under the national trust anchor (I20; OpenID Federation 1.0 §4,
§6.1.4, §6.2, §8.1-§8.3, §10).

A province's federation entity (an intermediate, served on loopback by this test with its own
CA) vouches for a municipal portal (a leaf, on loopback too): leaf -> intermediate -> anchor.
The gateway's resolve endpoint (§8.3) and ``@openid-federation/core``
(``tests/peers/federation.mjs resolve``, an implementation nobody here wrote) must agree on the
chain and its policy-applied metadata; broken chains are refused with the §8.9 error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from federation_fixtures import serve_federation_entity
from gateway_fixtures import RunningGateway, start_gateway
from joserfc import jwt
from joserfc.jwk import ECKey
from test_federation_anchor import (  # type: ignore[import-not-found]
    POLICY,
    RP_METADATA,
    anchor_configuration,
    resolve,
    resolve_externally,
)
from test_sector_identifier import Tls, _certificates  # type: ignore[import-not-found]

from gateway.federation.statements import ENTITY_STATEMENT_TYP, verify_statement

PROVINCE = "zj"
PATH = f"/federation/subordinates/intermediate/{PROVINCE}"
#: The province's own policy for its portals (merged under the anchor's, §6.1.4.1).
PROVINCE_POLICY = {"openid_relying_party": {"contacts": {"add": ["fed@zj.example.cn"]}}}


def _public(key: ECKey) -> dict[str, Any]:
    return {**key.as_dict(private=False), "kid": key.thumbprint()}


def _sign(claims: dict[str, Any], key: ECKey) -> str:
    header = {"alg": "ES256", "kid": key.thumbprint(), "typ": ENTITY_STATEMENT_TYP}
    return jwt.encode(header, claims, key)


class Entity:
    """A federation entity on loopback: its key, authority hints, metadata; as an
    intermediate, the statements it issues about its subordinates (§8.1)."""

    def __init__(self, tls: Tls, metadata: dict[str, Any], superior: str) -> None:
        self.key = ECKey.generate_key("P-256")
        self.signing_key = self.key
        self.statement_key: ECKey | None = None  # None: its own key
        self.announced: dict[str, Any] | None = None  # its superior lists: None, its jwks
        self.superior = superior
        self.metadata = metadata
        self.subordinates: dict[str, Entity] = {}
        self.policy: dict[str, Any] = PROVINCE_POLICY
        self.constraints: dict[str, Any] | None = None
        self.server: ThreadingHTTPServer
        self.server, self.entity_id = serve_federation_entity(
            tls.cert_file, tls.key_file, self.entity_configuration, self.fetch
        )
        if "federation_entity" in metadata:
            metadata["federation_entity"]["federation_fetch_endpoint"] = f"{self.entity_id}/fetch"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [_public(self.key)]}

    def entity_configuration(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.entity_id,
            "sub": self.entity_id,
            "iat": now,
            "exp": now + 3600,
            "jwks": self.jwks(),
            "authority_hints": [self.superior],
            "metadata": self.metadata,
        }
        return _sign(claims, self.signing_key)

    def fetch(self, sub: str) -> str | None:
        """§8.1.2: the subordinate statement about ``sub``."""
        subordinate = self.subordinates.get(sub)
        if subordinate is None:
            return None
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.entity_id,
            "sub": sub,
            "iat": now,
            "exp": now + 1800,
            "jwks": subordinate.announced or subordinate.jwks(),
            "metadata_policy": self.policy,
        }
        if self.constraints is not None:
            claims["constraints"] = self.constraints
        return _sign(claims, self.statement_key or self.key)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return _certificates(tmp_path_factory.mktemp("tls"), ["127.0.0.1"], [])


@pytest.fixture
def gateway(tmp_path: Path, tls: Tls) -> Iterator[RunningGateway]:
    yield from start_gateway(
        tmp_path, outbound_ca_file=tls.ca_file, federation_metadata_policy=POLICY
    )


def _intermediate(tls: Tls, superior: str) -> Entity:
    return Entity(tls, {"federation_entity": {"organization_name": "浙江省"}}, superior)


@pytest.fixture
def province(tls: Tls, gateway: RunningGateway) -> Iterator[Entity]:
    made = _intermediate(tls, gateway.issuer)
    record(gateway, made)
    yield made
    made.close()


@pytest.fixture
def leaf(tls: Tls, province: Entity) -> Iterator[Entity]:
    made = Entity(tls, {"openid_relying_party": dict(RP_METADATA)}, province.entity_id)
    province.subordinates[made.entity_id] = made
    yield made
    made.close()


def record(
    gateway: RunningGateway, entity: Entity, constraints: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"entity_id": entity.entity_id, "jwks": entity.jwks()}
    if constraints is not None:
        body["constraints"] = constraints
    answer = gateway.admin("PUT", PATH, body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def refused(gateway: RunningGateway, sub: str) -> tuple[int, str]:
    answer = resolve(gateway, sub)
    return answer.status_code, answer.json()["error"]


# --- the admin API, fetch and list --------------------------------------------------------------


def test_the_platform_alone_records_an_intermediate_with_its_constraints(
    gateway: RunningGateway, tls: Tls
) -> None:
    entity = _intermediate(tls, gateway.issuer)
    try:
        body = {"entity_id": entity.entity_id, "jwks": entity.jwks()}
        assert gateway.admin_as(gateway.operator_token, "PUT", PATH, body).status_code == 403
        assert gateway.admin("PUT", PATH, {**body, "constraints": []}).status_code == 400
        bad = {"allowed_entity_types": ["federation_entity"]}
        answer = gateway.admin("PUT", PATH, {**body, "constraints": bad})
        assert [f["field"] for f in answer.json()["fields"]] == ["constraints"]
        assert (
            gateway.admin("PUT", PATH, {**body, "constraints": {"max_path_length": -1}}).status_code
            == 400
        )
        assert (
            gateway.admin("PUT", "/federation/subordinates/intermediate/ZJ!", body).status_code
            == 404
        )
        recorded = record(gateway, entity)
        assert recorded["constraints"] == {
            "max_path_length": 1,
            "allowed_entity_types": ["openid_relying_party"],
        }
        naming = {"naming_constraints": {"permitted": ["127.0.0.1"], "excluded": [".bad.cn"]}}
        assert (
            record(gateway, entity, naming)["constraints"]["naming_constraints"]
            == (naming["naming_constraints"])
        )
        assert gateway.admin("GET", PATH).json()["entity_id"] == entity.entity_id
        # §3.1.3, §8.1.2: the anchor's statement about it carries the constraints and policy
        _, anchor = anchor_configuration(gateway)
        answer = requests.get(
            f"{gateway.issuer}/federation/fetch", params={"sub": entity.entity_id}, timeout=10
        )
        claims = verify_statement(
            answer.text, anchor["jwks"], typ="entity-statement+jwt", now=datetime.now(UTC)
        )
        assert claims["constraints"]["naming_constraints"] == naming["naming_constraints"]
        assert claims["constraints"]["max_path_length"] == 1
        assert claims["metadata_policy"] == POLICY
        # §8.2.1: intermediate=true lists intermediates; an intermediate is a federation_entity
        listing = f"{gateway.issuer}/federation/list"
        assert requests.get(listing, params={"intermediate": "true"}, timeout=10).json() == [
            entity.entity_id
        ]
        typed = requests.get(listing, params={"entity_type": "federation_entity"}, timeout=10)
        assert typed.json() == [entity.entity_id]
        rps = requests.get(listing, params={"entity_type": "openid_relying_party"}, timeout=10)
        assert rps.json() == []
        # trust marks are for regions and portals; an operator never removes an intermediate
        marks = gateway.admin("GET", "/federation/trust-marks/intermediate/zj")
        assert marks.status_code == 404
        assert gateway.admin_as(gateway.operator_token, "DELETE", PATH).status_code == 403
        assert gateway.admin("DELETE", PATH).status_code == 204
        assert requests.get(listing, params={"intermediate": "true"}, timeout=10).json() == []
    finally:
        entity.close()


# --- §8.3, §10: resolving through the intermediate ----------------------------------------------


def test_the_gateway_and_an_independent_resolver_agree_through_the_intermediate(
    gateway: RunningGateway, province: Entity, leaf: Entity, tls: Tls
) -> None:
    answer = resolve(gateway, leaf.entity_id)
    assert answer.status_code == 200, answer.text
    _, anchor = anchor_configuration(gateway)
    claims = verify_statement(
        answer.text, anchor["jwks"], typ="resolve-response+jwt", now=datetime.now(UTC)
    )
    assert claims["sub"] == leaf.entity_id
    resolved = claims["metadata"]["openid_relying_party"]
    assert resolved["grant_types"] == ["authorization_code"]  # the anchor's subset_of
    # §6.1.4.1: the anchor's policy (for the intermediate) merged with the province's (add)
    assert resolved["contacts"] == [
        "ops@zj.example.cn",
        "federation@tongxing.example.cn",
        "fed@zj.example.cn",
    ]
    chain = claims["trust_chain"]
    assert len(chain) == 4  # leaf EC, province about leaf, anchor about province, anchor EC
    now = datetime.now(UTC)
    statements = [
        verify_statement(chain[1], province.jwks(), typ="entity-statement+jwt", now=now),
        verify_statement(chain[2], anchor["jwks"], typ="entity-statement+jwt", now=now),
    ]
    assert [(s["iss"], s["sub"]) for s in statements] == [
        (province.entity_id, leaf.entity_id),
        (gateway.issuer, province.entity_id),
    ]
    assert claims["exp"] <= statements[0]["exp"]  # the chain's earliest
    external = resolve_externally(tls, leaf.entity_id, gateway.issuer)
    assert len(external["chains"]) == 1, external
    # the library's chain leaves the subject's configuration out: two statements and the anchor
    assert external["chains"][0]["length"] == 3
    assert external["chains"][0]["metadata"]["openid_relying_party"] == resolved


def test_a_statement_about_the_leaf_not_signed_by_the_intermediate_is_refused(
    gateway: RunningGateway, province: Entity, leaf: Entity, tls: Tls
) -> None:
    province.statement_key = ECKey.generate_key("P-256")
    assert refused(gateway, leaf.entity_id) == (400, "invalid_trust_chain")
    assert resolve_externally(tls, leaf.entity_id, gateway.issuer)["chains"] == []


def test_a_leaf_signing_with_a_key_not_in_the_intermediates_statement_is_refused(
    gateway: RunningGateway, province: Entity, leaf: Entity, tls: Tls
) -> None:
    leaf.signing_key = ECKey.generate_key("P-256")
    assert refused(gateway, leaf.entity_id) == (400, "invalid_trust_chain")
    assert resolve_externally(tls, leaf.entity_id, gateway.issuer)["chains"] == []


def test_a_leaf_that_replaced_its_keys_unannounced_is_refused_by_the_gateway(
    gateway: RunningGateway, province: Entity, leaf: Entity, tls: Tls
) -> None:
    """§10.2: self-consistent with a key the intermediate's statement does not list."""
    leaf.announced = leaf.jwks()
    leaf.key = leaf.signing_key = ECKey.generate_key("P-256")
    assert refused(gateway, leaf.entity_id) == (400, "invalid_trust_chain")


def test_an_intermediate_under_the_intermediate_exceeds_max_path_length(
    gateway: RunningGateway, province: Entity, tls: Tls
) -> None:
    city = _intermediate(tls, province.entity_id)
    portal = Entity(tls, {"openid_relying_party": dict(RP_METADATA)}, city.entity_id)
    try:
        province.subordinates[city.entity_id] = city
        city.subordinates[portal.entity_id] = portal
        assert refused(gateway, portal.entity_id) == (400, "invalid_trust_chain")
        record(gateway, province, {"max_path_length": 2})  # §6.2.1: two intermediates allowed
        answer = resolve(gateway, portal.entity_id)
        assert answer.status_code == 200, answer.text
        external = resolve_externally(tls, portal.entity_id, gateway.issuer)
        assert [chain["length"] for chain in external["chains"]] == [4]
    finally:
        city.close()
        portal.close()


def test_a_naming_constraint_the_leaf_breaks_is_refused(
    gateway: RunningGateway, province: Entity, leaf: Entity
) -> None:
    record(gateway, province, {"naming_constraints": {"permitted": ["127.0.0.1"]}})
    assert resolve(gateway, leaf.entity_id).status_code == 200
    province.constraints = {"naming_constraints": {"permitted": [".zj.example.cn"]}}
    assert refused(gateway, leaf.entity_id) == (400, "invalid_trust_chain")
    province.constraints = None
    record(gateway, province, {"naming_constraints": {"excluded": ["127.0.0.1"]}})
    assert refused(gateway, leaf.entity_id) == (400, "invalid_trust_chain")


def test_an_entity_type_the_constraints_do_not_allow_is_removed(
    gateway: RunningGateway, province: Entity, leaf: Entity
) -> None:
    """§6.2.3: the types not allowed are removed from the subject's metadata (not an error):
    a portal under an intermediate allowed only providers has no relying party metadata."""
    leaf.metadata["openid_provider"] = {"issuer": leaf.entity_id}
    answer = resolve(gateway, leaf.entity_id)
    _, anchor = anchor_configuration(gateway)
    claims = verify_statement(
        answer.text, anchor["jwks"], typ="resolve-response+jwt", now=datetime.now(UTC)
    )
    assert set(claims["metadata"]) == {"openid_relying_party"}  # the default allows RPs only
    record(gateway, province, {"allowed_entity_types": ["openid_provider"]})
    answer = resolve(gateway, leaf.entity_id)
    claims = verify_statement(
        answer.text, anchor["jwks"], typ="resolve-response+jwt", now=datetime.now(UTC)
    )
    assert set(claims["metadata"]) == {"openid_provider"}


def test_a_hint_that_is_not_a_recorded_intermediate_and_a_removed_intermediate_fail(
    gateway: RunningGateway, province: Entity, leaf: Entity, tls: Tls
) -> None:
    stranger = _intermediate(tls, gateway.issuer)
    try:
        stranger.subordinates[leaf.entity_id] = leaf
        leaf.superior = stranger.entity_id
        assert refused(gateway, leaf.entity_id) == (400, "invalid_trust_chain")
        assert resolve_externally(tls, leaf.entity_id, gateway.issuer)["chains"] == []
        leaf.superior = province.entity_id
        assert resolve(gateway, leaf.entity_id).status_code == 200
        assert gateway.admin("DELETE", PATH).status_code == 204
        assert refused(gateway, leaf.entity_id) == (404, "not_found")
        assert resolve_externally(tls, leaf.entity_id, gateway.issuer)["chains"] == []
    finally:
        stranger.close()
