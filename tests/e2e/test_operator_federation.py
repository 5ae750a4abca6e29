"""Regions and Portals published in the federation from their resources (issue 17), end to end:
kubectl, the built kube-apiserver, the operator process, a real Keycloak and a real gateway.

A Region's ``spec.federation`` without ``entityId`` is recorded at the trust anchor under its
realm's issuer (OpenID Federation 1.0 §5.1.3); a Portal names its entity id. The gateway's fetch
endpoint (§8.1) then returns a subordinate statement with the resource's keys, which follows the
resource: edited, deleted at the gateway (drift, repaired), withdrawn, deleted with it.
The attacker (THREAT_MODEL row 1) holds the operator's credential: it may not write the
subordinate of a registration it does not manage, nor claim an entity id its registration does
not bind; a private key in a resource is refused by the gateway, seen as condition and event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from gateway_fixtures import PortalSite, RunningGateway, register_portal, start_gateway
from joserfc.jwk import ECKey
from operator_fixtures import (
    Namespace,
    OperatorProcess,
    create_namespace,
    install_crds,
    kubectl,
    service_account_kubeconfig,
    start_operator,
    wait_until,
)
from tongxing_dev.keycloak import KeycloakEndpoint
from tongxing_dev.kube import KubeEndpoint

from gateway.federation.statements import unverified_claims

FEDERATED = "Federated"


@pytest.fixture(scope="module")
def crds(kube: KubeEndpoint) -> None:
    install_crds(kube)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    yield from start_gateway(tmp_path_factory.mktemp("gateway"))


@pytest.fixture(scope="module")
def namespace(kube: KubeEndpoint, keycloak: KeycloakEndpoint, crds: None) -> Iterator[Namespace]:
    created = create_namespace(kube, keycloak, "tx-federation")
    yield created
    created.force_clean_up()


@pytest.fixture(scope="module")
def operator(
    kube: KubeEndpoint,
    namespace: Namespace,
    gateway: RunningGateway,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    folder = tmp_path_factory.mktemp("operator")
    process = start_operator(
        kube,
        namespace.name,
        folder / "operator.log",
        gateway_url=gateway.issuer,
        admin_token=gateway.operator_token,
        keycloaks=[namespace.grant()],
        kubeconfig=service_account_kubeconfig(namespace, folder / "kubeconfig"),
    )
    yield process
    namespace.clean_up()  # while the operator runs: its finalizer removes what it recorded
    process.stop()


@pytest.fixture(scope="module")
def site() -> Iterator[PortalSite]:
    portals = PortalSite()
    yield portals
    portals.close()


def public_jwk(kid: str) -> dict[str, Any]:
    key = ECKey.generate_key("P-256", {"kid": kid}, private=True)
    return dict(key.as_dict(private=False))


def private_jwk(kid: str) -> dict[str, Any]:
    key = ECKey.generate_key("P-256", {"kid": kid}, private=True)
    return dict(key.as_dict(private=True))


def portal_manifest(name: str, host: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tongxing.io/v1alpha1",
        "kind": "Portal",
        "metadata": {"name": name},
        "spec": {
            "region": "zj",
            "names": {"zh": "门户", "en": "Portal"},
            "redirectUris": [f"https://{host}/callback"],
            "secretName": f"{name}-oidc",
            **spec,
        },
    }


def apply(kube: KubeEndpoint, namespace: Namespace, document: dict[str, Any]) -> None:
    """``kubectl apply`` of JSON: in YAML 1.1, which kubectl reads, an EC key's ``y:`` member
    unquoted is the boolean true (README says to quote it)."""
    document.setdefault("metadata", {})["namespace"] = namespace.name
    kubectl(kube, "apply", "-f", "-", stdin=json.dumps(document))


def fetched_keys(gateway: RunningGateway, entity_id: str) -> list[dict[str, Any]] | None:
    """The keys of the anchor's subordinate statement about ``entity_id`` (§8.1), or None on
    404 (not a subordinate)."""
    answer = requests.get(
        f"{gateway.issuer}/federation/fetch", params={"sub": entity_id}, timeout=10
    )
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/entity-statement+jwt")
    claims = unverified_claims(answer.text)
    assert (claims["iss"], claims["sub"]) == (gateway.issuer, entity_id)
    keys: list[dict[str, Any]] = claims["jwks"]["keys"]
    return keys


def resource_query(namespace: Namespace, kind: str, name: str) -> dict[str, str]:
    found = namespace.get(kind.lower(), name)
    assert found is not None
    uid = found["metadata"]["uid"]
    return {"kind": kind, "namespace": namespace.name, "name": name, "uid": uid}


def eventually(check: Any, what: str, operator: OperatorProcess, timeout: float = 60) -> None:
    wait_until(check, timeout=timeout, what=what, operators=(operator,))


def test_a_region_and_a_portal_are_published_and_follow_their_resources(
    kube: KubeEndpoint, namespace: Namespace, operator: OperatorProcess, gateway: RunningGateway
) -> None:
    code = namespace.code("fed")
    region_key = public_jwk("region-1")
    apply(
        kube,
        namespace,
        namespace.region("fed-region", code, federation={"jwks": {"keys": [region_key]}}),
    )
    host = f"portal-{uuid.uuid4().hex[:6]}.example.test"
    entity_id = f"https://{host}"
    first, second = public_jwk("portal-1"), public_jwk("portal-2")
    apply(
        kube,
        namespace,
        portal_manifest(
            "fed-portal", host, federation={"entityId": entity_id, "jwks": {"keys": [first]}}
        ),
    )
    namespace.wait("condition=Federated", "region/fed-region", "portal/fed-portal", timeout=120)

    # The region's entity id is its realm's issuer (§5.1.3), filled by the operator.
    status = (namespace.get("region", "fed-region") or {})["status"]
    assert status["federationEntityId"] == status["issuer"]
    assert status["issuer"].endswith(f"/realms/{code}")
    assert fetched_keys(gateway, status["issuer"]) == [region_key]
    assert fetched_keys(gateway, entity_id) == [first]
    portal_status = (namespace.get("portal", "fed-portal") or {})["status"]
    assert portal_status["federationEntityId"] == entity_id

    # New keys in the resource: the statement follows.
    apply(
        kube,
        namespace,
        portal_manifest(
            "fed-portal",
            host,
            federation={"entityId": entity_id, "jwks": {"keys": [first, second]}},
        ),
    )
    eventually(
        lambda: fetched_keys(gateway, entity_id) == [first, second], "the new keys", operator
    )

    # Someone removes it at the gateway: the drift timer records it again.
    removed = gateway.admin("DELETE", "/federation/subordinates/portal/fed-portal")
    assert removed.status_code == 204, removed.text
    assert fetched_keys(gateway, entity_id) is None
    eventually(lambda: fetched_keys(gateway, entity_id) == [first, second], "repaired", operator)

    # spec.federation removed: withdrawn, and the condition with it.
    apply(kube, namespace, portal_manifest("fed-portal", host))
    eventually(lambda: fetched_keys(gateway, entity_id) is None, "withdrawn", operator)
    eventually(
        lambda: (
            namespace.condition("portal", "fed-portal", FEDERATED) is None
            and "federationEntityId" not in (namespace.get("portal", "fed-portal") or {})["status"]
        ),
        "the condition and status field gone",
        operator,
    )
    assert namespace.condition("portal", "fed-portal", "Ready")["status"] == "True"  # type: ignore[index]

    # The Region deleted: its subordinate goes with it (before its registration).
    kubectl(kube, "delete", "region", "fed-region", "-n", namespace.name, "--timeout=60s")
    assert fetched_keys(gateway, status["issuer"]) is None
    assert gateway.admin("GET", f"/federation/subordinates/region/{code}").status_code == 404


def test_a_private_key_in_a_resource_is_refused_said_so_and_nothing_is_recorded(
    kube: KubeEndpoint, namespace: Namespace, operator: OperatorProcess, gateway: RunningGateway
) -> None:
    host = f"portal-{uuid.uuid4().hex[:6]}.example.test"
    leaked = private_jwk("leaked")
    apply(
        kube,
        namespace,
        portal_manifest(
            "leaky-portal",
            host,
            federation={"entityId": f"https://{host}", "jwks": {"keys": [leaked]}},
        ),
    )
    namespace.wait("condition=Ready", "portal/leaky-portal", timeout=60)
    eventually(
        lambda: (
            (namespace.condition("portal", "leaky-portal", FEDERATED) or {}).get("status")
            == "False"
        ),
        "Federated False",
        operator,
    )
    federated = namespace.condition("portal", "leaky-portal", FEDERATED) or {}
    assert federated["reason"] == "SubordinateRefused"
    assert "jwks" in federated["message"]
    assert "private" in federated["message"]
    assert leaked["d"] not in federated["message"]
    eventually(
        lambda: any(
            e["type"] == "Warning" and e["reason"] == "SubordinateRefused"
            for e in namespace.events("leaky-portal")
        ),
        "a Warning event",
        operator,
    )
    assert gateway.admin("GET", "/federation/subordinates/portal/leaky-portal").status_code == 404
    assert fetched_keys(gateway, f"https://{host}") is None
    status = (namespace.get("portal", "leaky-portal") or {})["status"]
    assert "federationEntityId" not in status


def test_an_operator_may_not_write_the_subordinate_of_a_registration_it_does_not_manage(
    kube: KubeEndpoint,
    namespace: Namespace,
    operator: OperatorProcess,
    gateway: RunningGateway,
    site: PortalSite,
) -> None:
    """THREAT_MODEL row 1: a portal the platform registered is not the operator's to publish,
    whatever resource it names; nor is another resource's portal."""
    platforms = register_portal(gateway, site, "platform-fed")
    mine = f"portal-{uuid.uuid4().hex[:6]}.example.test"
    apply(kube, namespace, portal_manifest("own-portal", mine))
    namespace.wait("condition=Ready", "portal/own-portal", timeout=60)
    body = {"entity_id": site.base, "jwks": {"keys": [public_jwk("x")]}}
    path = f"{gateway.issuer}/admin/v1/federation/subordinates/portal"
    headers = {"Authorization": f"Bearer {gateway.operator_token}"}
    own = resource_query(namespace, "Portal", "own-portal")

    for key in (platforms.client_id,):
        taken = requests.put(f"{path}/{key}", params=own, json=body, headers=headers, timeout=10)
        assert taken.status_code == 403, taken.text
        gone = requests.delete(f"{path}/{key}", params=own, headers=headers, timeout=10)
        assert gone.status_code == 403, gone.text
    # Its own portal, but naming another resource: refused too.
    other = {**own, "name": "someone-else"}
    refused = requests.put(
        f"{path}/own-portal",
        params=other,
        json={"entity_id": f"https://{mine}", "jwks": {"keys": [public_jwk("y")]}},
        headers=headers,
        timeout=10,
    )
    assert refused.status_code == 403, refused.text
    # Naming no resource at all: the operator must say whom it acts for.
    unnamed = requests.put(
        f"{path}/own-portal",
        json={"entity_id": f"https://{mine}", "jwks": {"keys": [public_jwk("y")]}},
        headers=headers,
        timeout=10,
    )
    assert unnamed.status_code == 400, unnamed.text
    assert (
        gateway.admin("GET", f"/federation/subordinates/portal/{platforms.client_id}").status_code
        == 404
    )
    assert gateway.admin("GET", "/federation/subordinates/portal/own-portal").status_code == 404
    # Trust marks stay the platform's.
    marked = requests.put(
        f"{gateway.issuer}/admin/v1/federation/trust-marks/portal/own-portal",
        params=own,
        json={"trust_mark_type": "https://example.test/mark"},
        headers=headers,
        timeout=10,
    )
    assert marked.status_code == 403, marked.text


def test_an_operator_may_claim_only_the_entity_id_its_registration_binds(
    kube: KubeEndpoint, namespace: Namespace, operator: OperatorProcess, gateway: RunningGateway
) -> None:
    """The anchor must not vouch, for a tenant, for an entity that is not the tenant's: a
    portal's entity id is at one of its redirect URIs' origins, a region's is its issuer."""
    code = namespace.code("bound")
    apply(kube, namespace, namespace.region("bound-region", code))
    mine = f"portal-{uuid.uuid4().hex[:6]}.example.test"
    apply(kube, namespace, portal_manifest("bound-portal", mine))
    namespace.wait("condition=Ready", "region/bound-region", "portal/bound-portal", timeout=120)
    headers = {"Authorization": f"Bearer {gateway.operator_token}"}
    base = f"{gateway.issuer}/admin/v1/federation/subordinates"
    keys = {"keys": [public_jwk("z")]}
    issuer = (namespace.get("region", "bound-region") or {})["status"]["issuer"]

    for kind, key, resource, claimed in (
        ("portal", "bound-portal", "Portal", "https://www.gov.cn"),
        ("portal", "bound-portal", "Portal", f"https://{mine}.evil.example"),
        ("portal", "bound-portal", "Portal", f"http://{mine}"),
        ("region", code, "Region", "https://www.gov.cn/realms/zj"),
        ("region", code, "Region", f"{issuer}/other"),
    ):
        name = "bound-portal" if kind == "portal" else "bound-region"
        refused = requests.put(
            f"{base}/{kind}/{key}",
            params=resource_query(namespace, resource, name),
            json={"entity_id": claimed, "jwks": keys},
            headers=headers,
            timeout=10,
        )
        assert refused.status_code == 400, (claimed, refused.text)
        assert [f["field"] for f in refused.json()["fields"]] == ["entity_id"], refused.text
        assert gateway.admin("GET", f"/federation/subordinates/{kind}/{key}").status_code == 404

    # What the registration binds is accepted, and the operator may take it back.
    for kind, key, resource, name, claimed in (
        ("portal", "bound-portal", "Portal", "bound-portal", f"https://{mine}/federation"),
        ("region", code, "Region", "bound-region", issuer),
    ):
        query = resource_query(namespace, resource, name)
        accepted = requests.put(
            f"{base}/{kind}/{key}",
            params=query,
            json={"entity_id": claimed, "jwks": keys},
            headers=headers,
            timeout=10,
        )
        assert accepted.status_code == 200, accepted.text
        assert fetched_keys(gateway, claimed) == keys["keys"]
        removed = requests.delete(f"{base}/{kind}/{key}", params=query, headers=headers, timeout=10)
        assert removed.status_code == 204, removed.text
    # The platform still records anything.
    anything = gateway.admin(
        "PUT",
        "/federation/subordinates/portal/bound-portal",
        {"entity_id": "https://elsewhere.example.test", "jwks": keys},
    )
    assert anything.status_code == 200, anything.text
    assert (
        gateway.admin("DELETE", "/federation/subordinates/portal/bound-portal").status_code == 204
    )
