"""The CRDs agree with what they declare: the admin API's shared vocabulary (codes, client ids,
levels, region kinds, claims, auth methods, redirect URIs: tongxing_api.vocabulary) and the
operator's own models (realms, Secrets, acr values, overrides, status)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from realm_operator import models
from realm_operator.templates import RealmTemplates

from tongxing_api import vocabulary

REPO = Path(__file__).resolve().parents[2]
OPERATOR = REPO / "operator"
# What the CRD and the overrides model must agree on for each field.
BOUNDS = (
    *("type", "enum", "pattern", "minimum", "maximum"),
    *("minLength", "maxLength", "items", "minItems", "maxItems"),
)


def crd(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((OPERATOR / "crds" / f"{name}.yaml").read_text())
    return document


def version(name: str) -> dict[str, Any]:
    (served,) = crd(name)["spec"]["versions"]
    assert served["name"] == models.VERSION
    return dict(served)


def spec_schema(name: str) -> dict[str, Any]:
    return dict(version(name)["schema"]["openAPIV3Schema"]["properties"]["spec"])


def test_both_kinds_live_in_the_tongxing_group_with_a_status_subresource() -> None:
    for name, kind in (("region", "Region"), ("portal", "Portal")):
        document = crd(name)
        assert document["spec"]["group"] == models.GROUP
        assert document["spec"]["names"]["kind"] == kind
        assert document["spec"]["names"]["shortNames"]
        assert "tongxing" in document["spec"]["names"]["categories"]
        assert version(name)["subresources"] == {"status": {}}


def test_printer_columns_show_ready_the_issuer_or_client_and_age() -> None:
    region = {c["name"]: c["jsonPath"] for c in version("region")["additionalPrinterColumns"]}
    portal = {c["name"]: c["jsonPath"] for c in version("portal")["additionalPrinterColumns"]}
    ready = '.status.conditions[?(@.type=="Ready")].status'
    assert region["Ready"] == ready
    assert portal["Ready"] == ready
    assert region["Issuer"] == ".status.issuer"
    assert portal["Client"] == ".status.clientId"
    assert region["Age"] == portal["Age"] == ".metadata.creationTimestamp"


def test_region_patterns_and_enumerations_match_the_models() -> None:
    schema = spec_schema("region")
    fields = schema["properties"]
    assert fields["code"]["pattern"] == vocabulary.CODE_PATTERN
    assert fields["kind"]["enum"] == [k.value for k in vocabulary.RegionKind]
    assert fields["keycloak"]["properties"]["realm"]["pattern"] == models.REALM_PATTERN
    secret = fields["keycloak"]["properties"]["adminSecretRef"]["properties"]["name"]
    assert secret["pattern"] == models.SECRET_NAME_PATTERN
    acr = fields["acrMapping"]["items"]["properties"]
    assert acr["acr"]["pattern"] == models.ACR_PATTERN
    assert acr["level"]["enum"] == list(vocabulary.LEVELS) == ["loa1", "loa2", "loa3"]
    assert fields["deletionPolicy"]["enum"] == [p.value for p in models.DeletionPolicy]
    assert fields["mfa"]["properties"]["otp"]["enum"] == [p.value for p in models.OtpPolicy]
    assert set(schema["required"]) == {"code", "names", "kind", "keycloak"}


def test_a_region_names_only_a_keycloak_url_and_credentials_are_deprecated() -> None:
    keycloak = spec_schema("region")["properties"]["keycloak"]
    assert keycloak["required"] == ["url"]
    assert "Deprecated" in keycloak["properties"]["adminSecretRef"]["description"]
    assert "CredentialsNotGranted" in keycloak["properties"]["adminSecretRef"]["description"]
    assert "CredentialsNotGranted" in keycloak["properties"]["adminRealm"]["description"]
    assert "KeycloakNotAllowed" in keycloak["description"]


def _model_bounds(name: str) -> dict[str, Any]:
    """The bounds the overrides model puts on one field, in JSON Schema words."""
    schema = models.RealmOverrides.model_json_schema(by_alias=True)["properties"][name]
    (branch,) = [b for b in schema["anyOf"] if b.get("type") != "null"]
    if "const" in branch:
        branch = {**branch, "enum": [branch.pop("const")]}
    return {key: branch[key] for key in BOUNDS if key in branch}


def test_the_overrides_allow_list_is_declared_with_the_models_bounds() -> None:
    overrides = spec_schema("region")["properties"]["overrides"]
    # Unknown fields are kept, so the operator can name them in OverrideNotAllowed.
    assert overrides["x-kubernetes-preserve-unknown-fields"] is True
    declared = overrides["properties"]
    assert sorted(declared) == sorted(models.RealmOverrides.allowed())
    for name, schema in declared.items():
        crd_bounds = {key: schema[key] for key in BOUNDS if key in schema}
        assert crd_bounds == _model_bounds(name), name
    assert "OverrideNotAllowed" in overrides["description"]


def test_the_charts_copy_of_the_region_crd_is_the_same_file() -> None:
    chart = REPO / "charts" / "tongxing" / "files" / "crds" / "region.yaml"
    assert chart.read_bytes() == (OPERATOR / "crds" / "region.yaml").read_bytes()


def test_the_charts_copy_of_the_portal_crd_is_the_same_file() -> None:
    chart = REPO / "charts" / "tongxing" / "files" / "crds" / "portal.yaml"
    assert chart.read_bytes() == (OPERATOR / "crds" / "portal.yaml").read_bytes()


def test_every_field_of_the_portal_spec_is_in_the_crd() -> None:
    """A field the model takes but the CRD lacks is pruned by the API server before the
    operator ever sees it: the two list the same fields."""
    fields = set(spec_schema("portal")["properties"])
    assert fields == {info.alias or name for name, info in models.PortalSpec.model_fields.items()}


def test_the_template_enumeration_is_the_templates_in_realms() -> None:
    enum = spec_schema("region")["properties"]["realmTemplate"]["enum"]
    assert sorted(enum) == RealmTemplates().names()


def test_portal_patterns_and_enumerations_match_the_models() -> None:
    schema = spec_schema("portal")
    fields = schema["properties"]
    assert fields["region"]["pattern"] == vocabulary.CODE_PATTERN
    assert fields["clientId"]["pattern"] == vocabulary.CLIENT_ID_PATTERN
    assert fields["secretName"]["pattern"] == models.SECRET_NAME_PATTERN
    assert fields["requestedClaims"]["items"]["enum"] == [c.value for c in vocabulary.Claim]
    assert fields["minimumLevel"]["enum"] == list(vocabulary.LEVELS)
    assert fields["sector"]["pattern"] == vocabulary.SECTOR_PATTERN
    assert fields["subjectType"]["enum"] == list(vocabulary.SUBJECT_TYPES)
    assert fields["subjectKinds"]["enum"] == list(vocabulary.SUBJECT_KINDS)
    assert fields["backchannelLogoutSessionRequired"]["type"] == "boolean"
    # A Portal carries no keys: every auth method of the API but private_key_jwt.
    methods = [m.value for m in models.PORTAL_AUTH_METHODS]
    assert fields["tokenEndpointAuthMethod"]["enum"] == methods
    assert set(vocabulary.AuthMethod) - set(models.PORTAL_AUTH_METHODS) == {
        vocabulary.AuthMethod.PRIVATE_KEY_JWT
    }
    assert set(schema["required"]) == {"region", "names", "redirectUris", "secretName"}
    assert fields["applicationType"]["enum"] == list(vocabulary.APPLICATION_TYPES)
    redirect = fields["redirectUris"]["items"]
    assert redirect["format"] == "uri"
    # A web portal's URIs, or a native app's private-use scheme (RFC 8252 §7.1).
    assert redirect["pattern"] == vocabulary.PORTAL_REDIRECT_URI_PATTERN
    assert fields["postLogoutRedirectUris"]["items"] == redirect
    uri = fields["backchannelLogoutUri"]  # the gateway calls it: never a private-use scheme
    assert uri["format"] == "uri"
    assert uri["pattern"] == vocabulary.REDIRECT_URI_PATTERN
    assert fields["sectorIdentifierUri"] == uri


@pytest.mark.parametrize(
    ("uri", "accepted"),
    [
        ("https://www.zjzwfw.gov.cn/oidc/callback", True),
        ("https://www.zjzwfw.gov.cn/cb?from=gw", True),
        ("http://127.0.0.1:8080/cb", True),
        ("http://localhost/cb", True),
        ("javascript:alert(1)", False),
        ("https://*.zjzwfw.gov.cn/cb", False),
        ("https://www.zjzwfw.gov.cn/*", False),
        ("http://www.zjzwfw.gov.cn/cb", False),
        ("https://user@www.zjzwfw.gov.cn/cb", False),
        ("https://www.zjzwfw.gov.cn/cb#x", False),
    ],
)
def test_the_crd_redirect_uri_pattern_agrees_with_the_model(uri: str, accepted: bool) -> None:
    pattern = spec_schema("portal")["properties"]["redirectUris"]["items"]["pattern"]
    assert bool(re.fullmatch(pattern, uri)) is accepted
    try:
        models.check_redirect_uri(uri)
        by_model = True
    except ValueError:
        by_model = False
    assert by_model is accepted


def test_display_names_have_the_vocabularys_bounds_in_both_kinds() -> None:
    bounds = {"type": "string", "minLength": 1, "maxLength": vocabulary.NAME_MAX_LENGTH}
    for name in ("region", "portal"):
        names = spec_schema(name)["properties"]["names"]
        assert names["required"] == ["zh", "en"]
        assert names["properties"] == {"zh": bounds, "en": bounds}


def test_status_conditions_carry_what_kubectl_wait_and_people_need() -> None:
    for name in ("region", "portal"):
        status = version(name)["schema"]["openAPIV3Schema"]["properties"]["status"]
        item = status["properties"]["conditions"]["items"]
        assert set(item["required"]) == {"type", "status", "reason", "lastTransitionTime"}
        assert {"message", "observedGeneration"} <= set(item["properties"])
        assert "observedGeneration" in status["properties"]


def test_the_example_manifests_are_valid_specs_for_the_models() -> None:
    regions = 0
    for path in sorted((OPERATOR / "examples").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document["kind"] == "Region":
                spec = models.RegionSpec.model_validate(document["spec"])
                assert spec.keycloak.admin_secret_ref is None, path.name  # credentials: granted
                assert spec.keycloak.admin_realm is None, path.name
                models.check_overrides(spec.overrides)
                regions += 1
            elif document["kind"] == "Portal":
                models.PortalSpec.model_validate(document["spec"])
    assert regions >= 3
