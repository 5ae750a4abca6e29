"""The policy set's generations (gateway.store.contract.policy_sets), on both engines."""

from __future__ import annotations

import pytest

from gateway.store import Store
from gateway.store.contract import PolicyGenerationConflictError

from .support import MINUTE, NOW, _race

SET_A = {"schema.cedarschema": "namespace Tongxing {}", "a.cedar": '@id("a")\npermit(...);'}
SET_B = {"schema.cedarschema": "namespace Tongxing {}", "b.cedar": "// 浙江 policies\n"}


def test_an_empty_store_has_no_policy_set(store: Store) -> None:
    assert store.policy_set_generation() is None
    assert store.active_policy_set() is None


def test_each_write_is_the_next_generation_and_the_newest_is_active(store: Store) -> None:
    first = store.put_policy_set(SET_A, "a" * 64, "gateway start-up", NOW, expected_generation=0)
    assert first.generation == 1
    second = store.put_policy_set(SET_B, "b" * 64, "platform", NOW + MINUTE)
    assert second.generation == 2
    assert store.policy_set_generation() == 2
    active = store.active_policy_set()
    assert active == second
    assert active is not None
    assert dict(active.documents) == SET_B  # text kept exactly, non-ASCII included
    assert (active.digest, active.activated_by, active.activated_at) == (
        "b" * 64,
        "platform",
        NOW + MINUTE,
    )


def test_an_expected_generation_that_is_not_the_newest_writes_nothing(store: Store) -> None:
    store.put_policy_set(SET_A, "a" * 64, "gateway start-up", NOW, expected_generation=0)
    with pytest.raises(PolicyGenerationConflictError) as conflict:
        store.put_policy_set(SET_B, "b" * 64, "gateway start-up", NOW, expected_generation=0)
    assert (conflict.value.expected, conflict.value.actual) == (0, 1)
    with pytest.raises(PolicyGenerationConflictError):
        store.put_policy_set(SET_B, "b" * 64, "platform", NOW, expected_generation=2)
    assert store.policy_set_generation() == 1
    assert store.put_policy_set(SET_B, "b" * 64, "platform", NOW, expected_generation=1)


def test_of_gateways_starting_at_once_exactly_one_records_the_first_set(store: Store) -> None:
    results = _race(
        6,
        lambda i: store.put_policy_set(
            SET_A, f"{i:064d}", "gateway start-up", NOW, expected_generation=0
        ),
    )
    written = [r for r in results if not isinstance(r, Exception)]
    assert len(written) == 1
    assert all(isinstance(r, PolicyGenerationConflictError) for r in results if r not in written)
    assert store.policy_set_generation() == 1


def test_concurrent_reloads_each_get_their_own_generation(store: Store) -> None:
    results = _race(4, lambda i: store.put_policy_set(SET_B, f"{i:064d}", "platform", NOW))
    assert not [r for r in results if isinstance(r, Exception)], results
    generations = sorted(r.generation for r in results if not isinstance(r, Exception))
    assert generations == [1, 2, 3, 4]


def test_a_set_without_documents_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="documents"):
        store.put_policy_set({}, "a" * 64, "platform", NOW)
    with pytest.raises(ValueError, match="timezone"):
        store.put_policy_set(SET_A, "a" * 64, "platform", NOW.replace(tzinfo=None))
    assert store.policy_set_generation() is None
