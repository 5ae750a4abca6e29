"""The platform's level ceilings and admin principals, as the settings validate them at start-up,
and the level a sign-in at a region is worth (THREAT_MODEL row 2)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.assurance import region_level
from gateway.registry import Region
from gateway.settings import Settings

ZJ: dict[str, Any] = {
    "code": "zj",
    "names": {"zh": "浙江", "en": "Zhejiang"},
    "kind": "province",
    "issuer": "https://idp.zj.example.cn/realms/zj",
    "client_id": "tongxing",
    "client_secret": "upstream-secret",
    "acr_mapping": {"pwd": "loa1", "otp": "loa2", "face": "loa3"},
}


def settings(**extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "issuer": "https://tongxing.example.cn",
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": "p" * 32,
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
            **extra,
        }
    )


def client(name: str, token: str, role: str = "reader") -> dict[str, str]:
    return {"name": name, "role": role, "token_sha256": hashlib.sha256(token.encode()).hexdigest()}


def test_the_default_ceiling_is_loa2_and_a_region_may_have_its_own() -> None:
    assert settings().ceiling_for("zj") == "loa2"
    configured = settings(level_ceiling="loa1", region_level_ceilings={"bj": "loa3"})
    assert configured.ceiling_for("bj") == "loa3"
    assert configured.ceiling_for("zj") == "loa1"


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "ISSUER": "https://tongxing.example.cn",
        "NATIONAL_SECRET": "n" * 32,
        "PAIRWISE_SECRET": "w" * 32,
        "ADMIN_TOKEN": "p" * 32,
        "OPERATOR_TOKEN": "o" * 32,
        "SESSION_SECRET": "s" * 32,
        "MFA_SECRET": "m" * 32,
        "LEVEL_CEILING": "loa1",
        "REGION_LEVEL_CEILINGS": '{"bj": "loa3"}',
        "ADMIN_CLIENTS": f'[{{"name": "audit", "role": "reader", "token_sha256": "{"a" * 64}"}}]',
    }.items():
        monkeypatch.setenv(f"TONGXING_{name}", value)
    loaded = Settings()  # type: ignore[call-arg]
    assert loaded.ceiling_for("bj") == "loa3"
    assert loaded.ceiling_for("sh") == "loa1"
    assert loaded.operator_token is not None
    assert loaded.operator_token.get_secret_value() == "o" * 32
    assert [(c.name, c.role) for c in loaded.admin_clients] == [("audit", "reader")]
    assert "o" * 32 not in repr(loaded)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"level_ceiling": "loa4"}, "level_ceiling"),
        ({"region_level_ceilings": {"zj": "high"}}, "region_level_ceilings"),
        ({"region_level_ceilings": {"Not A Code": "loa1"}}, "region_level_ceilings"),
        ({"operator_token": "short"}, "operator_token"),
        ({"operator_token": "p" * 32}, "different tokens"),
        ({"admin_clients": [client("audit", "p" * 32)]}, "different tokens"),
        ({"admin_clients": [client("platform", "r" * 32)]}, "reserved"),
        ({"admin_clients": [client("operator", "r" * 32)]}, "reserved"),
        ({"admin_clients": [client("a", "r" * 32)]}, "admin_clients"),
        ({"admin_clients": [client("audit", "r" * 32, "root")]}, "admin_clients"),
        ({"admin_clients": [client("audit", "r" * 32), client("audit", "q" * 32)]}, "unique"),
        ({"admin_clients": [client("audit", "r" * 32), client("desk", "r" * 32)]}, "same token"),
        ({"admin_clients": [{"name": "audit", "role": "reader", "token_sha256": "ab"}]}, "sha256"),
        ({"admin_clients": [{**client("audit", "r" * 32), "token": "r" * 32}]}, "admin_clients"),
    ],
)
def test_a_bad_principal_or_ceiling_stops_the_start(extra: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem) as refused:
        settings(**extra)
    assert "p" * 32 not in str(refused.value)  # no secret echoed into a log line


def test_a_sign_in_is_worth_the_mapped_level_up_to_the_ceiling() -> None:
    region = Region.model_validate(ZJ)
    # Issue 16: loa3 is verified claims from a proofing provider, never a region's mapping.
    assert region_level(region, "face", "loa3") == "loa2"
    assert region_level(region, "face", "loa2") == "loa2"
    assert region_level(region, "otp", "loa1") == "loa1"
    assert region_level(region, "pwd", "loa3") == "loa1"
    assert region_level(region, "unknown", "loa3") == "loa1"
    assert region_level(region, None, "loa2") == "loa1"
