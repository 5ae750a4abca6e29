"""Alembic migrations of the store, shipped inside the package and run from code.

There is no ``alembic.ini``: :func:`upgrade` builds the Alembic configuration in memory and runs
the revisions in ``versions/`` on a connection it owns. On PostgreSQL it first takes a
transaction-scoped advisory lock, so several gateway replicas starting at once migrate one after
the other (the later ones find nothing to do). Both engines have transactional DDL, so a failed
revision leaves the schema as it was.

To write a new revision, describe the change in :mod:`gateway.store.schema`, then run
:func:`revision` against a database at the current head and review what it generated.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL, Connection

from gateway.store.engine import create_store_engine

LOCATION = Path(__file__).resolve().parent
# pg_advisory_xact_lock key: the bytes of "tongxing" as a signed 64-bit integer.
_ADVISORY_LOCK = int.from_bytes(b"tongxing", "big", signed=True)


def config(connection: Connection | None = None) -> Config:
    """The Alembic configuration, in memory; ``env.py`` runs on ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(LOCATION))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision shipped with this code."""
    current = ScriptDirectory.from_config(config()).get_current_head()
    if current is None:  # pragma: no cover - there is always an initial revision
        raise RuntimeError("no migrations found in " + str(LOCATION))
    return current


def current(target: Engine | str | URL) -> str | None:
    """The revision a database is at, or ``None`` if it was never migrated."""
    engine, owned = _engine(target)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def upgrade(target: Engine | str | URL, revision: str = "head") -> None:
    """Migrate a database to ``revision`` (default: the newest) in one transaction."""
    engine, owned = _engine(target)
    try:
        with engine.begin() as connection:
            _lock(connection)
            command.upgrade(config(connection), revision)
    finally:
        if owned:
            engine.dispose()


def downgrade(target: Engine | str | URL, revision: str) -> None:
    """Migrate a database back to ``revision`` (``"base"`` drops every table)."""
    engine, owned = _engine(target)
    try:
        with engine.begin() as connection:
            _lock(connection)
            command.downgrade(config(connection), revision)
    finally:
        if owned:
            engine.dispose()


def revision(target: Engine | str | URL, message: str) -> None:
    """Autogenerate a new revision file from the difference between ``target`` and the schema."""
    engine, owned = _engine(target)
    try:
        with engine.begin() as connection:
            command.revision(config(connection), message=message, autogenerate=True)
    finally:
        if owned:
            engine.dispose()


def _engine(target: Engine | str | URL) -> tuple[Engine, bool]:
    if isinstance(target, Engine):
        return target, False
    return create_store_engine(target, pool_size=1, max_overflow=0), True


def _lock(connection: Connection) -> None:
    # SQLite needs no lock: BEGIN IMMEDIATE already made this the only writer.
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
