"""The PostgreSQL engine's pool: idle connections are pinged before reuse, busy ones are not."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from tongxing_dev.postgres import PostgresEndpoint

from gateway.store import RegistryKind, SqlStore
from gateway.store import engine as engines


@pytest.fixture
def database(postgres: PostgresEndpoint) -> Iterator[str]:
    """An empty database (dropped at the end)."""
    name = f"engine_{uuid.uuid4().hex[:16]}"
    postgres.create_database(name)
    yield postgres.sqlalchemy_url(name)
    postgres.drop_database(name)


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _count_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    real = engine.dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        pings.append(1)
        return bool(real(dbapi_connection))

    monkeypatch.setattr(engine.dialect, "do_ping", do_ping)
    return pings


def test_a_connection_in_steady_use_is_not_pinged(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqlStore.from_url(database, pool_size=1, max_overflow=0)
    try:
        store.migrate()
        pings = _count_pings(store.engine, monkeypatch)
        for _ in range(5):
            store.get_document(RegistryKind.PORTAL, "zj-portal")
        assert pings == []
    finally:
        store.close()


def test_an_idle_connection_the_server_dropped_is_replaced_before_it_is_used(
    database: str, postgres: PostgresEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engines, "PING_AFTER_IDLE", 0.0)  # every reused connection is "idle"
    store = SqlStore.from_url(database, pool_size=1, max_overflow=0)
    try:
        store.migrate()
        first = _backend_pid(store.engine)
        with psycopg.connect(postgres.url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        pings = _count_pings(store.engine, monkeypatch)
        # The pooled connection is dead: the ping finds out and the pool opens another one.
        assert store.get_document(RegistryKind.PORTAL, "zj-portal") is None
        assert len(pings) >= 1
        assert _backend_pid(store.engine) != first
    finally:
        store.close()
