"""The Cedar policies shipped in ``policies/`` and the engine that loads and asks them."""

from __future__ import annotations

import datetime
import logging
import shutil
from pathlib import Path
from typing import Any

import cedarpy
import pytest

from gateway.policy import (
    LEVELS,
    PersonFacts,
    PolicyEngine,
    PolicySetError,
    PortalFacts,
    age_band,
    claims_for_scopes,
    default_policy_dir,
    known_level,
    level_rank,
)
from gateway.policy import engine as policy_engine
from gateway.policy.entities import VERIFIED_SCOPE_CLAIMS
from gateway.registry import Names, Portal

NOW = datetime.datetime(2025, 3, 1, 8, 0, tzinfo=datetime.UTC)
CANDIDATES = ("name", "phone_number", "id_number", "home_region")


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A copy of the shipped policies that a test may break."""
    directory = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), directory)
    return directory


@pytest.fixture
def engine(policy_dir: Path) -> PolicyEngine:
    return PolicyEngine(policy_dir, clock=lambda: NOW)


def _person(level: str = "loa1", home_region: str = "zj") -> PersonFacts:
    return PersonFacts("subject-1", home_region, level, amr=("pwd",))  # type: ignore[arg-type]


def _count_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, one entry per call of ``cedarpy.is_authorized_batch``."""
    batches: list[int] = []
    real = cedarpy.is_authorized_batch

    def counted(*args: Any, **kwargs: Any) -> Any:
        batches.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cedarpy, "is_authorized_batch", counted)
    return batches


def _portal(**changes: object) -> PortalFacts:
    facts: dict[str, object] = {
        "client_id": "zj-library",
        "owner": "zj",
        "requested_claims": frozenset({"name"}),
    }
    facts.update(changes)
    return PortalFacts(**facts)  # type: ignore[arg-type]


# --- the shipped set ----------------------------------------------------------------------------


def test_the_shipped_policies_load_from_the_repository_and_name_every_policy() -> None:
    engine = PolicyEngine()
    assert engine.directory == default_policy_dir().resolve()
    assert set(engine.info.files) >= {"national-entry.cedar", "national-claims.cedar"}
    assert {
        "enter-registered-portal",
        "portal-minimum-level",
        "tax-needs-loa3",
        "social-security-needs-loa3",
        "residents-of-listed-regions-only",
        "release-requested-claims",
        "withhold-unrequested-claims",
        "id-number-only-to-allowed-portals",
    } <= set(engine.info.policy_ids)
    assert len(engine.info.digest) == 64


# --- entering a portal --------------------------------------------------------------------------


def test_a_general_portal_lets_a_one_factor_person_in(engine: PolicyEngine) -> None:
    decision = engine.may_enter(_person("loa1"), _portal())
    assert decision.allowed
    assert decision.policy_ids == ("enter-registered-portal",)
    assert decision.required_level == "loa1"
    assert decision.errors == ()


@pytest.mark.parametrize(
    ("sector", "policy_id"),
    [("tax", "tax-needs-loa3"), ("social-security", "social-security-needs-loa3")],
)
def test_tax_and_social_security_portals_need_loa3(
    engine: PolicyEngine, sector: str, policy_id: str
) -> None:
    portal = _portal(client_id=f"zj-{sector}", sector=sector)
    for level in ("loa1", "loa2"):
        denied = engine.may_enter(_person(level), portal)
        assert not denied.allowed
        assert denied.policy_ids == (policy_id,)
        assert denied.required_level == "loa3"  # a reason to step up, not a final refusal
        assert len(denied.reasons) == 1
        assert "loa3" in denied.reasons[0]
    assert engine.may_enter(_person("loa3"), portal).allowed


def test_the_registered_minimum_level_is_a_policy_too(engine: PolicyEngine) -> None:
    portal = _portal(minimum_level="loa2")
    denied = engine.may_enter(_person("loa1"), portal)
    assert (denied.allowed, denied.policy_ids, denied.required_level) == (
        False,
        ("portal-minimum-level",),
        "loa2",
    )
    assert engine.may_enter(_person("loa2"), portal).allowed


def test_a_portal_limited_to_listed_regions_refuses_other_residents_at_every_level(
    engine: PolicyEngine,
) -> None:
    portal = _portal(allowed_home_regions=frozenset({"zj", "sh"}))
    assert engine.may_enter(_person("loa1", home_region="sh"), portal).allowed
    denied = engine.may_enter(_person("loa3", home_region="gd"), portal)
    assert not denied.allowed
    assert denied.policy_ids == ("residents-of-listed-regions-only",)
    assert denied.required_level is None  # no step-up helps: this is access_denied


def test_several_forbids_are_all_named(engine: PolicyEngine) -> None:
    portal = _portal(sector="tax", minimum_level="loa2", allowed_home_regions=frozenset({"zj"}))
    denied = engine.may_enter(_person("loa1", home_region="gd"), portal)
    assert denied.policy_ids == (
        "portal-minimum-level",
        "residents-of-listed-regions-only",
        "tax-needs-loa3",
    )


# --- the required level -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("portal_changes", "acr_values", "expected"),
    [
        ({}, None, "loa1"),
        ({}, "loa2", "loa2"),
        ({}, ["loa3"], "loa3"),
        # acr_values lists acceptable values in order of preference: the lowest one suffices
        ({}, "loa3 loa2", "loa2"),
        ({}, "urn:example:unknown", "loa1"),
        ({}, "urn:example:unknown loa2", "loa2"),
        ({"minimum_level": "loa2"}, "loa1", "loa2"),
        ({"sector": "tax"}, "loa1", "loa3"),
        ({"sector": "tax", "minimum_level": "loa2"}, None, "loa3"),
    ],
)
def test_the_required_level_is_the_highest_of_registration_request_and_policy(
    engine: PolicyEngine,
    portal_changes: dict[str, object],
    acr_values: str | list[str] | None,
    expected: str,
) -> None:
    assert engine.required_level(_person(), _portal(**portal_changes), acr_values) == expected


@pytest.mark.parametrize(
    ("person", "portal_changes", "acr_values"),
    [
        (_person(), {}, None),
        (_person("loa2"), {"minimum_level": "loa2"}, "loa3"),
        (_person(), {"sector": "tax"}, None),
        (_person(home_region="gd"), {"allowed_home_regions": frozenset({"zj"})}, "loa1"),
    ],
)
def test_admission_answers_as_required_level_and_may_enter_do_with_one_evaluation(
    engine: PolicyEngine,
    policy_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    person: PersonFacts,
    portal_changes: dict[str, object],
    acr_values: str | None,
) -> None:
    portal = _portal(**portal_changes)
    expected = (engine.required_level(person, portal, acr_values), engine.may_enter(person, portal))
    fresh = PolicyEngine(policy_dir, clock=lambda: NOW)  # nothing cached yet
    batches = _count_batches(monkeypatch)
    assert fresh.admission(person, portal, acr_values) == expected
    assert batches == [1]


def test_a_person_no_level_admits_gets_the_registered_or_requested_level(
    engine: PolicyEngine,
) -> None:
    portal = _portal(allowed_home_regions=frozenset({"zj"}), minimum_level="loa2")
    assert engine.required_level(_person(home_region="gd"), portal, None) == "loa2"


# --- releasing claims ---------------------------------------------------------------------------


def test_only_requested_claims_leave(engine: PolicyEngine) -> None:
    portal = _portal(requested_claims=frozenset({"name"}))
    assert engine.released_claims(_person(), portal, CANDIDATES) == {"name"}
    decisions = engine.claim_decisions(_person(), portal, CANDIDATES)
    assert decisions["name"].policy_ids == ("release-requested-claims",)
    assert decisions["phone_number"].policy_ids == ("withhold-unrequested-claims",)


def test_the_identity_number_leaves_only_for_a_portal_allowed_to_receive_it(
    engine: PolicyEngine,
) -> None:
    asks = frozenset({"name", "phone_number", "id_number"})
    not_allowed = _portal(client_id="zj-shop", requested_claims=asks)
    allowed = _portal(client_id="zj-tax", requested_claims=asks, may_receive_id_number=True)
    assert engine.released_claims(_person(), not_allowed, CANDIDATES) == {"name", "phone_number"}
    assert engine.released_claims(_person(), allowed, CANDIDATES) == set(asks)
    refused = engine.claim_decisions(_person(), not_allowed, ["id_number"])["id_number"]
    assert refused.policy_ids == ("id-number-only-to-allowed-portals",)


def test_released_claims_differ_per_portal_as_the_policies_say(engine: PolicyEngine) -> None:
    library = _portal(client_id="zj-library", requested_claims=frozenset({"name"}))
    telecom = _portal(client_id="zj-telecom", requested_claims=frozenset({"name", "phone_number"}))
    released = {
        portal.client_id: engine.released_claims(_person(), portal, CANDIDATES)
        for portal in (library, telecom)
    }
    assert released == {"zj-library": {"name"}, "zj-telecom": {"name", "phone_number"}}


def test_a_claim_the_gateway_does_not_hold_is_never_released(engine: PolicyEngine) -> None:
    portal = _portal(requested_claims=frozenset({"name", "phone_number"}))
    assert engine.released_claims(_person(), portal, ["name"]) == {"name"}
    assert engine.released_claims(_person(), portal, []) == set()


# --- facts from the registry --------------------------------------------------------------------


def test_portal_facts_come_from_the_registration_and_its_scopes() -> None:
    portal = Portal(
        client_id="zj-gov-portal",
        names=Names(zh="浙江政务服务网", en="Zhejiang Government Services"),
        owner="zj",
        redirect_uris=["https://portal.zj.gov.cn/callback"],
        client_secret_hash="0" * 64,
        scopes=["openid", "profile", "phone"],
        minimum_level="loa2",
        sector="tax",
        allowed_home_regions=["zj"],
    )
    facts = PortalFacts.from_portal(portal)
    assert facts == PortalFacts(
        client_id="zj-gov-portal",
        owner="zj",
        sector="tax",
        minimum_level="loa2",
        # Issue 16: and the verified claims (Cedar ids verified_claims/<name>) of its scopes.
        requested_claims=frozenset({"name", "home_region", "phone_number"})
        | {f"verified_claims/{c}" for c in VERIFIED_SCOPE_CLAIMS["profile"]},
        may_receive_id_number=False,
        allowed_home_regions=frozenset({"zj"}),
    )
    assert claims_for_scopes(["openid", "id_number", "unknown"]) == {"id_number"}


def test_levels_rank_and_age_bands() -> None:
    assert [level_rank(level) for level in LEVELS] == [1, 2, 3]
    assert known_level("loa2") == "loa2"
    assert known_level("urn:mace:incommon:iap:silver") is None
    with pytest.raises(ValueError, match="unknown level"):
        level_rank("loa4")
    with pytest.raises(ValueError, match="unknown level"):
        PersonFacts("s", "zj", "gold")  # type: ignore[arg-type]
    today = datetime.date(2025, 3, 1)
    assert age_band(datetime.date(2007, 3, 2), today) == "minor"
    assert age_band(datetime.date(2007, 3, 1), today) == "adult"
    assert age_band(datetime.date(1965, 3, 1), today) == "senior"


# --- loading, reloading, refusing ---------------------------------------------------------------


REGIONAL = """
@id("zj-lottery-adults-only")
@reason("lottery portals are for adults")
forbid (principal, action == Tongxing::Action::"enter", resource)
when {
  resource.sector == "lottery" &&
  !(principal has age_band && principal.age_band != "minor")
};
"""


def test_a_regional_policy_is_data_and_takes_effect_on_reload(
    engine: PolicyEngine, policy_dir: Path
) -> None:
    lottery = _portal(sector="lottery")
    minor = PersonFacts("subject-2", "zj", "loa2", age_band="minor")
    assert engine.may_enter(minor, lottery).allowed
    (policy_dir / "zj.cedar").write_text(REGIONAL, encoding="utf-8")
    info = engine.reload()
    assert "zj-lottery-adults-only" in info.policy_ids
    assert "zj.cedar" in info.files
    denied = engine.may_enter(minor, lottery)
    assert denied.policy_ids == ("zj-lottery-adults-only",)
    assert denied.reasons == ("lottery portals are for adults",)
    adult = PersonFacts("subject-3", "zj", "loa2", age_band="adult")
    assert engine.may_enter(adult, lottery).allowed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # an attribute the schema does not have
        (
            '@id("bad")\nforbid (principal, action == Tongxing::Action::"enter", resource)\n'
            'when { principal.province == "zj" };\n',
            "province",
        ),
        # an optional attribute used without `has`
        (
            '@id("bad")\nforbid (principal, action == Tongxing::Action::"enter", resource)\n'
            'when { resource.allowed_home_regions.contains("zj") };\n',
            "allowed_home_regions",
        ),
        # not Cedar at all
        ("permit (principal, action, resource) when {", "unexpected"),
        # an action the schema does not declare
        (
            '@id("bad")\npermit (principal, action == Tongxing::Action::"delete", resource);\n',
            "delete",
        ),
        # every policy needs an @id (logs name it)
        ('permit (principal, action == Tongxing::Action::"enter", resource);\n', "@id"),
        # and ids are unique across files
        (
            '@id("tax-needs-loa3")\n'
            'permit (principal, action == Tongxing::Action::"enter", resource);\n',
            "national-entry.cedar",
        ),
    ],
)
def test_an_invalid_policy_file_is_refused_whole_and_the_active_set_stays(
    engine: PolicyEngine, policy_dir: Path, text: str, message: str
) -> None:
    before = engine.info
    (policy_dir / "broken.cedar").write_text(text, encoding="utf-8")
    with pytest.raises(PolicySetError) as refused:
        engine.reload()
    assert "broken.cedar" in str(refused.value)
    assert message in str(refused.value)
    assert all("broken.cedar" in f"{file} {text}" for file, text in refused.value.problems)
    assert engine.info == before
    # The old set still decides, policy ids and all.
    denied = engine.may_enter(_person("loa1"), _portal(sector="tax"))
    assert denied.policy_ids == ("tax-needs-loa3",)
    # Fixing the file is enough to load again.
    (policy_dir / "broken.cedar").unlink()
    assert engine.reload().digest == before.digest


def test_a_broken_schema_is_refused(engine: PolicyEngine, policy_dir: Path) -> None:
    schema = policy_dir / "schema.cedarschema"
    schema.write_text("namespace Tongxing { entity Person = { ", encoding="utf-8")
    with pytest.raises(PolicySetError, match=r"schema\.cedarschema"):
        engine.reload()
    assert engine.may_enter(_person(), _portal()).allowed


def test_a_schema_that_no_longer_fits_the_gateways_requests_is_refused(
    engine: PolicyEngine, policy_dir: Path
) -> None:
    schema = policy_dir / "schema.cedarschema"
    # Without `amr` in Authentication the policies still validate, but the gateway's requests
    # would not: the probe at load time catches it.
    schema.write_text(
        schema.read_text(encoding="utf-8").replace("amr: Set<String>,", ""), encoding="utf-8"
    )
    with pytest.raises(PolicySetError, match="does not fit the gateway's requests"):
        engine.reload()


def test_a_policy_that_fails_on_a_plain_request_is_refused(
    engine: PolicyEngine, policy_dir: Path
) -> None:
    (policy_dir / "overflow.cedar").write_text(
        '@id("overflowing")\n'
        'forbid (principal, action == Tongxing::Action::"enter", resource)\n'
        "when { context.authentication.rank + 9223372036854775807 > 0 };\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicySetError) as refused:
        engine.reload()
    assert refused.value.problems[0][0] == "overflow.cedar"
    assert "'overflowing' fails" in refused.value.problems[0][1]


def test_a_gateway_does_not_start_on_an_invalid_set(policy_dir: Path) -> None:
    (policy_dir / "broken.cedar").write_text("permit (", encoding="utf-8")
    with pytest.raises(PolicySetError, match=r"broken\.cedar"):
        PolicyEngine(policy_dir)
    for path in policy_dir.glob("*.cedar"):
        path.unlink()
    with pytest.raises(PolicySetError, match="no policy files"):
        PolicyEngine(policy_dir)


def test_a_policy_that_fails_at_evaluation_denies(engine: PolicyEngine, policy_dir: Path) -> None:
    # Validates (Long arithmetic) but overflows at run time from loa2 on. Cedar skips a forbid
    # that errors, which would turn it into an allow: the engine denies instead.
    (policy_dir / "overflow.cedar").write_text(
        '@id("overflowing")\n'
        'forbid (principal, action == Tongxing::Action::"enter", resource)\n'
        "when { context.authentication.rank + 9223372036854775806 > 0 };\n",
        encoding="utf-8",
    )
    engine.reload()
    decision = engine.may_enter(_person("loa3"), _portal())
    assert not decision.allowed
    assert decision.errors
    assert "overflowing" in decision.errors[0]


# --- caching decisions --------------------------------------------------------------------------


def test_cached_decisions_are_the_decisions_cedar_makes(
    engine: PolicyEngine, policy_dir: Path
) -> None:
    people = [_person(level, region) for level in LEVELS for region in ("zj", "gd")]
    portals = [
        _portal(),
        _portal(sector="tax"),
        _portal(minimum_level="loa2"),
        _portal(allowed_home_regions=frozenset({"zj"})),
        _portal(requested_claims=frozenset({"name", "id_number"}), may_receive_id_number=True),
    ]

    def answers(engine: PolicyEngine) -> list[object]:
        return [
            (
                engine.admission(person, portal, "loa2"),
                engine.claim_decisions(person, portal, CANDIDATES),
            )
            for person in people
            for portal in portals
        ]

    uncached = [answers(PolicyEngine(policy_dir, clock=lambda: NOW)) for _ in range(2)]
    first, second = answers(engine), answers(engine)  # the second from the cache
    assert first == second == uncached[0] == uncached[1]


def test_the_same_question_again_is_answered_without_cedar(
    engine: PolicyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = _count_batches(monkeypatch)
    portal = _portal(requested_claims=frozenset({"name", "phone_number"}))
    entry = engine.may_enter(_person(), portal)
    claims = engine.claim_decisions(_person(), portal, CANDIDATES)
    assert batches == [1, 1]
    assert engine.may_enter(_person(), portal) == entry
    assert engine.required_level(_person(), portal) == "loa1"
    # Candidates in another order with a duplicate: the same question.
    assert engine.claim_decisions(_person(), portal, [*reversed(CANDIDATES), "name"]) == claims
    assert engine.released_claims(_person(), portal, CANDIDATES) == {"name", "phone_number"}
    assert batches == [1, 1]


@pytest.mark.parametrize(
    ("person", "portal", "claims"),
    [
        (_person("loa1"), _portal(sector="tax"), CANDIDATES),  # another portal fact
        (_person("loa1"), _portal(client_id="zj-museum"), CANDIDATES),  # another portal
        (_person("loa3"), _portal(), CANDIDATES),  # another level
        (_person("loa1", home_region="gd"), _portal(), CANDIDATES),  # another region
        (PersonFacts("subject-1", "zj", "loa1", amr=("otp",)), _portal(), CANDIDATES),
        (PersonFacts("subject-1", "zj", "loa1", ("pwd",), "minor"), _portal(), CANDIDATES),
        (_person("loa1"), _portal(), ("name", "phone_number")),  # another claim set
    ],
)
def test_a_question_about_other_facts_is_asked_of_cedar(
    engine: PolicyEngine,
    monkeypatch: pytest.MonkeyPatch,
    person: PersonFacts,
    portal: PortalFacts,
    claims: tuple[str, ...],
) -> None:
    engine.may_enter(_person("loa1"), _portal())
    engine.claim_decisions(_person("loa1"), _portal(), CANDIDATES)
    batches = _count_batches(monkeypatch)
    if claims == CANDIDATES:
        engine.may_enter(person, portal)
    engine.claim_decisions(person, portal, claims)
    assert len(batches) == (2 if claims == CANDIDATES else 1)


def test_people_with_the_same_facts_share_decisions_when_no_policy_names_a_person(
    engine: PolicyEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.policy")
    batches = _count_batches(monkeypatch)
    first = PersonFacts("subject-1", "zj", "loa2", amr=("pwd", "otp"))
    second = PersonFacts("subject-2", "zj", "loa2", amr=("pwd", "otp"))
    assert engine.may_enter(first, _portal()) == engine.may_enter(second, _portal())
    assert engine.claim_decisions(first, _portal(), CANDIDATES) == engine.claim_decisions(
        second, _portal(), CANDIDATES
    )
    assert batches == [1, 1]
    # Still every decision is logged, under the subject that asked.
    logged = [getattr(r, "subject", None) for r in caplog.records if r.name == "gateway.policy"]
    assert logged == ["subject-1", "subject-2", "subject-1", "subject-2"]


PERSONAL = """
@id("banned-subject")
@reason("this subject is barred by court order")
forbid (principal == Tongxing::Person::"s-1", action, resource);
"""


@pytest.mark.parametrize(
    "text",
    [
        PERSONAL,
        '@id("banned-subject")\n'
        'forbid (principal, action == Tongxing::Action::"enter", resource)\n'
        'when { [Tongxing::Person::"s-0", Tongxing::Person::"s-1"].contains(principal) };\n',
        '@id("banned-subject")\nforbid (principal in Tongxing::Person::"s-1", action, resource);\n',
    ],
)
def test_a_policy_that_names_a_person_keeps_people_apart(
    engine: PolicyEngine, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    (policy_dir / "personal.cedar").write_text(text, encoding="utf-8")
    engine.reload()
    other = PersonFacts("s-2", "zj", "loa2")
    banned = PersonFacts("s-1", "zj", "loa2")
    batches = _count_batches(monkeypatch)
    assert engine.may_enter(other, _portal()).allowed
    refused = engine.may_enter(banned, _portal())
    assert not refused.allowed
    assert refused.policy_ids == ("banned-subject",)
    assert refused.required_level is None
    assert engine.may_enter(other, _portal()).allowed  # from the cache, s-2's own entry
    assert batches == [1, 1]


def test_a_person_named_in_the_policies_is_refused_claims_while_others_get_theirs(
    engine: PolicyEngine, policy_dir: Path
) -> None:
    (policy_dir / "personal.cedar").write_text(PERSONAL, encoding="utf-8")
    engine.reload()
    assert engine.released_claims(PersonFacts("s-2", "zj", "loa2"), _portal(), CANDIDATES) == {
        "name"
    }
    assert engine.released_claims(PersonFacts("s-1", "zj", "loa2"), _portal(), CANDIDATES) == set()
    assert engine.released_claims(PersonFacts("s-3", "zj", "loa2"), _portal(), CANDIDATES) == {
        "name"
    }


def test_a_reload_drops_the_cache_so_a_changed_policy_takes_effect_at_once(
    engine: PolicyEngine, policy_dir: Path
) -> None:
    banned = PersonFacts("s-1", "zj", "loa2")
    assert engine.may_enter(banned, _portal()).allowed  # now cached, shared by all in zj at loa2
    (policy_dir / "personal.cedar").write_text(PERSONAL, encoding="utf-8")
    engine.reload()
    assert not engine.may_enter(banned, _portal()).allowed
    assert engine.may_enter(PersonFacts("s-2", "zj", "loa2"), _portal()).allowed
    (policy_dir / "personal.cedar").unlink()
    engine.reload()
    assert engine.may_enter(banned, _portal()).allowed


def test_a_decision_with_errors_is_not_cached(
    engine: PolicyEngine, policy_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (policy_dir / "overflow.cedar").write_text(
        '@id("overflowing")\n'
        'forbid (principal, action == Tongxing::Action::"enter", resource)\n'
        "when { context.authentication.rank + 9223372036854775806 > 0 };\n",
        encoding="utf-8",
    )
    engine.reload()
    batches = _count_batches(monkeypatch)
    for _ in range(2):
        decision = engine.may_enter(_person("loa3"), _portal())
        assert not decision.allowed
        assert decision.errors
    assert batches == [1, 1]


def test_a_full_cache_is_emptied_and_fills_again(
    engine: PolicyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy_engine, "DECISION_CACHE_SIZE", 2)
    portals = [_portal(client_id=f"portal-{n}") for n in range(3)]
    for portal in portals:
        engine.may_enter(_person(), portal)
    batches = _count_batches(monkeypatch)
    engine.may_enter(_person(), portals[2])  # kept after the cache was emptied
    assert batches == []
    engine.may_enter(_person(), portals[0])  # forgotten when the cache was emptied
    assert batches == [1]


# --- logging ------------------------------------------------------------------------------------


def test_every_decision_is_logged_with_the_policies_that_made_it(
    engine: PolicyEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.policy")
    portal = _portal(sector="tax", requested_claims=frozenset({"name", "id_number"}))
    engine.may_enter(_person("loa1"), portal)
    engine.required_level(_person("loa1"), portal, "loa2")
    engine.released_claims(_person("loa1"), portal, ["name", "id_number", "phone_number"])
    records = [r for r in caplog.records if r.name == "gateway.policy"]
    assert [getattr(r, "event", None) for r in records] == [
        "policy.decision",
        "policy.required_level",
        "policy.decision",
    ]
    enter, required, release = records
    assert enter.policy_ids == ["tax-needs-loa3"]  # type: ignore[attr-defined]
    assert "tax-needs-loa3" in enter.getMessage()
    assert required.required_level == "loa3"  # type: ignore[attr-defined]
    assert required.policy_ids == ["tax-needs-loa3"]  # type: ignore[attr-defined]
    assert release.released == {"name": ["release-requested-claims"]}  # type: ignore[attr-defined]
    assert release.withheld == {  # type: ignore[attr-defined]
        "id_number": ["id-number-only-to-allowed-portals"],
        "phone_number": ["withhold-unrequested-claims"],
    }


def test_a_refused_reload_is_logged_with_file_and_error(
    engine: PolicyEngine, policy_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (policy_dir / "broken.cedar").write_text("permit (", encoding="utf-8")
    with pytest.raises(PolicySetError):
        engine.reload()
    refused = [r for r in caplog.records if getattr(r, "event", None) == "policy.refused"]
    assert len(refused) == 1
    assert refused[0].levelno == logging.ERROR
    assert "broken.cedar" in refused[0].getMessage()
