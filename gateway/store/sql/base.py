"""What every aggregate of the SQL store shares: transactions, inserts and argument checks."""

from __future__ import annotations

import datetime
import functools
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

import psycopg
from sqlalchemy import Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

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
        # The hot statements of the token endpoints, compiled for psycopg (see _hot).
        self._compiled: dict[ClauseElement, HotStatement] = {}
        self._compiling = threading.Lock()

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

    def _first(self, statement: ClauseElement, values: Mapping[str, Any]) -> Any | None:
        """The first row of a read (``None`` if none): :meth:`_hot` on PostgreSQL, one read
        transaction (:meth:`_read`) on SQLite."""
        if self._postgres:
            return self._hot(statement, values)
        with self._read() as conn:
            return conn.execute(statement, values).first()  # type: ignore[call-overload]

    def _hot(self, statement: ClauseElement, values: Mapping[str, Any]) -> Any | None:
        """PostgreSQL only: the first row of one statement, run in autocommit on the pooled
        psycopg connection itself, server-side prepared; ``None`` when there is none.

        For the few statements every token request runs (reading a token with its session,
        redeeming a code, a rotation, a new grant's token): the same SQL the engine would send
        (compiled once, from the same expression), the same values (:func:`bind_value`, as
        :class:`~gateway.store.schema.UtcDateTime` binds them), the same rows (datetimes as
        UTC), timed into the same metric, and one round trip as before. What it skips is
        SQLAlchemy's per-execution work (execution context, events, result wrapping): about
        0.17 ms of CPU per statement, measured against 0.06 ms for the statement itself.

        A single statement is atomic by itself, so autocommit changes nothing a caller can see
        (the reads already ran so, see :meth:`_read`). The connection comes from, and goes back
        to, the engine's pool (checkout pings and all); one that breaks is invalidated, and the
        caller gets :class:`StoreUnavailableError` as from any other statement.
        :class:`psycopg.IntegrityError` is left to the caller.
        """
        hot = self._compiled.get(statement)
        if hot is None:
            with self._compiling:
                hot = self._compiled.setdefault(
                    statement, HotStatement.compile(statement, self._engine)
                )
        params = hot.constants | {name: bind_value(value) for name, value in values.items()}
        try:
            fairy = self._engine.raw_connection()
        except (OperationalError, InterfaceError) as error:
            raise StoreUnavailableError(f"database unavailable: {error.orig}") from error
        try:
            driver: psycopg.Connection[Any] = fairy.driver_connection  # type: ignore[assignment]
            driver.autocommit = True
            started = time.perf_counter()
            cursor = driver.cursor(row_factory=_hot_row)
            try:
                cursor.execute(hot.sql, params, prepare=True)
                row = cursor.fetchone()
            finally:
                cursor.close()
                driver.autocommit = False
            hot.observe(time.perf_counter() - started)
            return row
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            fairy.invalidate(error)
            raise StoreUnavailableError(f"database unavailable: {error}") from error
        finally:
            fairy.close()

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


class HotStatement(NamedTuple):
    """A statement compiled once for psycopg: its SQL, the values it carries itself (literals),
    and how its executions are timed (``STORE_SECONDS``, as ``time_statements`` times them)."""

    sql: str
    constants: dict[str, Any]
    observe: Callable[[float], None]

    @classmethod
    def compile(cls, statement: ClauseElement, engine: Engine) -> HotStatement:
        # Imported here, as in gateway.store.engine: the CLI names the metrics directory
        # before anything imports prometheus-client.
        from gateway.metrics import STORE_SECONDS, statement_kind

        compiled = statement.compile(dialect=engine.dialect)
        if not isinstance(compiled, SQLCompiler):  # pragma: no cover - DML and SELECT only
            raise TypeError(f"not a SQL statement: {statement!r}")
        constants = {
            name: bind_value(bind.value)
            for name, bind in compiled.binds.items()
            if not bind.required and bind.callable is None
        }
        sql = compiled.string
        return cls(sql, constants, STORE_SECONDS.labels(statement_kind(sql)).observe)


def bind_value(value: Any) -> Any:
    """A value as the store binds it: datetimes aware and in UTC (``UtcDateTime``)."""
    if isinstance(value, datetime.datetime):
        if value.utcoffset() is None:
            raise ValueError("naive datetime: the store takes timezone-aware UTC times only")
        return value.astimezone(datetime.UTC)
    return value


class HotRow(tuple[Any, ...]):
    """A row of :meth:`SqlBase._hot`, read by column name like SQLAlchemy's ``Row``."""

    __slots__ = ()
    _names: dict[str, int]

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._names[name]]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> dict[str, Any]:
        return {name: self[index] for name, index in self._names.items()}


@functools.lru_cache(maxsize=256)
def _hot_row_class(names: tuple[str, ...]) -> type[HotRow]:
    return type(
        "HotRow", (HotRow,), {"__slots__": (), "_names": {n: i for i, n in enumerate(names)}}
    )


def _hot_row(cursor: psycopg.Cursor[Any]) -> Callable[[Any], HotRow]:
    """psycopg's row factory for :meth:`SqlBase._hot`: datetimes in UTC, as ``UtcDateTime``
    reads them (psycopg gives them in the session's time zone)."""
    names = tuple(column.name for column in cursor.description or ())
    row_class = _hot_row_class(names)

    def make(values: Any) -> HotRow:
        return row_class(
            value.astimezone(datetime.UTC) if isinstance(value, datetime.datetime) else value
            for value in values
        )

    return make


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
    "HotRow",
    "HotStatement",
    "Insert",
    "SqlBase",
    "bind_value",
    "insert_into",
    "json_object",
    "require_aware",
    "require_text",
    "unavailable",
]
