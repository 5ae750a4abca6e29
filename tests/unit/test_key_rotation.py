"""The rotation rules on their own, without a ring or a file, and a ring following a key source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.keys import SIGNING_ALGORITHMS, InvalidKeyRingError, KeyRing, SigningKey
from gateway.keys.rotation import (
    Succession,
    check_rules,
    ordered,
    rotate_keys,
    signing_keys,
    succession,
)
from gateway.keys.signing_key import KeyState

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
LIFETIME = timedelta(minutes=10)

Pool = dict[str, list[SigningKey]]


@pytest.fixture(scope="module")
def pool() -> Pool:
    """Four keys per algorithm, one day apart, newest first; tests give them their states.
    Generated once per module, since RSA generation is slow."""
    return {
        alg: [SigningKey.generate(alg, now=NOW - timedelta(days=n)) for n in range(4)]
        for alg in SIGNING_ALGORITHMS
    }


def as_(key: SigningKey, state: KeyState, retire_until: datetime | None = None) -> SigningKey:
    return replace(key, state=state, retire_until=retire_until)


def fresh(pool: Pool) -> list[SigningKey]:
    """A ring's keys as generated: per algorithm one active key and one next key."""
    return [as_(pool[alg][0], "active") for alg in SIGNING_ALGORITHMS] + [
        as_(pool[alg][1], "next") for alg in SIGNING_ALGORITHMS
    ]


def kids(keys: list[SigningKey] | tuple[SigningKey, ...]) -> set[str]:
    return {key.kid for key in keys}


# --- what makes a set of keys a ring ----------------------------------------------------------


def test_one_active_and_one_next_key_per_algorithm_is_a_ring(pool: Pool) -> None:
    check_rules(fresh(pool))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: [*fresh(p), as_(p["RS256"][0], "next")], "appears more than once"),
        (lambda p: [as_(p["ES256"][0], "active")], "has no RS256 key"),
        (
            lambda p: [*fresh(p), as_(p["RS256"][2], "active")],
            "RS256 needs exactly one active key, found 2",
        ),
        (lambda p: [as_(p["RS256"][1], "next")], "RS256 needs exactly one active key, found 0"),
        (
            lambda p: [*fresh(p), as_(p["ES256"][2], "next")],
            "ES256 has 2 next keys, at most 1",
        ),
    ],
    ids=["same-kid-twice", "no-rs256", "two-signers", "no-signer", "two-next-keys"],
)
def test_a_set_that_breaks_a_rule_is_not_a_ring(
    pool: Pool, make: Callable[[Pool], list[SigningKey]], message: str
) -> None:
    with pytest.raises(InvalidKeyRingError, match=message):
        check_rules(make(pool))


def test_keys_are_listed_by_algorithm_then_active_next_retired_newest_first(pool: Pool) -> None:
    until = NOW + LIFETIME
    keys = [
        as_(pool["ES256"][3], "retired", until),
        as_(pool["RS256"][3], "retired", until),
        as_(pool["ES256"][1], "next"),
        as_(pool["RS256"][2], "retired", until),
        as_(pool["RS256"][1], "next"),
        as_(pool["ES256"][0], "active"),
        as_(pool["RS256"][0], "active"),
    ]
    listed = [(key.alg, key.state, key.kid) for key in ordered(keys)]
    assert listed == [
        ("RS256", "active", pool["RS256"][0].kid),
        ("RS256", "next", pool["RS256"][1].kid),
        ("RS256", "retired", pool["RS256"][2].kid),  # newer retired key first
        ("RS256", "retired", pool["RS256"][3].kid),
        ("ES256", "active", pool["ES256"][0].kid),
        ("ES256", "next", pool["ES256"][1].kid),
        ("ES256", "retired", pool["ES256"][3].kid),
    ]
    assert list(signing_keys(ordered(keys))) == ["RS256", "ES256"]


# --- one rotation step --------------------------------------------------------------------------


def test_a_rotation_signs_with_the_published_next_key_and_keeps_the_old_one_published(
    pool: Pool,
) -> None:
    before = fresh(pool)

    after = rotate_keys(before, NOW, LIFETIME)

    check_rules(after)
    for alg in SIGNING_ALGORITHMS:
        old_active, old_next = pool[alg][0], pool[alg][1]
        own = [key for key in after if key.alg == alg]
        assert signing_keys(after)[alg].kid == old_next.kid
        retired = [key for key in own if key.state == "retired"]
        assert [(key.kid, key.retire_until) for key in retired] == [
            (old_active.kid, NOW + LIFETIME)
        ]
        upcoming = [key for key in own if key.state == "next"]
        assert len(upcoming) == 1
        assert upcoming[0].kid not in kids(before)
        assert upcoming[0].created_at == NOW
    assert [key.kid for key in before] == [key.kid for key in fresh(pool)]  # input untouched


def test_a_retired_key_stays_until_retire_until_and_then_leaves(pool: Pool) -> None:
    still_valid = as_(pool["RS256"][2], "retired", NOW + timedelta(seconds=1))
    expired = as_(pool["RS256"][3], "retired", NOW)  # its last token expires now

    after = rotate_keys([*fresh(pool), still_valid, expired], NOW, LIFETIME)

    assert still_valid in after
    assert expired.kid not in kids(after)


def test_without_a_next_key_the_active_key_signs_until_one_has_been_published(
    pool: Pool,
) -> None:
    handmade = [as_(pool["RS256"][0], "active")]

    first = rotate_keys(handmade, NOW, LIFETIME)
    assert signing_keys(first)["RS256"].kid == pool["RS256"][0].kid
    [published] = [key for key in first if key.state == "next"]

    second = rotate_keys(first, NOW + LIFETIME, LIFETIME)
    assert signing_keys(second)["RS256"].kid == published.kid


def test_a_rotation_refuses_a_naive_moment_and_a_lifetime_that_is_not_positive(
    pool: Pool,
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        rotate_keys(fresh(pool), datetime(2026, 11, 22, 8, 0), LIFETIME)
    with pytest.raises(ValueError, match="must be positive"):
        rotate_keys(fresh(pool), NOW, timedelta(0))


def test_a_rotation_keeps_the_rsa_key_size_the_operator_chose() -> None:
    big = SigningKey.generate("RS256", now=NOW, state="active", rsa_key_size=3072)

    after = rotate_keys([big], NOW, LIFETIME)

    [upcoming] = [key for key in after if key.state == "next"]
    assert upcoming.jose_key.public_key.key_size == 3072


# --- one set of keys taking over from another (a rotated key file) -----------------------------


def test_a_rotated_set_takes_over_without_a_finding(pool: Pool) -> None:
    before = ordered(fresh(pool))
    assert succession(before, rotate_keys(before, NOW, LIFETIME)) == Succession()


def test_a_set_without_an_algorithm_the_old_one_signs_with_drops_it(pool: Pool) -> None:
    before = ordered(fresh(pool))
    only_rs256 = ordered(key for key in before if key.alg == "RS256")

    change = succession(before, only_rs256)

    assert change.dropped == ("ES256",)
    assert change.unannounced == change.withdrawn == ()


def test_a_signer_never_published_and_a_signer_no_longer_published_are_both_named(
    pool: Pool,
) -> None:
    before = ordered(fresh(pool))
    stranger = as_(pool["RS256"][3], "active")
    replaced = ordered([stranger, *(key for key in before if key.alg == "ES256")])

    change = succession(before, replaced)

    assert change.dropped == ()
    assert [key.kid for key in change.unannounced] == [stranger.kid]
    assert [key.kid for key in change.withdrawn] == [pool["RS256"][0].kid]


# --- a ring follows a source of keys it knows nothing about ------------------------------------


class OfferingFollower:
    """A source of keys with no file behind it: due when told, offering a ring or nothing."""

    def __init__(self, offer: KeyRing | None) -> None:
        self.offer = offer
        self.due = False
        self.looked_at: list[tuple[SigningKey, ...]] = []

    def is_due(self) -> bool:
        return self.due

    def look(self, keys: tuple[SigningKey, ...]) -> KeyRing | None:
        self.looked_at.append(keys)
        self.due = False
        return self.offer


def test_a_ring_takes_the_keys_its_follower_offers_once_it_is_due(pool: Pool) -> None:
    ring = KeyRing(fresh(pool))
    offered = KeyRing(rotate_keys(fresh(pool), NOW, LIFETIME))
    follower = OfferingFollower(offered)
    ring.follow(follower)

    assert ring.active_key().kid == pool["RS256"][0].kid
    assert follower.looked_at == []

    follower.due = True
    assert ring.active_key().kid == pool["RS256"][1].kid
    # it was shown the keys in use, in the ring's order
    assert [[key.kid for key in keys] for keys in follower.looked_at] == [
        [key.kid for key in ordered(fresh(pool))]
    ]
    assert kids(ring.keys) == kids(offered.keys)


def test_a_ring_keeps_its_keys_when_its_follower_offers_none(pool: Pool) -> None:
    ring = KeyRing(fresh(pool))
    follower = OfferingFollower(None)
    ring.follow(follower)
    follower.due = True

    assert kids(ring.keys) == kids(fresh(pool))
    assert len(follower.looked_at) == 1
