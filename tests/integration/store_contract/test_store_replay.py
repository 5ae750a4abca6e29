"""The storage contract, client assertions: each ``jti`` used once per client.

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

from gateway.store import (
    SqlStore,
    Store,
)

from .support import (
    CLIENT,
    MINUTE,
    NOW,
    _count,
    _race,
)

# --- client assertions --------------------------------------------------------------------------


def test_a_client_assertion_is_accepted_once_until_it_is_forgotten(store: Store) -> None:
    until = NOW + MINUTE
    assert store.use_assertion(CLIENT, "jti-1", until, NOW) is True
    assert store.use_assertion(CLIENT, "jti-1", until, NOW + MINUTE / 2) is False  # a replay
    assert store.use_assertion("other-portal", "jti-1", until, NOW) is True  # per client
    assert store.use_assertion(CLIENT, "jti-2", until, NOW) is True
    # Remembered until it expires: after that the assertion itself would be refused anyway.
    assert store.use_assertion(CLIENT, "jti-1", until + MINUTE, until) is True
    assert store.use_assertion(CLIENT, "jti-1", until + MINUTE, until) is False


def test_of_concurrent_uses_of_one_assertion_one_is_accepted(sql_store: SqlStore) -> None:
    store: Store = sql_store
    other: Store = SqlStore(sql_store.engine)  # another replica on the same database
    results = _race(
        20,
        lambda i: (store if i % 2 else other).use_assertion(CLIENT, "jti-race", NOW + MINUTE, NOW),
    )
    assert results.count(True) == 1, results
    assert results.count(False) == 19, results


def test_purge_forgets_used_assertions_once_they_expire(sql_store: SqlStore) -> None:
    store: Store = sql_store
    store.use_assertion(CLIENT, "old", NOW + MINUTE, NOW)
    store.use_assertion(CLIENT, "new", NOW + 3 * MINUTE, NOW)
    store.purge_expired(NOW + 2 * MINUTE)
    assert _count(sql_store, "used_assertions") == 1
    assert store.use_assertion(CLIENT, "new", NOW + 3 * MINUTE, NOW + 2 * MINUTE) is False
