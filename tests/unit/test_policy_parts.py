"""The policy package's parts on their own: what Cedar sees, the loader, the decision cache."""

from __future__ import annotations

import datetime
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.policy import Decision, PersonFacts, PolicySetError, PortalFacts, default_policy_dir
from gateway.policy.engine import DecisionCache
from gateway.policy.entities import cedar_entities, claim_request, enter_request
from gateway.policy.loader import LoadedPolicySet, PolicyLoader, load_policy_set

NOW = datetime.datetime(2025, 3, 1, 8, 0, tzinfo=datetime.UTC)

PERSON = PersonFacts("subject-1", "zj", "loa2", amr=("pwd", "otp", "pwd"), age_band="adult")
PORTAL = PortalFacts(
    "zj-library",
    "zj",
    sector="culture",
    minimum_level="loa2",
    requested_claims=frozenset({"phone_number", "name"}),
    allowed_home_regions=frozenset({"zj", "sh"}),
)


@pytest.fixture(scope="module")
def shipped() -> LoadedPolicySet:
    return load_policy_set(default_policy_dir(), NOW)


# --- what Cedar sees ----------------------------------------------------------------------------


def test_the_person_reaches_cedar_as_an_id_with_home_region_and_age_band_only() -> None:
    person, portal, *claims = cedar_entities(PERSON, PORTAL, ["id_number"])

    assert person == {
        "uid": {"type": "Tongxing::Person", "id": "subject-1"},
        "attrs": {"home_region": "zj", "age_band": "adult"},
        "parents": [],
    }
    assert portal["uid"] == {"type": "Tongxing::Portal", "id": "zj-library"}
    assert portal["attrs"] == {
        "owner": "zj",
        "sector": "culture",
        "minimum_level": "loa2",
        "minimum_rank": 2,
        "requested_claims": [
            {"__entity": {"type": "Tongxing::Claim", "id": "name"}},
            {"__entity": {"type": "Tongxing::Claim", "id": "phone_number"}},
        ],
        "may_receive_id_number": False,
        "allowed_home_regions": ["sh", "zj"],
    }
    # every claim asked about or requested is an entity, once, in order
    assert [entity["uid"]["id"] for entity in claims] == ["id_number", "name", "phone_number"]


def test_the_level_asked_about_goes_into_the_context_not_the_persons_own() -> None:
    request = enter_request(PERSON, PORTAL, "loa3")

    assert request["action"] == {"type": "Tongxing::Action", "id": "enter"}
    assert request["context"] == {
        "authentication": {"level": "loa3", "rank": 3, "amr": ["otp", "pwd"]}
    }


def test_a_claim_request_names_the_portal_and_this_sign_ins_level() -> None:
    request = claim_request(PERSON, PORTAL, "name")

    assert request["resource"] == {"type": "Tongxing::Claim", "id": "name"}
    assert request["context"] == {
        "portal": {"__entity": {"type": "Tongxing::Portal", "id": "zj-library"}},
        "authentication": {"level": "loa2", "rank": 2, "amr": ["otp", "pwd"]},
    }


# --- the loader keeps the last good set ---------------------------------------------------------


def test_a_refused_reload_leaves_the_loader_on_the_set_it_had(tmp_path: Path) -> None:
    directory = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), directory)
    loader = PolicyLoader(directory, clock=lambda: NOW)
    good = loader.active
    (directory / "broken.cedar").write_text("permit (principal, action, resource) when {")

    with pytest.raises(PolicySetError, match=r"broken\.cedar"):
        loader.reload()

    assert loader.active is good
    (directory / "broken.cedar").unlink()
    assert loader.reload() is loader.active is not good


# --- the decision cache -------------------------------------------------------------------------


def test_the_cache_key_leaves_the_subject_out_unless_a_policy_names_a_person(
    shipped: LoadedPolicySet,
) -> None:
    twin = replace(PERSON, subject="subject-2")
    assert not shipped.names_a_person

    anonymous = DecisionCache(shipped)
    assert anonymous.key("enter", (), PORTAL, PERSON) == anonymous.key("enter", (), PORTAL, twin)
    other_facts = replace(twin, amr=("pwd",))
    assert anonymous.key("enter", (), PORTAL, PERSON) != anonymous.key(
        "enter", (), PORTAL, other_facts
    )

    naming = DecisionCache(replace(shipped, names_a_person=True))
    assert naming.key("enter", (), PORTAL, PERSON) != naming.key("enter", (), PORTAL, twin)


def test_an_answer_with_errors_is_never_remembered(shipped: LoadedPolicySet) -> None:
    cache = DecisionCache(shipped)
    key = cache.key("release_claim", ("name",), PORTAL, PERSON)

    cache.put(key, (Decision(False, errors=("evaluation error",)),))
    assert cache.get(key) is None

    answer = (Decision(True, ("release-requested-claims",)),)
    cache.put(key, answer)
    assert cache.get(key) is answer


def test_a_full_cache_starts_again_from_empty(
    shipped: LoadedPolicySet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.policy.engine.DECISION_CACHE_SIZE", 2)
    cache = DecisionCache(shipped)
    keys = [cache.key("enter", (), replace(PORTAL, client_id=f"p{n}"), PERSON) for n in range(3)]
    for key in keys:
        cache.put(key, (Decision(True),))

    assert len(cache) == 1
    assert cache.get(keys[2]) is not None
    assert cache.get(keys[0]) is None
