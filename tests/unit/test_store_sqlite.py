"""The store's parts that need no server: hashing, records, engine set-up, migrations on SQLite.

The behaviour of every operation is tested once, on both engines, by the contract suite in
``tests/integration/store_contract/`` (one module per aggregate).
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from gateway.store import (
    CodeRecord,
    RegistryKind,
    SqlStore,
    StoreUnavailableError,
    migrations,
    token_hash,
)
from gateway.store.engine import create_store_engine
from gateway.store.schema import metadata

NOW = datetime.datetime(2025, 3, 1, 8, 0, tzinfo=datetime.UTC)


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def store(database: str) -> Iterator[SqlStore]:
    store = SqlStore.from_url(database, busy_timeout=0.2)
    store.migrate()
    yield store
    store.close()


def test_token_hash_is_hex_sha256_of_the_utf8_text() -> None:
    assert token_hash("abc") == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert token_hash("通行") != token_hash("通行 ")


def test_records_refuse_times_without_a_time_zone() -> None:
    with pytest.raises(ValueError, match=r"CodeRecord\.expires_at must be timezone-aware"):
        CodeRecord(
            "hash",
            "grant",
            "client",
            "https://x",
            "openid",
            None,
            None,
            None,
            {},
            datetime.datetime(2025, 3, 1),
        )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("mysql://db/tongxing", "unsupported database"),
        ("postgresql+asyncpg://db/tongxing", "psycopg"),
    ],
)
def test_engines_that_cannot_serve_the_store_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_store_engine(url)


def test_a_plain_postgresql_url_means_psycopg_and_repr_hides_the_password() -> None:
    store = SqlStore.from_url("postgresql://gateway:s3cret@db.internal:5432/tongxing")
    try:
        assert store.engine.url.drivername == "postgresql+psycopg"
        assert "s3cret" not in repr(store)
    finally:
        store.close()


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 200


def test_a_writer_holds_the_lock_from_begin_and_readers_are_not_blocked(
    store: SqlStore,
) -> None:
    """BEGIN IMMEDIATE: a second writer waits (here: gives up after the busy timeout)."""
    store.put_document(RegistryKind.REGION, "zj", {"v": 1}, NOW)
    with store.engine.begin() as writer:
        writer.execute(text("SELECT 1"))  # nothing written yet, but the lock is taken
        with pytest.raises(StoreUnavailableError, match="database is locked"):
            store.put_document(RegistryKind.REGION, "sh", {"v": 1}, NOW)
        document = store.get_document(RegistryKind.REGION, "zj")  # WAL: reading still works
        assert document is not None
    assert store.get_document(RegistryKind.REGION, "sh") is None


def test_writers_queue_instead_of_failing(database: str) -> None:
    store = SqlStore.from_url(database)  # the default busy timeout of 5 s
    store.migrate()
    released = threading.Event()

    def hold_the_lock() -> None:
        with store.engine.begin() as writer:
            writer.execute(text("SELECT 1"))
            released.wait(timeout=5)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    release = threading.Timer(0.3, released.set)
    release.start()
    try:
        stored = store.put_document(RegistryKind.REGION, "zj", {"v": 1}, NOW)
        assert stored.revision == 1
    finally:
        release.cancel()
        released.set()
        holder.join()
        store.close()


def test_migrations_upgrade_from_nothing_down_to_nothing_and_up_again(database: str) -> None:
    assert migrations.current(database) is None
    migrations.upgrade(database)
    assert migrations.current(database) == migrations.head()
    engine = create_store_engine(database)
    try:
        assert set(inspect(engine).get_table_names()) == set(metadata.tables) | {"alembic_version"}
        migrations.downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        migrations.upgrade(engine)
        assert migrations.current(engine) == migrations.head()
    finally:
        engine.dispose()


def test_a_store_on_a_file_it_cannot_open_is_not_healthy(tmp_path: Path) -> None:
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'missing' / 'store.db'}")
    try:
        assert store.healthy() is False
        with pytest.raises(StoreUnavailableError):
            store.get_document(RegistryKind.REGION, "zj")
    finally:
        store.close()
