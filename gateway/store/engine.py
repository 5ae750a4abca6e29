"""SQLAlchemy engines for the two store engines, set up for concurrent writers.

SQLite (embedded default): write-ahead log so readers never block the writer, a busy timeout so
writers queue instead of failing with "database is locked", foreign keys on, and ``BEGIN
IMMEDIATE`` for write transactions. pysqlite's own transaction handling is switched off and
SQLAlchemy emits ``BEGIN`` itself (SQLAlchemy, SQLite dialect, "Enabling Non-Legacy SQLite
Transactional Modes"). Why IMMEDIATE: a deferred transaction takes the write lock only at its
first write, and if another connection committed since it first read, SQLite fails it at once
with "database is locked" (its snapshot is stale; the busy timeout cannot help). Taking the lock
at BEGIN makes writers wait their turn instead.

PostgreSQL (several gateway replicas): psycopg 3, a pool sized for many threads, and a ping
before a connection that sat idle in the pool is used again, so that one dropped by a restart or
a proxy is replaced instead of failing a request. A connection that was in use moments ago is
not pinged: SQLAlchemy's ``pool_pre_ping`` pings on every checkout, which under load is one more
round trip for each of the several transactions of every token request, to learn what the
previous transaction on the same connection has just shown. If the server goes away between
two such transactions, the request fails like one in flight would, SQLAlchemy then recycles the
whole pool, and the next requests connect afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

READ_ONLY = "tongxing_read_only"
"""Execution option: on SQLite, begin with a deferred (shared) lock instead of ``IMMEDIATE``."""

DEFAULT_POOL_SIZE = 10
DEFAULT_MAX_OVERFLOW = 40  # 50 connections: one per request thread of a busy replica
DEFAULT_POOL_TIMEOUT = 30.0
DEFAULT_BUSY_TIMEOUT = 5.0
#: A pooled PostgreSQL connection idle for this long is pinged before it is used again.
PING_AFTER_IDLE = 2.0
_IDLE_SINCE = "tongxing_idle_since"


def create_store_engine(
    url: str | URL,
    *,
    pool_size: int = DEFAULT_POOL_SIZE,
    max_overflow: int = DEFAULT_MAX_OVERFLOW,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    echo: bool = False,
) -> Engine:
    """An engine for a ``sqlite:///path`` or ``postgresql[+psycopg]://`` URL.

    A plain ``postgresql://`` URL is taken to mean psycopg 3. In-memory SQLite is refused: each
    pooled connection would see its own empty database.
    """
    # Imported here, not above: the CLI imports the store, and `tongxing serve --workers` must
    # name the metrics directory before anything imports prometheus-client (gateway.wsgi).
    from gateway.metrics import time_statements

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:") or "mode=memory" in str(parsed):
            raise ValueError("in-memory SQLite cannot be shared between threads; use a file")
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            echo=echo,
            connect_args={"timeout": busy_timeout, "check_same_thread": False},
        )
        _configure_sqlite(engine, busy_timeout)
        time_statements(engine)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.drivername != "postgresql+psycopg":
            raise ValueError(f"unsupported PostgreSQL driver {parsed.drivername!r}; use psycopg")
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            echo=echo,
            connect_args={"application_name": "tongxing-gateway"},
        )
        ping_idle_connections(engine, PING_AFTER_IDLE)
        time_statements(engine)
        return engine
    raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")


def ping_idle_connections(
    engine: Engine, idle: float, clock: Callable[[], float] = time.monotonic
) -> None:
    """Ping a pooled connection before reuse if it sat idle ``idle`` seconds or more.

    A connection that fails the ping is discarded and the pool hands out another one (SQLAlchemy
    retries a checkout whose ``checkout`` event raises :class:`DisconnectionError`). New
    connections are not pinged: they have just been opened.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = clock()

    @event.listens_for(engine, "checkout")
    def _checked_out(
        dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or clock() - since < idle:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError("a pooled connection failed its ping") from error


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite; the "begin" hook below emits BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock another connection may hold.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            # With WAL, NORMAL loses no committed data on a crash of the process, only on a
            # power failure of the machine, and spares an fsync per commit.
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN DEFERRED")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
