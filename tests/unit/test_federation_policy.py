"""Metadata policies (OpenID Federation 1.0 §6.1): refused when loaded, merged, applied."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.federation.policy import (
    PolicyError,
    PolicyViolationError,
    apply_policy,
    check_policy,
    merge_policies,
)
from gateway.settings import Settings

RP = "openid_relying_party"


def policy(**parameters: dict[str, Any]) -> dict[str, Any]:
    return {RP: parameters}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (policy(scope={"add": ["a"], "one_of": ["a"]}), "cannot be combined"),
        (policy(x={"one_of": []}), "at least one value"),
        (policy(x={"value": "a", "one_of": ["b"]}), "not one of"),
        (policy(x={"subset_of": ["a"], "superset_of": ["a", "b"]}), "subset of subset_of"),
        (policy(x={"add": ["c"], "subset_of": ["a"]}), "add values must all be in subset_of"),
        (policy(x={"value": None, "essential": True}), "contradicts essential"),
        (policy(x={"essential": "yes"}), "true or false"),
        (policy(x={"subset_of": "a"}), "JSON array"),
    ],
)
def test_a_policy_the_specification_forbids_is_refused_with_the_reason(
    bad: dict[str, Any], reason: str
) -> None:
    with pytest.raises(PolicyError, match=reason):
        check_policy(bad)


def test_an_unknown_operator_is_ignored_unless_it_is_critical() -> None:
    assert check_policy(policy(x={"regexp": "^a"})) == {RP: {"x": {}}}
    with pytest.raises(PolicyError, match="critical"):
        check_policy(policy(x={"regexp": "^a"}), ["regexp"])
    with pytest.raises(PolicyError, match="standard operators"):
        check_policy({}, ["value"])


def test_merging_refuses_conflicts_and_combines_the_rest() -> None:
    with pytest.raises(PolicyError, match="two different value"):
        merge_policies(policy(x={"value": "a"}), policy(x={"value": "b"}))
    with pytest.raises(PolicyError, match="no common value"):
        merge_policies(policy(x={"one_of": ["a"]}), policy(x={"one_of": ["b"]}))
    merged = merge_policies(
        policy(x={"subset_of": ["a", "b", "c"], "essential": False}, y={"add": ["1"]}),
        policy(x={"subset_of": ["b", "c", "d"], "essential": True}, y={"add": ["2"]}),
    )
    assert merged == policy(x={"subset_of": ["b", "c"], "essential": True}, y={"add": ["1", "2"]})


def test_applying_a_policy_shapes_metadata_or_names_the_violation() -> None:
    checked = check_policy(
        policy(
            grant_types={"subset_of": ["authorization_code"], "default": ["authorization_code"]},
            token_endpoint_auth_method={"one_of": ["private_key_jwt"], "essential": True},
            contacts={"add": ["ops@tongxing.example.cn"]},
            initiate_login_uri={"value": None},
        )
    )
    metadata = {
        "grant_types": ["implicit", "authorization_code"],
        "token_endpoint_auth_method": "private_key_jwt",
        "initiate_login_uri": "https://rp.example.cn/login",
    }
    assert apply_policy(checked, RP, metadata) == {
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "private_key_jwt",
        "contacts": ["ops@tongxing.example.cn"],
    }
    with pytest.raises(PolicyViolationError, match="token_endpoint_auth_method"):
        apply_policy(checked, RP, {**metadata, "token_endpoint_auth_method": "none"})
    with pytest.raises(PolicyViolationError, match="essential"):
        apply_policy(checked, RP, {"grant_types": ["authorization_code"]})


def test_the_gateway_does_not_start_with_a_forbidden_policy(tmp_path: Any) -> None:
    values = {
        "issuer": "https://tongxing.example.cn",
        "data_dir": tmp_path,
        **{
            name: secrets.token_urlsafe(32)
            for name in (
                "national_secret",
                "pairwise_secret",
                "admin_token",
                "session_secret",
                "mfa_secret",
            )
        },
    }
    with pytest.raises(ValidationError, match="cannot be combined"):
        Settings.model_validate(
            {**values, "federation_metadata_policy": policy(x={"add": ["a"], "one_of": ["a"]})}
        )
    with pytest.raises(ValidationError, match="must not be the token signing keys_file"):
        Settings.model_validate({**values, "federation_keys_file": tmp_path / "keys.json"})
