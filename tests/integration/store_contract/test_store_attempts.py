"""The storage contract, attempt counters: lock-outs shared by every replica.

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import datetime

import pytest
from sqlalchemy import select

from gateway.store import (
    SqlStore,
    Store,
)
from gateway.store.contract import TotpCredential
from gateway.store.schema import attempt_counters

from .support import (
    HOUR,
    LOCKOUT,
    MINUTE,
    NOW,
    SECRET,
    STEP,
    _key,
    _race,
)

# --- attempt counters ---------------------------------------------------------------------------


def test_failures_lock_a_key_at_the_limit_until_the_lockout_ends(store: Store) -> None:
    key = "subject:wang"
    for second in range(4):
        assert store.record_failure(key, NOW + second * MINUTE, 5, LOCKOUT) is None
        assert store.is_locked(key, NOW + second * MINUTE) is None
    locked_at = NOW + 4 * MINUTE
    until = locked_at + LOCKOUT
    assert store.record_failure(key, locked_at, 5, LOCKOUT) == until
    assert store.is_locked(key, locked_at) == until
    assert store.is_locked(key, until - datetime.timedelta(seconds=1)) == until
    # A failure while locked is counted but does not extend the lock.
    assert store.record_failure(key, locked_at + MINUTE, 5, LOCKOUT) == until
    assert store.is_locked(key, until) is None
    # After the lock, counting starts again from one.
    assert store.record_failure(key, until, 5, LOCKOUT) is None
    assert store.is_locked("ip:192.0.2.1", NOW) is None  # keys are independent


def test_failures_outside_the_window_start_counting_again(store: Store) -> None:
    key = "ip:192.0.2.1"
    for _ in range(2):
        assert store.record_failure(key, NOW, 3, LOCKOUT) is None
    # The window runs from the first failure: after it, the two old failures no longer count.
    assert store.record_failure(key, NOW + LOCKOUT, 3, LOCKOUT) is None
    assert store.record_failure(key, NOW + LOCKOUT, 3, LOCKOUT) is None
    assert store.record_failure(key, NOW + LOCKOUT, 3, LOCKOUT) == NOW + 2 * LOCKOUT


def test_resetting_failures_lifts_a_lock(store: Store) -> None:
    key = "subject:wang"
    assert store.record_failure(key, NOW, 1, LOCKOUT) == NOW + LOCKOUT
    assert store.reset_failures(key) is True
    assert store.reset_failures(key) is False
    assert store.is_locked(key, NOW) is None
    assert store.record_failure(key, NOW, 2, LOCKOUT) is None
    with pytest.raises(ValueError, match="limit"):
        store.record_failure(key, NOW, 0, LOCKOUT)
    with pytest.raises(ValueError, match="lockout"):
        store.record_failure(key, NOW, 1, datetime.timedelta(0))


def test_twenty_concurrent_failures_are_all_counted(sql_store: SqlStore) -> None:
    store: Store = sql_store
    results = _race(20, lambda _: store.record_failure("subject:race", NOW, 20, LOCKOUT))
    assert results.count(NOW + LOCKOUT) == 1, results  # exactly the twentieth locked it
    assert results.count(None) == 19, results
    with sql_store.engine.connect() as conn:
        failures = conn.execute(
            select(attempt_counters.c.failures).where(attempt_counters.c.key == "subject:race")
        ).scalar_one()
    assert failures == 20


def test_a_lockout_holds_across_two_replicas_on_one_database(store_url: str) -> None:
    replicas = [SqlStore.from_url(store_url) for _ in range(2)]
    try:
        first, second = replicas
        first.migrate()
        second.migrate()
        key = "subject:wang"
        # Failures on either replica count together...
        for index in range(4):
            assert replicas[index % 2].record_failure(key, NOW, 5, LOCKOUT) is None
        until = second.record_failure(key, NOW, 5, LOCKOUT)
        assert until == NOW + LOCKOUT
        # ...and the lock one of them set is in force on the other.
        assert first.is_locked(key, NOW + MINUTE) == until
        assert first.record_failure(key, NOW + MINUTE, 5, LOCKOUT) == until
        # A step accepted on one replica is spent on the other.
        subject = first.link_subject(_key("wang"), "zj", "zj-1", NOW)
        first.save_totp_credential(TotpCredential(subject.id, SECRET, NOW))
        assert second.confirm_totp_credential(subject.id, SECRET, STEP, [], NOW)
        assert first.accept_totp_step(subject.id, STEP + 1, NOW)
        assert not second.accept_totp_step(subject.id, STEP + 1, NOW)
    finally:
        for replica in replicas:
            replica.close()


def test_purge_forgets_attempt_counters_whose_window_and_lock_have_passed(store: Store) -> None:
    store.record_failure("ip:stale", NOW, 5, LOCKOUT)
    store.record_failure("subject:locked", NOW, 1, 2 * HOUR)
    later = NOW + HOUR
    assert store.purge_expired(later) == 1
    assert store.is_locked("subject:locked", later) == NOW + 2 * HOUR
    assert store.purge_expired(NOW + 2 * HOUR) == 1
    assert store.reset_failures("ip:stale") is False


# --- slowing a key down (a client address): never a lock-out ------------------------------------

SECOND = datetime.timedelta(seconds=1)


def test_failures_past_the_budget_hold_a_key_back_for_a_growing_bounded_delay(
    store: Store,
) -> None:
    key = "ip:198.51.100.7"
    for _ in range(3):
        assert store.delay_after_failure(key, NOW, 3, LOCKOUT, 2 * SECOND, 8 * SECOND) is None
    assert store.is_locked(key, NOW) is None
    at = NOW
    for expected in (2, 4, 8, 8):  # doubling from the first delay, capped at the maximum
        held = store.delay_after_failure(key, at, 3, LOCKOUT, 2 * SECOND, 8 * SECOND)
        assert held == at + expected * SECOND
        assert store.is_locked(key, at) == held
        at = held
    assert store.is_locked(key, at) is None


def test_the_count_of_a_slowed_key_starts_again_after_its_window(store: Store) -> None:
    key = "ip:198.51.100.8"
    for _ in range(4):
        store.delay_after_failure(key, NOW, 3, LOCKOUT, SECOND, 4 * SECOND)
    later = NOW + LOCKOUT
    assert store.delay_after_failure(key, later, 3, LOCKOUT, SECOND, 4 * SECOND) is None
    assert store.is_locked(key, later) is None


def test_concurrent_failures_on_a_slowed_key_are_all_counted(store: Store) -> None:
    key = "ip:198.51.100.9"
    results = _race(
        8, lambda _: store.delay_after_failure(key, NOW, 4, LOCKOUT, SECOND, 64 * SECOND)
    )
    assert not [r for r in results if isinstance(r, Exception)]
    # Four of eight within the budget, the others held back 1, 2, 4 and 8 seconds.
    assert sum(r is None for r in results) == 4
    assert store.is_locked(key, NOW) == NOW + 8 * SECOND
