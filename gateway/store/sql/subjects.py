"""National subjects on SQL: linking is race-safe with ``INSERT ... ON CONFLICT DO NOTHING``.

Concurrent first logins of one person insert and read back, so they agree on one subject.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.engine import Connection

from gateway.store.contract import Subject, SubjectLink, SubjectLinkConflictError
from gateway.store.schema import subject_links, subjects
from gateway.store.sql.base import SqlBase, require_aware, require_text


class SqlSubjects(SqlBase):
    """:class:`~gateway.store.contract.SubjectStore` on SQL."""

    def link_subject(
        self, identity_key: str, region: str, upstream_sub: str, now: datetime.datetime
    ) -> Subject:
        require_text(identity_key=identity_key, region=region, upstream_sub=upstream_sub)
        require_aware(now=now)
        with self._write() as conn:
            linked = conn.execute(
                select(subjects)
                .join(subject_links, subject_links.c.subject_id == subjects.c.id)
                .where(
                    subject_links.c.region == region,
                    subject_links.c.upstream_sub == upstream_sub,
                )
            ).first()
            if linked is not None:
                if linked.identity_key != identity_key:
                    raise SubjectLinkConflictError(region)
                return _subject(linked)
            # Two first logins of one person race here: the unique identity_key lets one insert
            # win, and both read back the same row.
            conn.execute(
                self._insert(subjects)
                .values(id=uuid.uuid4().hex, identity_key=identity_key, created_at=now)
                .on_conflict_do_nothing(index_elements=[subjects.c.identity_key])
            )
            subject = conn.execute(
                select(subjects).where(subjects.c.identity_key == identity_key)
            ).one()
            conn.execute(
                self._insert(subject_links)
                .values(
                    region=region, upstream_sub=upstream_sub, subject_id=subject.id, created_at=now
                )
                .on_conflict_do_nothing(
                    index_elements=[subject_links.c.region, subject_links.c.upstream_sub]
                )
            )
            linked_to = conn.execute(
                select(subject_links.c.subject_id).where(
                    subject_links.c.region == region,
                    subject_links.c.upstream_sub == upstream_sub,
                )
            ).scalar_one()
            if linked_to != subject.id:
                # Raised inside the transaction: a subject created just now is rolled back.
                raise SubjectLinkConflictError(region)
            return _subject(subject)

    def get_subject(self, subject_id: str) -> Subject | None:
        with self._read() as conn:
            row = conn.execute(select(subjects).where(subjects.c.id == subject_id)).first()
        return None if row is None else _subject(row)

    def find_subject(self, region: str, upstream_sub: str) -> Subject | None:
        with self._read() as conn:
            row = conn.execute(
                select(subjects)
                .join(subject_links, subject_links.c.subject_id == subjects.c.id)
                .where(
                    subject_links.c.region == region,
                    subject_links.c.upstream_sub == upstream_sub,
                )
            ).first()
        return None if row is None else _subject(row)

    def list_subject_links(self, subject_id: str) -> list[SubjectLink]:
        with self._read() as conn:
            rows = conn.execute(
                select(subject_links)
                .where(subject_links.c.subject_id == subject_id)
                .order_by(subject_links.c.region, subject_links.c.upstream_sub)
            ).all()
        return [
            SubjectLink(row.region, row.upstream_sub, row.subject_id, row.created_at)
            for row in rows
        ]


def subject_exists(conn: Connection, subject_id: str) -> bool:
    """Whether a national subject has this id (records that belong to one check it first)."""
    return (
        conn.execute(select(subjects.c.id).where(subjects.c.id == subject_id)).first() is not None
    )


def _subject(row: Row[Any]) -> Subject:
    return Subject(row.id, row.identity_key, row.created_at)


__all__ = ["SqlSubjects", "subject_exists"]
