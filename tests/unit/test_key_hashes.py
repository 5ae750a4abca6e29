"""``at_hash`` and ``c_hash``: the one implementation the provider and the broker share."""

from __future__ import annotations

import pytest

from gateway.keys import half_hash


def test_at_hash_matches_the_example_of_oidc_core_appendix_a3() -> None:
    token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
    assert half_hash(token, "RS256") == "77QmUPtjPfzWtF2AnpK9RQ"


def test_c_hash_matches_the_example_of_oidc_core_appendix_a4() -> None:
    code = "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"
    assert half_hash(code, "RS256") == "LDktKdoQak3Pk0cnXxCltA"


def test_the_hash_follows_the_algorithm() -> None:
    value = "access-1"
    assert half_hash(value, "ES256") == half_hash(value, "PS256") == half_hash(value, "RS256")
    assert len(half_hash(value, "RS384")) == 32  # 24 bytes of SHA-384, base64url
    assert len(half_hash(value, "ES512")) == 43  # 32 bytes of SHA-512
    assert half_hash(value, "RS384") != half_hash(value, "RS512")


@pytest.mark.parametrize("alg", ["none", "HS256", "EdDSA", ""])
def test_an_algorithm_without_a_known_hash_is_refused(alg: str) -> None:
    with pytest.raises(ValueError, match="no hash"):
        half_hash("access-1", alg)
