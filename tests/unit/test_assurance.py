"""The assurance decisions (gateway.assurance) on the shipped policies: enter, step up, unmet or
denied; which claims leave; and the level a sign-in at a region is worth. No sockets."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.assurance import (
    REGION_LEVEL_LIMIT,
    STEP_UP_LEVEL,
    Assurance,
    SignIn,
    Verdict,
    region_level,
)
from gateway.policy import PolicyEngine, default_policy_dir
from gateway.registry import Names, Portal, Region, RegionKind, hash_secret


@pytest.fixture(scope="module")
def assurance() -> Assurance:
    return Assurance(PolicyEngine(default_policy_dir()))


def portal(**changes: Any) -> Portal:
    values: dict[str, Any] = {
        "client_id": "portal-a",
        "names": Names(zh="门户", en="Portal"),
        "owner": "zj",
        "redirect_uris": ["https://portal.zj.gov.cn/callback"],
        "client_secret_hash": hash_secret("s" * 32),
        "scopes": ["openid", "profile"],
    } | changes
    return Portal(**values)


def sign_in(acr: str | None = "loa1", home: str = "zj", amr: tuple[str, ...] = ("pwd",)) -> SignIn:
    return SignIn("subject-1", home, acr, amr)


def region(**changes: Any) -> Region:
    values: dict[str, Any] = {
        "code": "zj",
        "names": Names(zh="浙江", en="Zhejiang"),
        "kind": RegionKind.PROVINCE,
        "issuer": "https://idp.zj.example.cn/realms/zj",
        "client_id": "tongxing",
        "client_secret": "upstream-secret",
        "acr_mapping": {"pwd": "loa1", "otp": "loa2", "face": "loa3"},
    } | changes
    return Region(**values)


def test_a_loa1_sign_in_enters_an_ordinary_portal(assurance: Assurance) -> None:
    outcome = assurance.evaluate(sign_in(), portal(), None)
    assert outcome.verdict is Verdict.ENTER
    assert outcome.required_level == "loa1"


def test_a_portal_minimum_above_the_session_asks_for_a_step_up(assurance: Assurance) -> None:
    outcome = assurance.evaluate(sign_in(), portal(minimum_level="loa2"), None)
    assert outcome.verdict is Verdict.STEP_UP
    assert outcome.required_level == STEP_UP_LEVEL
    stepped = assurance.evaluate(sign_in("loa2"), portal(minimum_level="loa2"), None)
    assert stepped.verdict is Verdict.ENTER


def test_acr_values_raise_the_required_level(assurance: Assurance) -> None:
    assert assurance.evaluate(sign_in(), portal(), "loa2").verdict is Verdict.STEP_UP
    assert assurance.evaluate(sign_in("loa2"), portal(), "loa2").verdict is Verdict.ENTER


def test_loa3_is_unmet_without_a_proofing_provider_because_a_factor_cannot_verify_a_name(
    assurance: Assurance,
) -> None:
    outcome = assurance.evaluate(sign_in("loa2"), portal(sector="tax"), None)
    assert outcome.verdict is Verdict.UNMET
    assert outcome.required_level == "loa3"
    assert assurance.evaluate(sign_in("loa3"), portal(sector="tax"), None).verdict is Verdict.ENTER


def test_a_portal_for_other_regions_denies_whatever_the_level(assurance: Assurance) -> None:
    limited = portal(allowed_home_regions=["sh"])
    for acr in ("loa1", "loa2", "loa3"):
        assert assurance.evaluate(sign_in(acr), limited, None).verdict is Verdict.DENIED
    assert assurance.evaluate(sign_in(home="sh"), limited, None).verdict is Verdict.ENTER


def test_an_unknown_acr_counts_as_loa1(assurance: Assurance) -> None:
    assert sign_in("urn:other").level == "loa1"
    assert sign_in(None).level == "loa1"
    outcome = assurance.evaluate(sign_in("urn:other"), portal(minimum_level="loa2"), None)
    assert outcome.verdict is Verdict.STEP_UP


def test_only_requested_claims_leave_and_the_identity_number_only_where_allowed(
    assurance: Assurance,
) -> None:
    wanted = {"name", "phone_number", "id_number"}
    assert assurance.released(sign_in(), portal(scopes=["openid"]), wanted) == set()
    assert assurance.released(sign_in(), portal(), wanted) == {"name"}
    allowed = portal(scopes=["openid", "profile", "id_number"], may_receive_id_number=True)
    assert assurance.released(sign_in(), allowed, wanted) == {"name", "id_number"}
    curious = portal(scopes=["openid", "profile", "id_number"])
    assert assurance.released(sign_in(), curious, wanted) == {"name"}


@pytest.mark.parametrize(
    ("acr", "ceiling", "level"),
    [
        ("pwd", "loa2", "loa1"),
        ("otp", "loa2", "loa2"),
        ("face", "loa2", "loa2"),  # THREAT_MODEL row 2: never above the platform's ceiling
        # Issue 16: loa3 means verified claims from a trusted framework (gateway.proofing),
        # never a region's say-so: a region mapping and a ceiling of loa3 give loa2.
        ("face", "loa3", "loa2"),
        ("otp", "loa1", "loa1"),
        (None, "loa3", "loa1"),
        ("unmapped", "loa3", "loa1"),
    ],
)
def test_a_region_vouches_for_its_mapping_up_to_its_ceiling(
    acr: str | None, ceiling: str, level: str
) -> None:
    assert region_level(region(), acr, ceiling) == level  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def proofing() -> Assurance:
    """The assurance of a gateway with a proofing provider (issue 16)."""
    return Assurance(PolicyEngine(default_policy_dir()), proofing=True)


def test_with_a_proofing_provider_loa3_is_a_second_factor_then_proofing(
    proofing: Assurance,
) -> None:
    tax = portal(sector="tax")
    first = proofing.evaluate(sign_in("loa1"), tax, None)
    assert (first.verdict, first.required_level) == (Verdict.STEP_UP, "loa3")
    assert proofing.evaluate(sign_in("loa2"), tax, None).verdict is Verdict.PROOF
    assert proofing.evaluate(sign_in("loa3"), tax, None).verdict is Verdict.ENTER
    # acr_values=loa3 at an ordinary portal asks the same.
    assert proofing.evaluate(sign_in("loa2"), portal(), "loa3").verdict is Verdict.PROOF


def test_no_region_mapping_or_ceiling_reaches_loa3() -> None:
    assert REGION_LEVEL_LIMIT == "loa2"
    for ceiling in ("loa2", "loa3"):
        assert region_level(region(), "face", ceiling) == "loa2"


def test_verified_claims_leave_only_from_a_proofed_session_and_as_registered(
    assurance: Assurance,
) -> None:
    wanted = {"verified_claims/name", "verified_claims/birthdate", "verified_claims/id_number"}
    registered = portal(scopes=["openid", "profile", "id_number"])
    assert assurance.released(sign_in("loa2"), registered, wanted) == set()
    assert assurance.released(sign_in("loa3"), registered, wanted) == {
        "verified_claims/name",
        "verified_claims/birthdate",
    }
    allowed = portal(scopes=["openid", "profile", "id_number"], may_receive_id_number=True)
    assert assurance.released(sign_in("loa3"), allowed, wanted) == wanted
    assert assurance.released(sign_in("loa3"), portal(scopes=["openid"]), wanted) == set()
