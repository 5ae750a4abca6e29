"""The admin API's vocabulary is defined once (tongxing_api.vocabulary) and both sides use it.

DESIGN.md: the gateway and the operator share the admin API's words from one definition and never
import each other's internals. These tests hold that in place: the shared package imports
neither side, both sides take the very same objects from it and spell no shared pattern again,
and what the operator sends is what the gateway accepts.
"""

from __future__ import annotations

import ast
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from flask.testing import FlaskClient
from pydantic import SecretStr, ValidationError
from realm_operator import models
from realm_operator.cluster import Secrets
from realm_operator.reconcile import ObjectRef, PortalReconciler, RegionReconciler
from realm_operator.settings import OperatorSettings
from realm_operator.templates import RealmTemplates

from gateway import errors, registry
from gateway.app import create_app
from gateway.policy.entities import SCOPE_CLAIMS
from gateway.registry import ManagedBy, Portal, Region, hash_secret
from gateway.services import build_services
from gateway.settings import Settings
from tongxing_api import vocabulary
from tongxing_api.client import GatewayClient

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / "tongxing_api"
SIDES = {"gateway": REPO / "gateway", "realm_operator": REPO / "operator" / "realm_operator"}
#: What the shared package may import: the standard library, pydantic and (the client) requests.
NEVER_IMPORTED = {
    *("gateway", "realm_operator", "tongxing_demo", "tongxing_dev"),
    *("flask", "werkzeug", "authlib", "kopf", "kubernetes", "keycloak", "sqlalchemy"),
}


#: The one crossing: ``tongxing operator`` hands its arguments to the operator's entry point (one
#: command, two programs), importing nothing else of it.
ENTRY_POINT = (REPO / "gateway" / "cli" / "operator.py", "realm_operator.run")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def imported_roots(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


def test_the_shared_package_imports_neither_side_nor_a_framework() -> None:
    modules = sorted(SHARED.glob("*.py"))
    assert {path.name for path in modules} >= {"vocabulary.py", "client.py"}
    for path in modules:
        assert not imported_roots(path) & NEVER_IMPORTED, path.name
    # The words need no HTTP: only the client speaks it.
    assert "requests" not in imported_roots(SHARED / "vocabulary.py")


def test_neither_side_imports_the_other() -> None:
    for side, folder in SIDES.items():
        other = ({"gateway", "realm_operator"} - {side}).pop()
        for path in folder.rglob("*.py"):
            crossing = {m for m in imported_modules(path) if m.split(".")[0] == other}
            allowed = {ENTRY_POINT[1]} if path == ENTRY_POINT[0] else set()
            assert crossing <= allowed, path.relative_to(REPO)


def test_the_gateway_and_the_operator_take_the_same_objects_from_the_vocabulary() -> None:
    for name in ("CODE_PATTERN", "CLIENT_ID_PATTERN", "PRINCIPAL_PATTERN"):
        assert getattr(registry, name) is getattr(vocabulary, name)
    for name in ("Level", "Names", "RegionKind", "AuthMethod", "check_absolute_url"):
        assert getattr(registry, name) is getattr(vocabulary, name)
    for name in ("Level", "Names", "RegionKind", "check_redirect_uri"):
        assert getattr(models, name) is getattr(vocabulary, name)
    region_fields = models.RegionSpec.model_fields
    assert region_fields["names"].annotation is Region.model_fields["names"].annotation
    assert region_fields["kind"].annotation is Region.model_fields["kind"].annotation
    portal_fields = models.PortalSpec.model_fields
    method = Portal.model_fields["token_endpoint_auth_method"].annotation
    assert portal_fields["token_endpoint_auth_method"].annotation is method
    subject_type = Portal.model_fields["subject_type"].annotation
    assert portal_fields["subject_type"].annotation == subject_type
    assert set(ManagedBy.model_fields) == {"principal", *vocabulary.RESOURCE_FIELDS}
    assert get_args(ManagedBy.model_fields["kind"].annotation)[0] is vocabulary.OwnerKind


SHARED_PATTERNS = {
    name: getattr(vocabulary, name)
    for name in (
        "CODE_PATTERN",
        "CLIENT_ID_PATTERN",
        "NAMESPACE_PATTERN",
        "RESOURCE_NAME_PATTERN",
        "UID_PATTERN",
        "REDIRECT_URI_PATTERN",
    )
}


def test_no_module_of_either_side_spells_a_shared_pattern_again() -> None:
    for folder in SIDES.values():
        for path in folder.rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for name, pattern in SHARED_PATTERNS.items():
                body = pattern.strip("^$")
                assert body not in text, f"{path.relative_to(REPO)} spells {name} again"


def test_levels_are_ordered_weakest_first() -> None:
    assert vocabulary.LEVELS == ("loa1", "loa2", "loa3")
    assert vocabulary.above("loa3", "loa2")
    assert not vocabulary.above("loa2", "loa2")
    assert not vocabulary.above("loa1", "loa3")


def test_the_scope_a_portal_gets_for_a_claim_releases_that_claim() -> None:
    for claim, scope in vocabulary.CLAIM_SCOPES.items():
        assert claim.value in SCOPE_CLAIMS[scope], claim
    assert set(vocabulary.CLAIM_SCOPES) == set(vocabulary.Claim)
    released = {claim for claims in SCOPE_CLAIMS.values() for claim in claims}
    assert set(get_args(vocabulary.ConsentClaim)) <= released


def test_every_error_code_the_admin_api_answers_is_one_the_client_keeps() -> None:
    answered: set[type[errors.TongxingError]] = {
        errors.InvalidDocument,
        errors.InvalidToken,
        errors.NoRoleAllowed,
        errors.RoleRefused,
        errors.ManagedByAnother,
        errors.RegistrationNotFound,
        errors.RegistrationTaken,
        errors.RegistrationChanged,
        errors.InvalidPolicySet,
        errors.MethodNotAllowed,
        errors.NotFound,
        errors.ServerError,
    }
    assert {error.code for error in answered} <= vocabulary.ADMIN_ERROR_CODES


@pytest.mark.parametrize(
    "uri",
    [
        "https://portal.zj.gov.cn/a/../cb",
        "https://portal.zj.gov.cn/./cb",
        "https://portal.zj.gov.cn/cb#",
        "https://user:pw@portal.zj.gov.cn/cb",
        "http://portal.zj.gov.cn/cb",
    ],
)
def test_a_redirect_uri_the_gateway_refuses_the_operator_refuses_first(uri: str) -> None:
    with pytest.raises(ValueError, match="redirect URI"):
        vocabulary.check_redirect_uri(uri)
    with pytest.raises(ValidationError):
        models.PortalSpec.model_validate(
            {
                "region": "zj",
                "names": {"zh": "浙江政务服务网", "en": "Zhejiang services"},
                "redirectUris": [uri],
                "secretName": "zwfw-credentials",
            }
        )


@pytest.mark.parametrize(
    "uri", ["https://portal.zj.gov.cn/cb?from=gw", "http://127.0.0.1:8080/cb", "http://[::1]/cb"]
)
def test_the_crd_pattern_and_the_rule_accept_the_same_redirect_uris(uri: str) -> None:
    assert re.fullmatch(vocabulary.REDIRECT_URI_PATTERN, uri)
    assert vocabulary.check_redirect_uri(uri) == uri


# What the operator sends, the gateway accepts

REF_OWNER = {"kind": "Region", "namespace": "zj-gov", "name": "zj", "uid": "uid-zj-1"}
REF = ObjectRef(**REF_OWNER, generation=1)


def operator_settings() -> OperatorSettings:
    return OperatorSettings.model_validate(
        {"gateway_url": "http://gateway.test", "admin_token": "o" * 32}
    )


def gateway_client() -> GatewayClient:
    return GatewayClient("http://gateway.test", SecretStr("o" * 32))


def no_secrets() -> Secrets:
    """Building a registration reads no Secret: a Secrets that could not read one."""
    return Secrets.__new__(Secrets)


def owned(document: dict[str, Any]) -> dict[str, Any]:
    """The document as the gateway records it: the caller's principal added to managed_by."""
    return {**document, "managed_by": {"principal": "operator", **document["managed_by"]}}


@pytest.mark.parametrize("kind", list(vocabulary.RegionKind))
def test_every_region_the_operator_registers_is_a_region_the_gateway_accepts(
    kind: vocabulary.RegionKind,
) -> None:
    spec = models.RegionSpec.model_validate(
        {
            "code": "zj",
            "names": {"zh": "浙江省", "en": "Zhejiang"},
            "kind": kind.value,
            "keycloak": {"url": "http://keycloak:8080"},
            "acrMapping": [
                {"acr": level, "loa": rank, "level": level}
                for rank, level in enumerate(vocabulary.LEVELS, start=1)
            ],
        }
    )
    reconciler = RegionReconciler(
        operator_settings(), RealmTemplates(), gateway_client(), no_secrets()
    )
    document = reconciler.registration(REF, spec, "https://id.example.gov.cn/realms/zj")
    region = Region.model_validate(owned({**document, "client_secret": "s" * 32}))
    assert region.kind is kind
    assert region.managed_by == ManagedBy.model_validate({"principal": "operator", **REF_OWNER})
    assert region.acr_mapping == {level: level for level in vocabulary.LEVELS}


@pytest.mark.parametrize("method", models.PORTAL_AUTH_METHODS)
def test_every_portal_the_operator_registers_is_a_portal_the_gateway_accepts(
    method: vocabulary.AuthMethod,
) -> None:
    spec = models.PortalSpec.model_validate(
        {
            "region": "zj",
            "clientId": "zwfw.zj-gov",
            "names": {"zh": "浙江政务服务网", "en": "Zhejiang services"},
            "redirectUris": ["https://www.zjzwfw.gov.cn/cb", "http://127.0.0.1:8080/cb"],
            "postLogoutRedirectUris": ["https://www.zjzwfw.gov.cn/"],
            "backchannelLogoutUri": "https://www.zjzwfw.gov.cn/logout",
            "sectorIdentifierUri": "https://www.zjzwfw.gov.cn/sector.json",
            "requestedClaims": [claim.value for claim in vocabulary.Claim],
            "minimumLevel": "loa2",
            "sector": "tax",
            "subjectType": "pairwise",
            "tokenEndpointAuthMethod": method.value,
            "secretName": "zwfw-credentials",
        }
    )
    ref = ObjectRef("Portal", "zj-gov", "zwfw", "uid-zwfw-1", 1)
    reconciler = PortalReconciler(operator_settings(), gateway_client(), no_secrets())
    document = owned(reconciler.registration(ref, spec, "zwfw.zj-gov"))
    if method.uses_secret:
        document["client_secret_hash"] = hash_secret("c" * 32)
    portal = Portal.model_validate(document)
    assert portal.token_endpoint_auth_method is method
    assert portal.scopes == ["openid", "phone", "profile"]
    assert portal.sector_identifier_uri == "https://www.zjzwfw.gov.cn/sector.json"


def test_a_portal_resource_cannot_ask_for_private_key_jwt() -> None:
    with pytest.raises(ValidationError, match="a Portal carries no keys"):
        models.PortalSpec.model_validate(
            {
                "region": "zj",
                "names": {"zh": "浙江政务服务网", "en": "Zhejiang services"},
                "redirectUris": ["https://www.zjzwfw.gov.cn/cb"],
                "tokenEndpointAuthMethod": "private_key_jwt",
                "secretName": "zwfw-credentials",
            }
        )


# What the gateway tells portals agrees with the words


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[FlaskClient]:
    settings = Settings.model_validate(
        {
            "issuer": "https://tongxing.example.cn",
            "data_dir": tmp_path,
            "create_keys": True,
            **{
                name: secrets.token_urlsafe(32)
                for name in (
                    "national_secret",
                    "pairwise_secret",
                    "session_secret",
                    "mfa_secret",
                    "admin_token",
                )
            },
        }
    )
    services = build_services(settings)
    yield create_app(services=services).test_client()
    services.close()


def test_discovery_offers_the_vocabularys_levels_subject_types_and_auth_methods(
    gateway: FlaskClient,
) -> None:
    document = gateway.get("/.well-known/openid-configuration").get_json()
    assert document["acr_values_supported"] == list(vocabulary.LEVELS)
    assert document["subject_types_supported"] == list(vocabulary.SUBJECT_TYPES)
    methods = document["token_endpoint_auth_methods_supported"]
    assert sorted(methods) == sorted(method.value for method in vocabulary.AuthMethod)
    assert gateway.get(f"{vocabulary.API_PATH}/openapi.json").status_code == 200
