"""Explicit registrations (OpenID Federation 1.0 §12.2) on SQL: one row per client id, unique
entity id (revision 0015)."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import Row, delete, select

from gateway.store.contract.federation_registrations import FederationRegistration
from gateway.store.schema import federation_registrations as table
from gateway.store.sql.base import SqlBase, insert_into, json_object, require_aware, require_text


class SqlFederationRegistrations(SqlBase):
    """:class:`~gateway.store.contract.federation_registrations.FederationRegistrationStore` on
    SQL. Replacing is a delete and an insert in one write transaction; the unique index on
    ``entity_id`` makes a concurrent second registration of the same entity fail rather than
    leave two."""

    def put_federation_registration(self, registration: FederationRegistration) -> None:
        require_text(client_id=registration.client_id, entity_id=registration.entity_id)
        require_aware(created_at=registration.created_at, expires_at=registration.expires_at)
        values = {
            "client_id": registration.client_id,
            "entity_id": registration.entity_id,
            "portal": json_object(registration.portal, "portal"),
            "created_at": registration.created_at,
            "expires_at": registration.expires_at,
        }
        with self._write() as conn:
            conn.execute(delete(table).where(table.c.entity_id == registration.entity_id))
            conn.execute(insert_into(table), values)

    def federation_registration(
        self, client_id: str, now: datetime.datetime
    ) -> FederationRegistration | None:
        require_aware(now=now)
        with self._read() as conn:
            row = conn.execute(
                select(table).where(table.c.client_id == client_id, table.c.expires_at > now)
            ).first()
        return None if row is None else _registration(row)

    def delete_federation_registrations(self, entity_id: str) -> int:
        with self._write() as conn:
            return int(conn.execute(delete(table).where(table.c.entity_id == entity_id)).rowcount)


def _registration(row: Row[Any]) -> FederationRegistration:
    return FederationRegistration(
        client_id=row.client_id,
        entity_id=row.entity_id,
        portal=dict(row.portal),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


__all__ = ["SqlFederationRegistrations"]
