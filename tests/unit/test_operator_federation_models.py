"""``spec.federation`` of a Region or Portal (issue 17): the model, the CRDs that declare it, the
document the operator sends, and the gateway's binding of an operator's claim to its
registration (OpenID Federation 1.0 §5.1.3; THREAT_MODEL row 1)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from realm_operator import models
from realm_operator.models import FederationSpec, PortalSpec, RegionSpec

from gateway.errors import InvalidDocument
from gateway.federation.views import _check_bound, _origin
from gateway.registry import Portal, Region

REPO = Path(__file__).resolve().parents[2]
KEY = {"kty": "EC", "crv": "P-256", "kid": "k1", "x": "x", "y": "y"}


def federation_schema(kind: str) -> dict[str, Any]:
    document = yaml.safe_load((REPO / "operator" / "crds" / f"{kind}.yaml").read_text())
    (served,) = document["spec"]["versions"]
    schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]["properties"]
    return schema


def region_spec(**spec: Any) -> RegionSpec:
    return RegionSpec.model_validate(
        {
            "code": "zj",
            "names": {"zh": "浙江省", "en": "Zhejiang"},
            "kind": "province",
            "keycloak": {"url": "http://keycloak:8080"},
            **spec,
        }
    )


def portal_spec(**spec: Any) -> PortalSpec:
    return PortalSpec.model_validate(
        {
            "region": "zj",
            "names": {"zh": "门户", "en": "Portal"},
            "redirectUris": ["https://portal.zj.gov.cn/callback"],
            "secretName": "portal-oidc",
            **spec,
        }
    )


def test_a_region_may_leave_its_entity_id_to_the_operator() -> None:
    spec = region_spec(federation={"jwks": {"keys": [KEY]}})
    assert spec.federation is not None
    assert spec.federation.entity_id is None
    issuer = spec.issuer_at("https://id.example.gov.cn")
    assert spec.federation.document(issuer) == {
        "entity_id": "https://id.example.gov.cn/realms/zj",
        "jwks": {"keys": [KEY]},
        "metadata_policy": {},
    }


def test_a_portal_must_name_its_entity_id() -> None:
    with pytest.raises(ValidationError, match="entityId is required"):
        portal_spec(federation={"jwks": {"keys": [KEY]}})
    spec = portal_spec(
        federation={
            "entityId": "https://portal.zj.gov.cn",
            "jwks": {"keys": [KEY], "extra": 1},
            "metadataPolicy": {"openid_relying_party": {"grant_types": {"subset_of": ["x"]}}},
        }
    )
    assert spec.federation is not None
    document = spec.federation.document("https://portal.zj.gov.cn")
    assert document["jwks"] == {"keys": [KEY]}  # only keys: the gateway keeps nothing else
    assert document["metadata_policy"] == {
        "openid_relying_party": {"grant_types": {"subset_of": ["x"]}}
    }


def test_without_federation_nothing_is_published() -> None:
    assert region_spec().federation is None
    assert portal_spec().federation is None


@pytest.mark.parametrize(
    "entity_id",
    [
        "http://portal.zj.gov.cn",
        "https://portal.zj.gov.cn/?a=b",
        "https://portal.zj.gov.cn/#x",
        "https://user@portal.zj.gov.cn",
        "portal.zj.gov.cn",
    ],
)
def test_an_entity_id_is_an_https_url_without_query_fragment_or_userinfo(entity_id: str) -> None:
    with pytest.raises(ValidationError):
        FederationSpec.model_validate({"entityId": entity_id, "jwks": {"keys": [KEY]}})
    for kind in ("region", "portal"):
        pattern = federation_schema(kind)["spec"]["properties"]["federation"]["properties"][
            "entityId"
        ]["pattern"]
        assert re.search(pattern, entity_id) is None


@pytest.mark.parametrize("jwks", [{}, {"keys": []}, {"keys": ["k"]}, {"keys": [KEY] * 17}])
def test_a_jwks_is_a_set_of_one_to_sixteen_objects(jwks: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FederationSpec.model_validate({"jwks": jwks})


def test_the_crds_declare_federation_as_the_model_does() -> None:
    for kind, required in (("region", ["jwks"]), ("portal", ["entityId", "jwks"])):
        schema = federation_schema(kind)
        federation = schema["spec"]["properties"]["federation"]
        assert federation["required"] == required
        assert federation["properties"]["entityId"]["pattern"] == models.ENTITY_ID_PATTERN
        keys = federation["properties"]["jwks"]["properties"]["keys"]
        assert keys["maxItems"] == models.MAX_FEDERATION_KEYS
        assert set(federation["properties"]) == {
            info.alias or name for name, info in FederationSpec.model_fields.items()
        }
        assert "federationEntityId" in schema["status"]["properties"]


def registered_region(issuer: str) -> Region:
    return Region.model_validate(
        {
            "code": "zj",
            "names": {"zh": "浙江省", "en": "Zhejiang"},
            "kind": "province",
            "issuer": issuer,
            "client_id": "tongxing-gateway",
            "client_secret": "s" * 32,
        }
    )


def registered_portal(*redirect_uris: str) -> Portal:
    return Portal.model_validate(
        {
            "client_id": "portal",
            "names": {"zh": "门户", "en": "Portal"},
            "owner": "zj",
            "redirect_uris": list(redirect_uris),
            "token_endpoint_auth_method": "none",
        }
    )


def test_a_regions_entity_id_must_be_its_registered_issuer() -> None:
    region = registered_region("https://id.zj.gov.cn/realms/zj")
    _check_bound(region, "https://id.zj.gov.cn/realms/zj")
    for other in ("https://id.zj.gov.cn/realms/zj/", "https://id.zj.gov.cn", "https://x.cn"):
        with pytest.raises(InvalidDocument) as refused:
            _check_bound(region, other)
        fields = refused.value.details["fields"]
        assert isinstance(fields, list)
        assert [f["field"] for f in fields] == ["entity_id"]


def test_a_portals_entity_id_must_be_at_the_origin_of_a_redirect_uri() -> None:
    portal = registered_portal("https://portal.zj.gov.cn/callback", "https://m.zj.gov.cn/cb")
    for fine in ("https://portal.zj.gov.cn", "https://PORTAL.zj.gov.cn:443/federation"):
        _check_bound(portal, fine)
    for other in (
        "https://portal.zj.gov.cn.evil.example",
        "http://portal.zj.gov.cn",
        "https://portal.zj.gov.cn:8443",
        "https://zj.gov.cn",
        "com.example.app:/cb",
    ):
        with pytest.raises(InvalidDocument):
            _check_bound(portal, other)


def test_an_origin_is_scheme_host_and_port() -> None:
    assert _origin("https://A.example/x") == ("https", "a.example", 443)
    assert _origin("http://a.example:8080") == ("http", "a.example", 8080)
    assert _origin("https://a.example:99999") is None
    assert _origin("urn:x") is None
