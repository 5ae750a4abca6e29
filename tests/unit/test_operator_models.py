"""The Region and Portal specs, their conditions, and the status a reconcile leaves behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from realm_operator.models import (
    ConditionType,
    PortalSpec,
    RegionSpec,
    check_redirect_uri,
    set_condition,
)
from realm_operator.reconcile import INVALID_SPEC, ReconcileError, new_progress, parse_spec

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def region(**extra: Any) -> dict[str, Any]:
    return {
        "code": "zj",
        "names": {"zh": "浙江省", "en": "Zhejiang"},
        "kind": "province",
        "keycloak": {"url": "http://keycloak:8080/", "adminSecretRef": {"name": "kc-admin"}},
        **extra,
    }


def portal(**extra: Any) -> dict[str, Any]:
    return {
        "region": "zj",
        "names": {"zh": "浙江政务服务网", "en": "Zhejiang Government Services"},
        "redirectUris": ["https://www.zjzwfw.gov.cn/oidc/callback"],
        "secretName": "zwfw-oidc",
        **extra,
    }


def test_a_region_spec_takes_camel_case_and_fills_in_its_defaults() -> None:
    spec = RegionSpec.model_validate(region())
    assert spec.template_name == "province"
    assert spec.realm_name == "zj"
    assert spec.keycloak.url == "http://keycloak:8080"
    assert spec.issuer == "http://keycloak:8080/realms/zj"
    assert spec.keycloak.admin_secret_ref.username_key == "username"
    assert spec.acr_loa_map == {"otp": 2, "pwd": 1}
    assert spec.acr_levels == {"otp": "loa2", "pwd": "loa1"}
    assert spec.deletion_policy.value == "Delete"


def test_the_issuer_uses_the_public_url_and_the_realm_name() -> None:
    spec = RegionSpec.model_validate(
        region(
            keycloak={
                "url": "http://keycloak:8080",
                "publicUrl": "https://id.tongxing.gov.cn",
                "realm": "zhejiang",
                "adminSecretRef": {"name": "kc-admin"},
            }
        )
    )
    assert spec.issuer == "https://id.tongxing.gov.cn/realms/zhejiang"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"code": "ZJ"}, "code"),
        ({"kind": "county"}, "kind"),
        ({"unknownField": 1}, "unknownField"),
        ({"keycloak": {"url": "ftp://kc", "adminSecretRef": {"name": "a"}}}, "http"),
        (
            {
                "acrMapping": [
                    {"acr": "a", "loa": 1, "level": "loa1"},
                    {"acr": "b", "loa": 1, "level": "loa2"},
                ]
            },
            "each Keycloak level",
        ),
        (
            {
                "acrMapping": [
                    {"acr": "a", "loa": 1, "level": "loa1"},
                    {"acr": "a", "loa": 2, "level": "loa2"},
                ]
            },
            "each acr value",
        ),
        ({"acrMapping": []}, "acrMapping"),
    ],
)
def test_a_bad_region_spec_is_a_permanent_error_naming_the_field(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ReconcileError) as caught:
        parse_spec(RegionSpec, region(**change))
    assert caught.value.permanent
    assert caught.value.reason == INVALID_SPEC
    assert message in caught.value.message


def test_a_portal_spec_derives_its_client_id_and_scopes() -> None:
    spec = PortalSpec.model_validate(
        portal(requestedClaims=["phone_number", "name", "home_region"])
    )
    assert spec.client_id_for("zwfw-zj") == "zwfw-zj"
    assert spec.scopes == ["openid", "phone", "profile"]
    assert PortalSpec.model_validate(portal()).scopes == ["openid", "profile"]
    assert PortalSpec.model_validate(portal(clientId="zwfw")).client_id_for("x") == "zwfw"


@pytest.mark.parametrize(
    "uri",
    [
        "javascript:alert(1)",
        "https://*.zj.gov.cn/cb",
        "http://portal.zj.gov.cn/cb",
        "https://user@portal.zj.gov.cn/cb",
        "https://portal.zj.gov.cn/cb#top",
        "data:text/html,hi",
        "/relative/callback",
    ],
)
def test_redirect_uris_that_are_not_exact_https_urls_are_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="redirect URI"):
        check_redirect_uri(uri)
    with pytest.raises(ValidationError):
        PortalSpec.model_validate(portal(redirectUris=[uri]))


@pytest.mark.parametrize(
    "uri",
    ["https://portal.zj.gov.cn/cb?x=1", "http://127.0.0.1:8080/cb", "http://localhost/cb"],
)
def test_https_and_loopback_redirect_uris_are_accepted(uri: str) -> None:
    assert PortalSpec.model_validate(portal(redirectUris=[uri, uri])).redirect_uris == [uri]


def test_a_condition_moves_its_transition_time_only_when_its_status_changes() -> None:
    first = set_condition(
        [], ConditionType.READY, False, "KeycloakUnavailable", "down", generation=1, now=T0
    )
    later = T0 + timedelta(minutes=5)
    same = set_condition(
        first,
        ConditionType.READY,
        False,
        "KeycloakUnauthorized",
        "refused",
        generation=2,
        now=later,
    )
    assert same[0].last_transition_time == "2026-05-01T08:00:00Z"
    assert same[0].reason == "KeycloakUnauthorized"
    assert same[0].observed_generation == 2
    flipped = set_condition(same, ConditionType.READY, True, "Ready", "ok", generation=2, now=later)
    assert flipped[0].last_transition_time == "2026-05-01T08:05:00Z"
    assert len(flipped) == 1


def test_a_failed_reconcile_says_which_condition_failed_and_leaves_the_rest_unknown() -> None:
    progress = new_progress("Region", {}, 3, clock=lambda: T0)
    progress.fail(
        ReconcileError(ConditionType.REALM_READY, "KeycloakUnavailable", "cannot reach Keycloak")
    )
    status = progress.status()
    assert status["phase"] == "Provisioning"
    assert status["observedGeneration"] == 3
    conditions = {c["type"]: c for c in status["conditions"]}
    assert [c["type"] for c in status["conditions"]] == ["RealmReady", "GatewayRegistered", "Ready"]
    assert conditions["RealmReady"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "KeycloakUnavailable"
    assert conditions["Ready"]["message"] == "cannot reach Keycloak"
    assert conditions["GatewayRegistered"]["status"] == "Unknown"
    assert conditions["Ready"]["lastTransitionTime"] == "2026-05-01T08:00:00Z"


def test_a_permanent_failure_is_phase_failed() -> None:
    progress = new_progress("Portal", {}, 1, clock=lambda: T0)
    progress.fail(ReconcileError(ConditionType.READY, INVALID_SPEC, "bad", permanent=True))
    assert progress.status()["phase"] == "Failed"


def test_a_reconcile_keeps_the_conditions_it_found() -> None:
    before = new_progress("Region", {}, 1, clock=lambda: T0)
    before.set(ConditionType.REALM_READY, True, "RealmInSync", "ok")
    before.ready("ok")
    after = new_progress("Region", before.status(), 2, clock=lambda: T0 + timedelta(hours=1))
    after.ready("still ok")
    ready = {c["type"]: c for c in after.status()["conditions"]}["Ready"]
    assert ready["lastTransitionTime"] == "2026-05-01T08:00:00Z"
    assert ready["observedGeneration"] == 2
