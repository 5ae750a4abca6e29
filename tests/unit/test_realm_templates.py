"""The realm templates in realms/ render to the Keycloak representations in tests/unit/golden/.

A change to a template shows up here as a diff of the rendered realm. To accept one on purpose,
run with TONGXING_UPDATE_GOLDEN=1 and review the golden files like any other change.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from realm_operator.models import OverrideError, RegionKind, RegionSpec
from realm_operator.templates import (
    GATEWAY_CLIENT_ID,
    OWNER_ATTRIBUTE,
    RealmTemplates,
    TemplateError,
)

GOLDEN = Path(__file__).with_name("golden")
GATEWAY = "https://tongxing.gov.cn"
PERSON_ID = "11010519491231002X"


def spec(kind: str = "province", **extra: Any) -> RegionSpec:
    return RegionSpec.model_validate(
        {
            "code": "zj",
            "names": {"zh": "浙江省", "en": "Zhejiang"},
            "kind": kind,
            "keycloak": {
                "url": "http://keycloak.tongxing.svc:8080",
                "publicUrl": "https://id.tongxing.gov.cn",
            },
            **extra,
        }
    )


@pytest.fixture(scope="module")
def templates() -> RealmTemplates:
    return RealmTemplates()


def golden(name: str, document: dict[str, Any]) -> dict[str, Any]:
    path = GOLDEN / f"realm-{name}.json"
    text = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("TONGXING_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    expected: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return expected


def test_there_is_one_template_per_region_kind(templates: RealmTemplates) -> None:
    assert templates.names() == sorted(kind.value for kind in RegionKind)


@pytest.mark.parametrize("kind", [kind.value for kind in RegionKind])
def test_each_kind_renders_its_golden_realm(templates: RealmTemplates, kind: str) -> None:
    rendered = templates.render_for(spec(kind), GATEWAY, owner="tongxing/zj").document()
    assert rendered == golden(kind, rendered)


def test_a_realm_speaks_chinese_first_and_english_and_guards_its_passwords(
    templates: RealmTemplates,
) -> None:
    realm = templates.render_for(spec(), GATEWAY).realm
    assert realm["realm"] == "zj"
    assert realm["defaultLocale"] == "zh-CN"
    assert realm["supportedLocales"][:1] == ["zh-CN"]
    assert "en" in realm["supportedLocales"]
    assert realm["internationalizationEnabled"] is True
    assert "length(12)" in realm["passwordPolicy"]
    assert realm["bruteForceProtected"] is True
    assert realm["failureFactor"] == 5
    assert realm["otpPolicyType"] == "totp"
    assert realm["registrationAllowed"] is False


def test_a_department_is_stricter_than_a_province(templates: RealmTemplates) -> None:
    province = templates.render_for(spec("province"), GATEWAY).realm
    department = templates.render_for(spec("department"), GATEWAY).realm
    assert department["failureFactor"] < province["failureFactor"]
    assert "length(14)" in department["passwordPolicy"]
    assert department["ssoSessionIdleTimeout"] < province["ssoSessionIdleTimeout"]


def test_the_gateway_client_is_confidential_with_pkce_and_the_regions_callback(
    templates: RealmTemplates,
) -> None:
    client = templates.render_for(spec(), GATEWAY).client
    assert client["clientId"] == GATEWAY_CLIENT_ID
    assert client["publicClient"] is False
    assert client["redirectUris"] == [f"{GATEWAY}/callback/zj"]
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    assert client["directAccessGrantsEnabled"] is False
    assert client["implicitFlowEnabled"] is False
    claims = {m["config"].get("claim.name", m["name"]) for m in client["protocolMappers"]}
    assert claims == {"id_number", "name", "phone_number"}


def test_the_gateway_client_registers_the_regions_logout_return_and_back_channel_receiver(
    templates: RealmTemplates,
) -> None:
    """RP-Initiated Logout 1.0 §3 (the way back through the gateway) and Back-Channel Logout
    1.0 §2.2 (the region tells the gateway of its logouts, with the session's ``sid``)."""
    attributes = templates.render_for(spec(), GATEWAY + "/").client["attributes"]
    assert attributes["post.logout.redirect.uris"] == f"{GATEWAY}/logout/return/zj"
    assert attributes["backchannel.logout.url"] == f"{GATEWAY}/backchannel-logout/zj"
    assert attributes["backchannel.logout.session.required"] == "true"
    assert attributes["backchannel.logout.revoke.offline.tokens"] == "false"


def test_the_user_profile_validates_the_resident_identity_number(
    templates: RealmTemplates,
) -> None:
    profile = templates.render_for(spec(), GATEWAY).user_profile
    attribute = next(a for a in profile["attributes"] if a["name"] == "id_number")
    pattern = attribute["validations"]["pattern"]["pattern"]
    assert re.fullmatch(pattern, PERSON_ID)
    assert not re.fullmatch(pattern, "11010519491231002")  # 17 characters
    assert not re.fullmatch(pattern, "11010519491331002X")  # month 13
    assert not re.fullmatch(pattern, "11010519491231002x")  # lower-case check character
    assert attribute["permissions"]["edit"] == ["admin"]  # people cannot change their number


def test_the_acr_mapping_becomes_the_realms_acr_to_loa_map(templates: RealmTemplates) -> None:
    mapping = [
        {"acr": "cn-pwd", "loa": 1, "level": "loa1"},
        {"acr": "cn-otp", "loa": 2, "level": "loa2"},
    ]
    realm = templates.render_for(spec(acrMapping=mapping), GATEWAY).realm
    assert json.loads(realm["attributes"]["acr.loa.map"]) == {"cn-otp": 2, "cn-pwd": 1}


def test_required_otp_makes_totp_enrolment_a_default_action(templates: RealmTemplates) -> None:
    optional = templates.render_for(spec(), GATEWAY).required_actions
    required = templates.render_for(spec(mfa={"otp": "required"}), GATEWAY).required_actions
    assert optional["CONFIGURE_TOTP"]["defaultAction"] is False
    assert required["CONFIGURE_TOTP"]["defaultAction"] is True


def test_display_names_cannot_break_out_of_their_strings(templates: RealmTemplates) -> None:
    hostile = spec(
        names={"zh": '浙江", "enabled": false, "x": "', "en": "<script>alert(1)</script>"}
    )
    realm = templates.render_for(hostile, GATEWAY).realm
    assert realm["enabled"] is True
    assert realm["displayName"] == '浙江", "enabled": false, "x": "'
    assert "<script>" not in realm["displayNameHtml"]
    assert "&lt;script&gt;" in realm["displayNameHtml"]


def test_overrides_from_the_allow_list_tune_the_realm(templates: RealmTemplates) -> None:
    plain = templates.render_for(spec(), GATEWAY, owner="tongxing/zj").realm
    tuned = templates.render_for(
        spec(
            overrides={
                "displayName": "浙里办",
                "passwordPolicy": "length(16) and notUsername",
                "failureFactor": 3,
                "supportedLocales": ["zh-CN", "zh-HK", "en"],
            }
        ),
        GATEWAY,
        owner="tongxing/zj",
    ).realm
    assert tuned["displayName"] == "浙里办"
    assert tuned["passwordPolicy"] == "length(16) and notUsername"
    assert tuned["failureFactor"] == 3
    assert tuned["supportedLocales"] == ["zh-CN", "zh-HK", "en"]
    changed = {key for key in tuned if tuned[key] != plain[key]}
    assert changed == {"displayName", "passwordPolicy", "failureFactor", "supportedLocales"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"smtpServer": {"host": "smtp.zj.gov.cn"}},
        {"attributes": {"acr.loa.map": "{}"}},
        {"browserFlow": "direct grant"},
        {"bruteForceProtected": False},
    ],
)
def test_overrides_off_the_allow_list_never_reach_the_realm(
    templates: RealmTemplates, overrides: dict[str, Any]
) -> None:
    with pytest.raises(OverrideError, match=f"spec.overrides.{next(iter(overrides))}"):
        templates.render_for(spec(overrides=overrides), GATEWAY)


def test_the_realms_own_keys_stay_protected(templates: RealmTemplates) -> None:
    for key in ("clients", "realm", "users", "components", "enabled", "id"):
        with pytest.raises(TemplateError, match=f"overrides may not set {key}"):
            templates.render_for(spec(overrides={key: []}), GATEWAY)


def test_locales_without_the_templates_default_are_refused(templates: RealmTemplates) -> None:
    with pytest.raises(OverrideError, match=r"spec.overrides.supportedLocales: must include"):
        templates.render_for(spec(overrides={"supportedLocales": ["en"]}), GATEWAY)
    english = templates.render_for(
        spec(overrides={"supportedLocales": ["en", "zh-CN"], "defaultLocale": "en"}), GATEWAY
    ).realm
    assert english["defaultLocale"] == "en"


def test_the_owner_is_marked_on_the_realm(templates: RealmTemplates) -> None:
    realm = templates.render_for(spec(), GATEWAY, owner="tongxing/zj").realm
    assert realm["attributes"][OWNER_ATTRIBUTE] == "tongxing/zj"


def test_an_unknown_template_is_an_error_naming_the_known_ones(templates: RealmTemplates) -> None:
    with pytest.raises(TemplateError, match=r"unknown realm template 'county'.*province"):
        templates.render("county", templates.context(spec(), GATEWAY))
    with pytest.raises(TemplateError, match="unknown"):
        templates.render("_base", templates.context(spec(), GATEWAY))  # a building block


def test_a_template_that_renders_broken_json_is_reported(tmp_path: Path) -> None:
    (tmp_path / "broken.json.j2").write_text('{"realm": {{ realm | tojson }},}')
    broken = RealmTemplates(tmp_path)
    with pytest.raises(TemplateError, match="does not render"):
        broken.render("broken", broken.context(spec(), GATEWAY))
