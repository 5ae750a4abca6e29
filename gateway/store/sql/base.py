"""What every aggregate of the SQL store shares: transactions, inserts and argument checks."""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from gateway.store.contract import DuplicateRecordError, JsonObject, StoreUnavailableError
from gateway.store.engine import READ_ONLY

Insert = postgresql.Insert | sqlite.Insert


class SqlBase:
    """The engine, and one transaction per operation; every aggregate's class builds on it."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {engine.dialect.name!r}")
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        # Shares the pool. Reads (see _read), and on PostgreSQL also the writes that are one
        # statement, atomic by themselves: in autocommit they cost one round trip, no BEGIN or
        # COMMIT.
        read_options: dict[str, Any] = {READ_ONLY: True}
        if self._postgres:
            read_options["isolation_level"] = "AUTOCOMMIT"
        self._reader = engine.execution_options(**read_options)

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite); commits unless it raises."""
        with unavailable(), self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """One read: a deferred (shared) transaction on SQLite, autocommit on PostgreSQL.

        On SQLite the transaction gives the statements of one read a single snapshot. PostgreSQL
        runs the store at READ COMMITTED, where every statement takes its own snapshot inside a
        transaction or not, so ``BEGIN`` and ``COMMIT`` around a read would change nothing but
        cost two more round trips to the server on every lookup.
        """
        with unavailable(), self._reader.connect() as conn:
            if self._postgres:
                yield conn
                return
            with conn.begin():
                yield conn

    def _insert(self, table: Table) -> Insert:
        if self._postgres:
            return postgresql.insert(table)
        return sqlite.insert(table)

    @staticmethod
    def _insert_new(conn: Connection, table: Table, what: str, **values: Any) -> None:
        require_aware(**{k: v for k, v in values.items() if isinstance(v, datetime.datetime)})
        try:
            conn.execute(insert_into(table), values)
        except IntegrityError as error:
            raise DuplicateRecordError(f"this {what} already exists") from error


@functools.cache
def insert_into(table: Table) -> Any:
    """``INSERT INTO table`` with the columns of the values it is executed with (built once)."""
    return table.insert()


@contextmanager
def unavailable() -> Iterator[None]:
    """Turn connection-level failures into :class:`StoreUnavailableError` (no SQL, no values)."""
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        raise StoreUnavailableError(f"database unavailable: {error.orig}") from error


def require_text(**values: str) -> None:
    for name, value in values.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string")


def require_aware(**values: datetime.datetime | None) -> None:
    for name, value in values.items():
        if value is not None and (
            not isinstance(value, datetime.datetime) or value.utcoffset() is None
        ):
            raise ValueError(f"{name} must be a timezone-aware datetime")


def json_object(value: Mapping[str, Any], what: str) -> JsonObject:
    """A deep copy through JSON: refuses what JSON cannot hold, returns what will be read back."""
    try:
        copied = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} is not a JSON object: {error}") from None
    if not isinstance(copied, dict):  # pragma: no cover - dict() above guarantees an object
        raise ValueError(f"{what} is not a JSON object")
    return copied


__all__ = [
    "Insert",
    "SqlBase",
    "insert_into",
    "json_object",
    "require_aware",
    "require_text",
    "unavailable",
]
