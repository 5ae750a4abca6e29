"""The storage contract, the broker's login transactions: ``state`` is single use.

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import dataclasses

import pytest

from gateway.store import (
    DuplicateRecordError,
    LoginTransaction,
    LoginTransactionNotFoundError,
    Store,
    token_hash,
)

from .support import (
    MINUTE,
    NOW,
    _race,
    _transaction,
)

# --- upstream login transactions ----------------------------------------------------------------


def test_a_login_transaction_is_consumed_once(store: Store) -> None:
    transaction = _transaction()
    store.save_login_transaction(transaction)
    consumed = store.consume_login_transaction(transaction.state_hash, NOW + MINUTE)
    assert consumed == dataclasses.replace(transaction, consumed_at=NOW + MINUTE)
    with pytest.raises(LoginTransactionNotFoundError):
        store.consume_login_transaction(transaction.state_hash, NOW + MINUTE)
    with pytest.raises(DuplicateRecordError):
        store.save_login_transaction(transaction)


def test_an_unknown_or_expired_login_transaction_is_not_found(store: Store) -> None:
    transaction = _transaction(expires_at=NOW + 10 * MINUTE)
    store.save_login_transaction(transaction)
    with pytest.raises(LoginTransactionNotFoundError):
        store.consume_login_transaction(token_hash("forged"), NOW)
    with pytest.raises(LoginTransactionNotFoundError):
        store.consume_login_transaction(transaction.state_hash, NOW + 10 * MINUTE)


def test_twenty_concurrent_callbacks_consume_a_transaction_once(store: Store) -> None:
    store.save_login_transaction(_transaction())
    results = _race(20, lambda _: store.consume_login_transaction(token_hash("state"), NOW))
    assert sum(isinstance(result, LoginTransaction) for result in results) == 1, results
    assert sum(isinstance(r, LoginTransactionNotFoundError) for r in results) == 19, results
