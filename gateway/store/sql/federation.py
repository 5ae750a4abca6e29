"""Federation subordinates on SQL: one row per (kind, key), unique entity id (revision 0013;
intermediates and their constraints, revision 0016);
the trust marks issued to them, one row per jti (revision 0014)."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.contract.federation import (
    EntityIdTakenError,
    FederationSubordinate,
    FederationTrustMark,
    SubordinateKind,
)
from gateway.store.schema import federation_subordinates as table
from gateway.store.schema import federation_trust_marks as marks
from gateway.store.sql.base import SqlBase, insert_into, json_object, require_aware, require_text


class SqlFederation(SqlBase):
    """:class:`~gateway.store.contract.federation.FederationStore` on SQL.

    The unique index on ``entity_id`` decides between two writers claiming one identifier: the
    second one's insert or update fails on it and nothing of it is written.
    """

    def put_federation_subordinate(
        self, subordinate: FederationSubordinate
    ) -> FederationSubordinate:
        require_text(kind=subordinate.kind, key=subordinate.key, entity_id=subordinate.entity_id)
        require_aware(created_at=subordinate.created_at, updated_at=subordinate.updated_at)
        values = {
            "entity_id": subordinate.entity_id,
            "jwks": json_object(subordinate.jwks, "jwks"),
            "metadata_policy": json_object(subordinate.metadata_policy, "metadata_policy"),
            "constraints": json_object(subordinate.constraints, "constraints"),
            "updated_at": subordinate.updated_at,
        }
        where = (table.c.kind == subordinate.kind, table.c.key == subordinate.key)
        try:
            with self._write() as conn:
                created = conn.execute(select(table.c.created_at).where(*where)).scalar()
                if created is None:
                    conn.execute(
                        insert_into(table),
                        {
                            "kind": subordinate.kind,
                            "key": subordinate.key,
                            "created_at": subordinate.created_at,
                            **values,
                        },
                    )
                else:
                    conn.execute(update(table).where(*where).values(**values))
                row = conn.execute(select(table).where(*where)).one()
        except IntegrityError:
            raise EntityIdTakenError(
                f"entity identifier {subordinate.entity_id} belongs to another subordinate"
            ) from None
        return _record(row)

    def federation_subordinate(
        self, kind: SubordinateKind, key: str
    ) -> FederationSubordinate | None:
        with self._read() as conn:
            row = conn.execute(
                select(table).where(table.c.kind == kind, table.c.key == key)
            ).first()
        return None if row is None else _record(row)

    def federation_subordinate_by_entity(self, entity_id: str) -> FederationSubordinate | None:
        with self._read() as conn:
            row = conn.execute(select(table).where(table.c.entity_id == entity_id)).first()
        return None if row is None else _record(row)

    def federation_subordinates(
        self, kind: SubordinateKind | None = None
    ) -> list[FederationSubordinate]:
        query = select(table).order_by(table.c.entity_id)
        if kind is not None:
            query = query.where(table.c.kind == kind)
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def delete_federation_subordinate(self, kind: SubordinateKind, key: str) -> bool:
        with self._write() as conn:
            result = conn.execute(delete(table).where(table.c.kind == kind, table.c.key == key))
            return bool(result.rowcount)

    # --- trust marks (§7) --------------------------------------------------------------------

    def add_federation_trust_mark(self, mark: FederationTrustMark) -> None:
        require_text(
            jti=mark.jti,
            trust_mark_type=mark.trust_mark_type,
            kind=mark.kind,
            key=mark.key,
            entity_id=mark.entity_id,
        )
        with self._write() as conn:
            self._insert_new(
                conn,
                marks,
                "trust mark",
                jti=mark.jti,
                trust_mark_type=mark.trust_mark_type,
                kind=mark.kind,
                key=mark.key,
                entity_id=mark.entity_id,
                issued_at=mark.issued_at,
                expires_at=mark.expires_at,
                revoked_at=mark.revoked_at,
            )

    def federation_trust_mark(self, jti: str) -> FederationTrustMark | None:
        with self._read() as conn:
            row = conn.execute(select(marks).where(marks.c.jti == jti)).first()
        return None if row is None else _mark(row)

    def federation_trust_marks(
        self,
        kind: SubordinateKind | None = None,
        key: str | None = None,
        trust_mark_type: str | None = None,
    ) -> list[FederationTrustMark]:
        query = select(marks).order_by(marks.c.issued_at.desc(), marks.c.jti)
        if kind is not None:
            query = query.where(marks.c.kind == kind)
        if key is not None:
            query = query.where(marks.c.key == key)
        if trust_mark_type is not None:
            query = query.where(marks.c.trust_mark_type == trust_mark_type)
        with self._read() as conn:
            return [_mark(row) for row in conn.execute(query)]

    def revoke_federation_trust_marks(
        self, kind: SubordinateKind, key: str, trust_mark_type: str, at: datetime.datetime
    ) -> int:
        require_aware(at=at)
        with self._write() as conn:
            result = conn.execute(
                update(marks)
                .where(
                    marks.c.kind == kind,
                    marks.c.key == key,
                    marks.c.trust_mark_type == trust_mark_type,
                    marks.c.revoked_at.is_(None),
                )
                .values(revoked_at=at)
            )
            return int(result.rowcount)


def _mark(row: Row[Any]) -> FederationTrustMark:
    return FederationTrustMark(
        jti=row.jti,
        trust_mark_type=row.trust_mark_type,
        kind=row.kind,
        key=row.key,
        entity_id=row.entity_id,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def _record(row: Row[Any]) -> FederationSubordinate:
    return FederationSubordinate(
        kind=row.kind,
        key=row.key,
        entity_id=row.entity_id,
        jwks=dict(row.jwks),
        metadata_policy=dict(row.metadata_policy),
        created_at=row.created_at,
        updated_at=row.updated_at,
        constraints=dict(row.constraints),
    )


__all__ = ["SqlFederation"]
