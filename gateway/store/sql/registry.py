"""Registry documents on SQL: one table per kind, a revision per row for optimistic concurrency."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, Table, and_, delete, select, update

from gateway.store.contract import RegistryDocument, RegistryKind, RevisionConflictError
from gateway.store.contract.registry import RegistryPage
from gateway.store.schema import portals, regions
from gateway.store.sql.base import SqlBase, json_object, require_aware, require_text

_REGISTRY_TABLES: dict[RegistryKind, Table] = {
    RegistryKind.REGION: regions,
    RegistryKind.PORTAL: portals,
}


class SqlRegistry(SqlBase):
    """:class:`~gateway.store.contract.RegistryStore` on SQL."""

    def put_document(
        self,
        kind: RegistryKind,
        key: str,
        document: Mapping[str, Any],
        now: datetime.datetime,
        *,
        expected_revision: int | None = None,
    ) -> RegistryDocument:
        table = _REGISTRY_TABLES[RegistryKind(kind)]
        require_text(key=key)
        require_aware(now=now)
        body = json_object(document, "document")
        if expected_revision is not None and expected_revision < 0:
            raise ValueError("expected_revision must be None, 0 (create) or a revision")
        with self._write() as conn:
            row: Row[Any] | None
            if expected_revision is None:
                upsert = self._insert(table).values(
                    key=key, document=body, revision=1, created_at=now, updated_at=now
                )
                row = conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=[table.c.key],
                        set_={
                            "document": upsert.excluded.document,
                            "revision": table.c.revision + 1,
                            "updated_at": upsert.excluded.updated_at,
                        },
                    ).returning(*table.c)
                ).one()
            elif expected_revision == 0:
                row = conn.execute(
                    self._insert(table)
                    .values(key=key, document=body, revision=1, created_at=now, updated_at=now)
                    .on_conflict_do_nothing(index_elements=[table.c.key])
                    .returning(*table.c)
                ).first()
            else:
                row = conn.execute(
                    update(table)
                    .where(table.c.key == key, table.c.revision == expected_revision)
                    .values(document=body, revision=expected_revision + 1, updated_at=now)
                    .returning(*table.c)
                ).first()
            if row is None:
                actual = conn.execute(
                    select(table.c.revision).where(table.c.key == key)
                ).scalar_one_or_none()
                raise RevisionConflictError(RegistryKind(kind), key, expected_revision or 0, actual)
            return _document(RegistryKind(kind), row)

    def get_document(self, kind: RegistryKind, key: str) -> RegistryDocument | None:
        table = _REGISTRY_TABLES[RegistryKind(kind)]
        with self._read() as conn:
            row = conn.execute(select(table).where(table.c.key == key)).first()
        return None if row is None else _document(RegistryKind(kind), row)

    def list_documents(self, kind: RegistryKind) -> list[RegistryDocument]:
        table = _REGISTRY_TABLES[RegistryKind(kind)]
        with self._read() as conn:
            rows = conn.execute(select(table).order_by(table.c.key)).all()
        return [_document(RegistryKind(kind), row) for row in rows]

    def list_page(
        self,
        kind: RegistryKind,
        *,
        after: str | None = None,
        limit: int,
        principal: str | None = None,
    ) -> RegistryPage:
        table = _REGISTRY_TABLES[RegistryKind(kind)]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError("limit must be a positive integer")
        if after is not None:
            require_text(after=after)
        query = select(table).order_by(table.c.key).limit(limit + 1)
        if after is not None:
            query = query.where(table.c.key > after)
        if principal is not None:
            require_text(principal=principal)
            # ->> on PostgreSQL (jsonb), json_extract on SQLite: the filter runs in the query.
            owner = table.c.document[("managed_by", "principal")].as_string()
            query = query.where(owner == principal)
        with self._read() as conn:
            rows = conn.execute(query).all()
        documents = [_document(RegistryKind(kind), row) for row in rows[:limit]]
        more = len(rows) > limit
        return RegistryPage(documents, documents[-1].key if more else None)

    def delete_document(
        self, kind: RegistryKind, key: str, *, expected_revision: int | None = None
    ) -> bool:
        table = _REGISTRY_TABLES[RegistryKind(kind)]
        if expected_revision is not None and expected_revision < 1:
            raise ValueError("expected_revision must be None or a revision")
        with self._write() as conn:
            condition = table.c.key == key
            if expected_revision is not None:
                condition = and_(condition, table.c.revision == expected_revision)
            if conn.execute(delete(table).where(condition)).rowcount > 0:
                return True
            if expected_revision is None:
                return False
            actual = conn.execute(
                select(table.c.revision).where(table.c.key == key)
            ).scalar_one_or_none()
            raise RevisionConflictError(RegistryKind(kind), key, expected_revision, actual)


def _document(kind: RegistryKind, row: Row[Any]) -> RegistryDocument:
    return RegistryDocument(
        kind, row.key, row.document, row.revision, row.created_at, row.updated_at
    )


__all__ = ["SqlRegistry"]
