"""Used client assertions on SQL: one upsert that takes over a key only once it has expired."""

from __future__ import annotations

import datetime

from gateway.store.contract import token_hash
from gateway.store.schema import used_assertions
from gateway.store.sql.base import SqlBase, require_aware, require_text


class SqlReplay(SqlBase):
    """:class:`~gateway.store.contract.ReplayStore` on SQL."""

    def use_assertion(
        self,
        client_id: str,
        jti: str,
        expires_at: datetime.datetime,
        now: datetime.datetime,
    ) -> bool:
        require_text(client_id=client_id, jti=jti)
        require_aware(expires_at=expires_at, now=now)
        # One statement: a new key is inserted; a known one is taken over only if its record
        # has expired (the WHERE of the upsert); a live one is left alone and returns no row.
        table = used_assertions
        insert = self._insert(table).values(
            assertion_hash=token_hash(f"{client_id}\0{jti}"), expires_at=expires_at
        )
        statement = insert.on_conflict_do_update(
            index_elements=[table.c.assertion_hash],
            set_={"expires_at": insert.excluded.expires_at},
            where=table.c.expires_at <= now,
        ).returning(table.c.assertion_hash)
        with self._write() as conn:
            return conn.execute(statement).first() is not None


__all__ = ["SqlReplay"]
