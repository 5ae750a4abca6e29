"""Constraints (OpenID Federation 1.0 §6.2) of the anchor's statements about intermediates."""

from __future__ import annotations

import pytest

from gateway.federation.policy import (
    ConstraintError,
    allowed_metadata,
    check_chain_constraint,
    check_constraints,
)


def test_defaults_fill_what_the_platform_leaves_out_and_bad_constraints_are_refused() -> None:
    assert check_constraints(None) == {
        "max_path_length": 1,
        "allowed_entity_types": ["openid_relying_party"],
    }
    bad: object
    for bad in (
        [],
        {"max_path_length": True},
        {"max_path_length": -1},
        {"allowed_entity_types": ["federation_entity"]},
        {"naming_constraints": {"permitted": ["Example.CN"]}},
        {"naming_constraints": {}},
        {"other": 1},
    ):
        with pytest.raises(ConstraintError):
            check_constraints(bad)


def test_max_path_length_counts_the_intermediates_below_the_issuer() -> None:
    """§6.2.1's example: TA max 2, chain LE <- I1 <- I2 <- TA holds; TA max 1 does not."""
    chain = ["https://le.example.cn", "https://i1.example.cn", "https://i2.example.cn"]
    check_chain_constraint({"max_path_length": 2}, 2, chain)
    with pytest.raises(ConstraintError, match="max_path_length"):
        check_chain_constraint({"max_path_length": 1}, 2, chain)
    check_chain_constraint({"max_path_length": 0}, 0, chain[:1])


def test_naming_constraints_are_domain_subtrees_of_rfc_5280() -> None:
    """§6.2.2: ``.example.cn`` is any host below it, not ``example.cn``; excluded wins."""
    below = {"naming_constraints": {"permitted": [".example.cn"]}}
    check_chain_constraint(below, 0, ["https://a.b.example.cn/x"])
    with pytest.raises(ConstraintError):
        check_chain_constraint(below, 0, ["https://example.cn"])
    both = {"naming_constraints": {"permitted": [".example.cn"], "excluded": ["a.example.cn"]}}
    with pytest.raises(ConstraintError, match="excluded"):
        check_chain_constraint(both, 0, ["https://a.example.cn"])


def test_entity_types_not_allowed_are_removed_but_federation_entity_stays() -> None:
    metadata: dict[str, object] = {
        "federation_entity": {},
        "openid_provider": {},
        "openid_relying_party": {},
    }
    kept = allowed_metadata({"allowed_entity_types": ["openid_relying_party"]}, metadata)
    assert set(kept) == {"federation_entity", "openid_relying_party"}
    assert set(allowed_metadata({"allowed_entity_types": []}, metadata)) == {"federation_entity"}
    assert allowed_metadata({}, metadata) == metadata
