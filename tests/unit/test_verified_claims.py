"""The claims request parameter and verified_claims (gateway.verified), without sockets: what a
request may be (OIDC Core §5.5, IDA §5), what a proofing provider may assert, what leaves."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.verified import (
    MAX_CLAIMS_PARAMETER,
    ClaimsRequestError,
    ProofingProviderSettings,
    ProofingRefused,
    answer,
    checked_assertion,
    discovery_metadata,
    parse_claims_request,
)

PROVIDER = ProofingProviderSettings.model_validate(
    {
        "id": "mps",
        "names": {"zh": "公安部", "en": "MPS"},
        "issuer": "https://proofing.example.cn",
        "client_id": "tongxing",
        "client_secret": "s" * 32,
        "trust_frameworks": ["cn_mps_ctid"],
        "claims": ["name", "birthdate"],
        "documents": ["idcard"],
    }
)
ELEMENT: dict[str, Any] = {
    "verification": {
        "trust_framework": "cn_mps_ctid",
        "assurance_level": "high",
        "time": "2026-05-01T08:00:00Z",
        "evidence": [{"type": "document"}],
    },
    "claims": {"name": "张三", "birthdate": "1949-12-31"},
}


def request(**members: Any) -> str:
    return json.dumps(members)


def test_a_claims_request_is_parsed_per_target_and_normalised() -> None:
    parsed = parse_claims_request(
        request(
            id_token={"name": {"essential": True}, "acr": {"values": ["loa2"]}},
            userinfo={
                "verified_claims": [
                    {
                        "verification": {"trust_framework": {"values": ["a", "b"]}, "time": None},
                        "claims": {"name": None, "birthdate": {"purpose": "tax filing"}},
                    }
                ]
            },
            other={"ignored": True},  # OIDC Core §5.5: other members are ignored
        )
    )
    assert parsed.claims == {"id_token": {"name", "acr"}, "userinfo": frozenset()}
    (verified,) = parsed.verified["userinfo"]
    assert verified.frameworks == frozenset({"a", "b"})
    assert verified.verification == {"time"}
    assert verified.claims == ("birthdate", "name")
    assert parsed.wants_verified("userinfo")
    assert not parsed.wants_verified("id_token")
    assert "other" not in json.loads(parsed.text)
    assert parse_claims_request(parsed.text) == parsed  # kept text parses to the same


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not JSON"),
        ("NaN", "not JSON"),
        ("[]", "not a JSON object"),
        (request(userinfo=[]), "not a JSON object"),
        (request(userinfo={"name": 1}), "neither null nor"),
        (request(userinfo={"name": {"essential": "yes"}}), "essential"),
        (request(userinfo={"name": {"values": "a"}}), "values"),
        (request(userinfo={"verified_claims": {"claims": {"name": None}}}), "trust_framework"),
        (
            request(userinfo={"verified_claims": {"verification": {"trust_framework": None}}}),
            "claims is missing",
        ),
        (
            request(
                userinfo={
                    "verified_claims": {"verification": {"trust_framework": None}, "claims": {}}
                }
            ),
            "claims is missing or empty",
        ),
        (
            request(
                userinfo={
                    "verified_claims": {
                        "verification": {"trust_framework": {"value": 1}},
                        "claims": {"name": None},
                    }
                }
            ),
            "value is not text",
        ),
        (request(userinfo={"verified_claims": []}), "no or too many"),
        (request(userinfo={f"c{i}": None for i in range(40)}), "too many claims"),
        (request(userinfo={"name": {"purpose": "x" * MAX_CLAIMS_PARAMETER}}), "longer than"),
        (request(userinfo={"name": {"purpose": "no"}}), "purpose"),
    ],
)
def test_a_malformed_claims_request_says_why(text: str, problem: str) -> None:
    with pytest.raises(ClaimsRequestError, match=problem):
        parse_claims_request(text)


def test_a_provider_assertion_is_kept_only_within_what_the_platform_allows() -> None:
    assert checked_assertion(ELEMENT, PROVIDER) == [ELEMENT]
    assert checked_assertion([ELEMENT], PROVIDER) == [ELEMENT]
    foreign_framework = {**ELEMENT, "verification": {"trust_framework": "eidas"}}
    with pytest.raises(ProofingRefused, match="trust framework"):
        checked_assertion(foreign_framework, PROVIDER)
    foreign_claim = {**ELEMENT, "claims": {"name": "张三", "address": {"country": "CN"}}}
    with pytest.raises(ProofingRefused, match="claims"):
        checked_assertion(foreign_claim, PROVIDER)
    odd_evidence = {
        **ELEMENT,
        "verification": {**ELEMENT["verification"], "evidence": [{"type": "vouch"}]},
    }
    with pytest.raises(ProofingRefused, match="evidence"):
        checked_assertion(odd_evidence, PROVIDER)
    nothings: tuple[object, ...] = (None, [], "text", {"claims": {"name": "x"}})
    for nothing in nothings:
        with pytest.raises(ProofingRefused):
            checked_assertion(nothing, PROVIDER)
    # What the gateway does not carry is dropped, not kept.
    extra = {**ELEMENT, "verification": {**ELEMENT["verification"], "verifier": {"org": "x"}}}
    assert "verifier" not in checked_assertion(extra, PROVIDER)[0]["verification"]


def test_the_answer_holds_only_what_was_asked_held_and_released() -> None:
    parsed = parse_claims_request(
        request(
            userinfo={
                "verified_claims": [
                    {
                        "verification": {"trust_framework": {"value": "eidas"}},
                        "claims": {"name": None},
                    },
                    {
                        "verification": {"trust_framework": None, "assurance_level": None},
                        "claims": {"name": None, "birthdate": None, "gender": None},
                    },
                ]
            }
        )
    )
    out = answer([ELEMENT], parsed.verified["userinfo"], {"name"})
    assert out == [
        {
            "verification": {"trust_framework": "cn_mps_ctid", "assurance_level": "high"},
            "claims": {"name": "张三"},
        }
    ]
    assert answer([ELEMENT], parsed.verified["userinfo"], set()) == []


def test_discovery_metadata_follows_the_providers() -> None:
    assert discovery_metadata([]) == {"verified_claims_supported": False}
    metadata = discovery_metadata([PROVIDER])
    assert metadata == {
        "verified_claims_supported": True,
        "trust_frameworks_supported": ["cn_mps_ctid"],
        "evidence_supported": ["document"],
        "documents_supported": ["idcard"],
        "claims_in_verified_claims_supported": ["name", "birthdate"],
    }


def test_a_provider_may_vouch_only_for_claims_the_gateway_carries() -> None:
    data = PROVIDER.model_dump() | {"client_secret": "s" * 32}
    with pytest.raises(ValidationError, match="address"):
        ProofingProviderSettings.model_validate(data | {"claims": ["name", "address"]})
    with pytest.raises(ValidationError, match="evidence"):
        ProofingProviderSettings.model_validate(data | {"evidence": ["rumour"]})
    assert PROVIDER.region().code == "proofing-mps"
    assert "s" * 32 not in repr(PROVIDER)
