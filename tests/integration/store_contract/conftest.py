"""Fixtures of the storage contract suite (house rule 3: one contract, one suite).

Each test gets a fresh, migrated store on each engine: SQLite on a temporary file, PostgreSQL on
a new database of the harness cluster. The store is handed to tests as callers see it (only the
contract, :class:`~gateway.store.contract.Store`) or, where a test must look at rows, as the
engine (:class:`~gateway.store.sql.SqlStore`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tongxing_dev.postgres import PostgresEndpoint

from gateway.store import Grant, SqlStore, Store, Subject

from .support import CLIENT, NOW, _key


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    postgres: PostgresEndpoint = request.getfixturevalue("postgres")
    name = f"store_{uuid.uuid4().hex[:16]}"
    postgres.create_database(name)
    yield postgres.sqlalchemy_url(name)
    postgres.drop_database(name)


@pytest.fixture
def sql_store(store_url: str) -> Iterator[SqlStore]:
    store = SqlStore.from_url(store_url)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def store(sql_store: SqlStore) -> Store:
    """The store as callers see it: only the contract."""
    return sql_store


@pytest.fixture
def subject(store: Store) -> Subject:
    return store.link_subject(_key("citizen"), "zj", "zj-sub-1", NOW)


@pytest.fixture
def grant(store: Store, subject: Subject) -> Grant:
    return store.create_grant(CLIENT, subject.id, NOW)
