"""The Region and Portal specs, the overrides allow-list, the platform's settings, and the
status a reconcile leaves behind."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from pydantic import SecretStr, ValidationError
from realm_operator.cluster import Secrets
from realm_operator.models import (
    ConditionType,
    OverrideError,
    PortalSpec,
    RealmOverrides,
    RegionSpec,
    check_overrides,
    check_password_policy,
    check_redirect_uri,
    normalise_service_url,
    set_condition,
)
from realm_operator.reconcile import (
    INVALID_SPEC,
    ObjectRef,
    PortalReconciler,
    ReconcileError,
    new_progress,
    parse_spec,
)
from realm_operator.settings import OperatorSettings

from gateway.registry import Portal, hash_secret
from tongxing_api.client import GatewayClient
from tongxing_api.vocabulary import SUBJECT_KINDS

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def region(**extra: Any) -> dict[str, Any]:
    return {
        "code": "zj",
        "names": {"zh": "浙江省", "en": "Zhejiang"},
        "kind": "province",
        "keycloak": {"url": "http://keycloak:8080/"},
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
    assert spec.issuer_at("https://id.tongxing.gov.cn") == "https://id.tongxing.gov.cn/realms/zj"
    assert spec.keycloak.admin_secret_ref is None
    assert spec.keycloak.admin_realm is None  # the grant's, unless the Region says otherwise
    assert spec.overrides == {}
    assert spec.acr_loa_map == {"otp": 2, "pwd": 1}
    assert spec.acr_levels == {"otp": "loa2", "pwd": "loa1"}
    assert spec.deletion_policy.value == "Delete"


def test_the_issuer_is_below_the_base_it_is_given_and_names_the_realm() -> None:
    spec = RegionSpec.model_validate(
        region(
            keycloak={
                "url": "http://keycloak:8080",
                "publicUrl": "https://id.tongxing.gov.cn",
                "realm": "zhejiang",
            }
        )
    )
    assert spec.issuer_at("https://id.tongxing.gov.cn") == (
        "https://id.tongxing.gov.cn/realms/zhejiang"
    )


def test_a_deprecated_admin_secret_ref_is_parsed_whatever_it_holds_so_it_can_be_refused() -> None:
    for value in ({"name": "kc-admin"}, {"name": "x", "usernameKey": "admin-token"}, "kc-admin"):
        spec = RegionSpec.model_validate(
            region(keycloak={"url": "http://kc", "adminSecretRef": value})
        )
        assert spec.keycloak.admin_secret_ref == value


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("http://keycloak:8080/", "http://keycloak:8080"),
        ("HTTP://KeyCloak.Example.CN:8443/Auth/", "http://keycloak.example.cn:8443/Auth"),
        ("https://id.example.cn", "https://id.example.cn"),
        ("http://[::1]:8080//", "http://[::1]:8080"),
    ],
)
def test_service_urls_are_compared_in_one_normal_form(url: str, normal: str) -> None:
    assert normalise_service_url(url, what="url") == normal
    assert RegionSpec.model_validate(region(keycloak={"url": url})).keycloak.url == normal


@pytest.mark.parametrize(
    "url",
    [
        "ftp://keycloak",
        "keycloak:8080",
        "http://admin:pw@keycloak:8080",
        "http://keycloak:8080/?realm=master",
        "http://keycloak:8080/#x",
        "http://keycloak:99999",
        "http://key cloak",
    ],
)
def test_service_urls_with_credentials_queries_or_fragments_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="url"):
        normalise_service_url(url, what="url")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"code": "ZJ"}, "code"),
        ({"kind": "county"}, "kind"),
        ({"unknownField": 1}, "unknownField"),
        ({"keycloak": {"url": "ftp://kc"}}, "http"),
        ({"keycloak": {"url": "http://kc", "adminRealm": ""}}, "adminRealm"),
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


# The overrides allow-list


def test_allowed_overrides_become_a_partial_realm_in_keycloaks_names() -> None:
    overrides = check_overrides(
        {
            "displayName": "浙江政务",
            "loginTheme": "zj-gov",
            "supportedLocales": ["zh-CN", "zh-HK", "en"],
            "defaultLocale": "zh-CN",
            "passwordPolicy": "length(12) and digits(1) and notUsername",
            "otpPolicyAlgorithm": "HmacSHA256",
            "otpPolicyDigits": 8,
            "bruteForceProtected": True,
            "failureFactor": 3,
            "permanentLockout": False,
        }
    )
    assert overrides.realm() == {
        "displayName": "浙江政务",
        "loginTheme": "zj-gov",
        "supportedLocales": ["zh-CN", "zh-HK", "en"],
        "defaultLocale": "zh-CN",
        "passwordPolicy": "length(12) and digits(1) and notUsername",
        "otpPolicyAlgorithm": "HmacSHA256",
        "otpPolicyDigits": 8,
        "bruteForceProtected": True,
        "failureFactor": 3,
        "permanentLockout": False,
    }
    assert check_overrides({}).realm() == {}


@pytest.mark.parametrize(
    ("overrides", "field", "why"),
    [
        ({"browserFlow": "direct grant"}, "browserFlow", "not a setting a Region may override"),
        ({"authenticationFlows": []}, "authenticationFlows", "not a setting"),
        ({"identityProviders": [{"alias": "x"}]}, "identityProviders", "not a setting"),
        ({"registrationAllowed": True}, "registrationAllowed", "not a setting"),
        ({"attributes": {"acr.loa.map": "{}"}}, "attributes", "not a setting"),
        ({"smtpServer": {"host": "smtp.evil"}}, "smtpServer", "not a setting"),
        ({"display_name": "snake"}, "display_name", "not a setting"),
        ({"bruteForceProtected": False}, "bruteForceProtected", "cannot be turned off"),
        ({"internationalizationEnabled": False}, "internationalizationEnabled", "cannot be"),
        ({"clients": []}, "clients", "overrides may not set clients"),
        ({"realm": "master"}, "realm", "overrides may not set realm"),
        ({"enabled": False}, "enabled", "overrides may not set enabled"),
        ({"failureFactor": 0}, "failureFactor", "greater than or equal to 1"),
        ({"failureFactor": 11}, "failureFactor", "less than or equal to 10"),
        ({"waitIncrementSeconds": 5}, "waitIncrementSeconds", "30"),
        ({"maxFailureWaitSeconds": 100000}, "maxFailureWaitSeconds", "86400"),
        ({"otpPolicyDigits": 4}, "otpPolicyDigits", "6"),
        ({"otpPolicyPeriod": 600}, "otpPolicyPeriod", "60"),
        ({"otpPolicyLookAheadWindow": 5}, "otpPolicyLookAheadWindow", "1"),
        ({"otpPolicyType": "hotp"}, "otpPolicyType", "totp"),
        ({"otpPolicyAlgorithm": "MD5"}, "otpPolicyAlgorithm", "HmacSHA1"),
        ({"loginTheme": "../../etc"}, "loginTheme", "pattern"),
        ({"supportedLocales": ["zh-CN", "zh-CN"]}, "supportedLocales", "once"),
        ({"supportedLocales": ["zh-CN", "<b>"]}, "supportedLocales[1]", "pattern"),
        ({"defaultLocale": "en"}, "defaultLocale", "one of supportedLocales"),
        (
            {"supportedLocales": ["zh-CN"], "defaultLocale": "en"},
            "defaultLocale",
            "one of supportedLocales",
        ),
        ({"passwordPolicy": "length(4)"}, "passwordPolicy", "length must be between 8"),
        ({"passwordPolicy": "digits(2)"}, "passwordPolicy", "length(n) with n >= 8 is required"),
    ],
)
def test_anything_else_is_refused_naming_the_field(
    overrides: dict[str, Any], field: str, why: str
) -> None:
    with pytest.raises(OverrideError) as caught:
        check_overrides(overrides)
    assert f"spec.overrides.{field}" in caught.value.fields
    assert f"spec.overrides.{field}: " in str(caught.value)
    assert why in str(caught.value)


def test_every_refused_field_is_named_once_and_allowed_ones_are_not() -> None:
    with pytest.raises(OverrideError) as caught:
        check_overrides({"displayName": "ok", "browserFlow": "x", "users": [], "failureFactor": 99})
    assert sorted(caught.value.fields) == [
        "spec.overrides.browserFlow",
        "spec.overrides.failureFactor",
        "spec.overrides.users",
    ]


def test_the_allow_list_is_what_the_contract_lists() -> None:
    assert set(RealmOverrides.allowed()) == {
        "displayName",
        "displayNameHtml",
        "loginTheme",
        "accountTheme",
        "emailTheme",
        "internationalizationEnabled",
        "supportedLocales",
        "defaultLocale",
        "passwordPolicy",
        "otpPolicyType",
        "otpPolicyAlgorithm",
        "otpPolicyDigits",
        "otpPolicyPeriod",
        "otpPolicyLookAheadWindow",
        "bruteForceProtected",
        "failureFactor",
        "waitIncrementSeconds",
        "maxFailureWaitSeconds",
        "permanentLockout",
    }


@pytest.mark.parametrize(
    "policy",
    [
        "length(8)",
        "length(12) and maxLength(128) and lowerCase(1) and upperCase(1) and digits(1) and "
        "notUsername and passwordHistory(5)",
        "length(14) and specialChars(1) and notEmail and notContainsUsername and passwordAge(90)",
        "length(10) and hashAlgorithm(pbkdf2-sha512) and hashIterations(210000)",
        "length(10) and hashAlgorithm(pbkdf2-sha256) and hashIterations(600000)",
        "length(10) and hashAlgorithm(argon2) and hashIterations(5)",
        "length(10) and hashAlgorithm(argon2)",
        "length(10) and forceExpiredPasswordChange(365)",
    ],
)
def test_password_policies_within_bounds_pass(policy: str) -> None:
    assert check_password_policy(policy) == policy


@pytest.mark.parametrize(
    ("policy", "why"),
    [
        ("length(7)", "length must be between 8 and 128"),
        ("digits(1)", "length(n) with n >= 8 is required"),
        ("length", "length needs a number"),
        ("length(12) and length(14)", "length appears twice"),
        ("length(12) and maxLength(10)", "maxLength must not be below length"),
        ("length(12) and regexPattern([a-z]+)", "regexPattern is not a policy"),
        ("length(12) and regexPattern(^(a+)+$)", "is not a policy like"),
        ("length(12) and passwordBlacklist(/etc/passwd)", "passwordBlacklist is not a policy"),
        ("length(12) and hashAlgorithm(md5)", "hashAlgorithm must be one of"),
        ("length(12) and hashAlgorithm(pbkdf2)", "hashAlgorithm must be one of"),
        ("length(12) and hashIterations(1)", "hashIterations needs hashAlgorithm"),
        (
            "length(12) and hashAlgorithm(pbkdf2-sha512) and hashIterations(27500)",
            "between 210000 and 1000000",
        ),
        (
            "length(12) and hashAlgorithm(pbkdf2-sha256) and hashIterations(210000)",
            "between 600000 and 1000000",
        ),
        (
            "length(12) and hashAlgorithm(argon2) and hashIterations(1000)",
            "between 5 and 20",
        ),
        ("length(12) and notUsername(undefined)", "notUsername takes no argument"),
        ("length(12) or digits(1)", "is not a policy like"),
        ("length(12) and ", "is not a policy like"),
        ("length(-1)", "length needs a number"),
    ],
)
def test_password_policies_out_of_bounds_are_refused_saying_why(policy: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        check_password_policy(policy)


# The platform's settings


def grant(**extra: Any) -> dict[str, Any]:
    return {
        "url": "http://keycloak.kc.svc:8080",
        "public_url": "https://id.example.gov.cn",
        "admin_realm": "master",
        "credentials_secret": {"namespace": "tongxing-system", "name": "keycloak-admin"},
        "namespaces": ["*"],
        **extra,
    }


def test_the_platform_settings_are_read_from_the_environment_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TONGXING_OPERATOR_GATEWAY_URL", "http://gateway:8080")
    monkeypatch.setenv("TONGXING_OPERATOR_ADMIN_TOKEN", "o" * 32)
    monkeypatch.setenv(
        "TONGXING_OPERATOR_KEYCLOAKS",
        json.dumps(
            [
                grant(url="HTTP://Keycloak.KC.svc:8080/"),
                {
                    "url": "http://kc-dept:8080",
                    "publicUrl": "https://id-dept.example.gov.cn",
                    "adminRealm": "ops",
                    "credentialsSecret": {"namespace": "platform", "name": "kc-dept"},
                    "namespaces": ["departments"],
                },
            ]
        ),
    )
    monkeypatch.setenv("TONGXING_OPERATOR_LEVEL_CEILING", "loa1")
    monkeypatch.setenv("TONGXING_OPERATOR_REGION_LEVEL_CEILINGS", '{"zj": "loa3"}')
    settings = OperatorSettings()  # type: ignore[call-arg]  # from the environment
    shared, departments = settings.keycloaks
    assert shared.url == "http://keycloak.kc.svc:8080"
    assert shared.issuer_base == "https://id.example.gov.cn"
    assert shared.credentials_secret.key == "tongxing-system/keycloak-admin"
    assert shared.allows("anything")
    assert departments.admin_realm == "ops"
    assert departments.allows("departments")
    assert not departments.allows("tongxing")
    assert settings.grant_for("http://KC-DEPT:8080/") == departments
    assert settings.grant_for("http://kc-dept:8080/auth") is None
    assert settings.grant_for("http://kc-dept:8081") is None
    assert settings.grant_for("https://kc-dept:8080") is None
    assert settings.ceiling_for("zj") == "loa3"
    assert settings.ceiling_for("sh") == "loa1"


def platform(**values: Any) -> OperatorSettings:
    """Settings as given here (not from the environment)."""
    return OperatorSettings.model_validate(
        {"gateway_url": "http://gw", "admin_token": "o" * 32, **values}
    )


def test_the_defaults_grant_nothing_and_cap_every_region_at_loa2() -> None:
    settings = platform()
    assert settings.keycloaks == []
    assert settings.grant_for("http://keycloak:8080") is None
    assert settings.ceiling_for("zj") == "loa2"
    minimal = platform(
        keycloaks=[
            {
                "url": "http://kc",
                "credentials_secret": {"namespace": "p", "name": "s"},
                "namespaces": ["t"],
            }
        ]
    )
    assert minimal.keycloaks[0].admin_realm == "master"
    assert minimal.keycloaks[0].issuer_base == "http://kc"


@pytest.mark.parametrize(
    ("keycloaks", "ceilings", "what"),
    [
        ([grant(), grant(url="http://KEYCLOAK.kc.svc:8080/")], {}, "granted once"),
        ([grant(url="http://admin:pw@kc")], {}, "userinfo"),
        ([grant(url="http://kc/?x=1")], {}, "query"),
        ([grant(public_url="ftp://id")], {}, "http"),
        ([grant(namespaces=[])], {}, "namespaces"),
        ([grant(namespaces=["Not_A_Namespace"])], {}, "namespace name"),
        ([grant(credentials_secret={"namespace": "p"})], {}, "name"),
        ([grant(credentials_secret={"namespace": "p", "name": "s", "key": "x"})], {}, "key"),
        ([grant(username_key="user")], {}, "username_key"),
        ([], {"ZJ": "loa3"}, "not region codes"),
        ([], {"zj": "loa4"}, "region_level_ceilings"),
    ],
)
def test_a_bad_platform_setting_stops_the_operator_at_start_up(
    keycloaks: list[dict[str, Any]], ceilings: dict[str, str], what: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        platform(keycloaks=keycloaks, region_level_ceilings=ceilings)
    assert what in str(caught.value)


def test_a_bad_level_ceiling_is_refused() -> None:
    with pytest.raises(ValidationError, match="level_ceiling"):
        platform(level_ceiling="loa9")


# --- the registration fields of issue 16 and Back-Channel Logout 1.0 §2.2 ----------------------


def _registered(spec: PortalSpec) -> Portal:
    """The gateway's portal as the operator's registration of ``spec`` makes it."""
    reconciler = PortalReconciler(
        OperatorSettings.model_validate(
            {"gateway_url": "http://gateway.test", "admin_token": "o" * 32}
        ),
        GatewayClient("http://gateway.test", SecretStr("o" * 32)),
        Secrets.__new__(Secrets),  # building a registration reads no Secret
    )
    ref = ObjectRef("Portal", "zj-gov", "zwfw", "uid-zwfw-1", 1)
    document = reconciler.registration(ref, spec, "zwfw.zj-gov")
    document["managed_by"] = {"principal": "operator", **document["managed_by"]}
    return Portal.model_validate({**document, "client_secret_hash": hash_secret("c" * 32)})


@pytest.mark.parametrize("kinds", ["people", "enterprises", "both"])
@pytest.mark.parametrize("required", [True, False])
def test_subject_kinds_and_the_sid_in_logout_tokens_reach_the_gateway(
    kinds: str, required: bool
) -> None:
    spec = PortalSpec.model_validate(
        portal(
            subjectKinds=kinds,
            backchannelLogoutUri="https://www.zjzwfw.gov.cn/oidc/backchannel-logout",
            backchannelLogoutSessionRequired=required,
        )
    )
    assert spec.subject_kinds == kinds
    assert spec.backchannel_logout_session_required is required
    registered = _registered(spec)
    assert registered.subject_kinds == kinds
    assert registered.backchannel_logout_session_required is required


def test_unset_the_portal_serves_people_and_logout_tokens_carry_the_sid() -> None:
    spec = PortalSpec.model_validate(portal())
    assert spec.subject_kinds == "people"
    assert spec.backchannel_logout_session_required is None
    registered = _registered(spec)
    assert registered.subject_kinds == "people"
    assert registered.backchannel_logout_session_required is None  # the gateway sends sid


@pytest.mark.parametrize(
    "changes",
    [
        {"subjectKinds": "companies"},
        {"subjectKinds": ["people"]},
        {"backchannelLogoutSessionRequired": "maybe"},
    ],
)
def test_a_bad_subject_kind_or_session_required_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PortalSpec.model_validate(portal(**changes))


def test_the_gateway_and_the_operator_name_the_same_subject_kinds() -> None:
    assert get_args(PortalSpec.model_fields["subject_kinds"].annotation) == SUBJECT_KINDS
    assert get_args(Portal.model_fields["subject_kinds"].annotation) == SUBJECT_KINDS
