"""Alembic environment: runs on the connection that :mod:`gateway.store.migrations` passes in.

Alembic executes this file; it is not imported. Offline (``--sql``) mode is not offered: the
gateway migrates its own database at start-up.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from gateway.store.schema import metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or not isinstance(connection, Connection):
        raise RuntimeError("run migrations with gateway.store.migrations.upgrade(url)")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: later revisions rebuild tables in batches.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
