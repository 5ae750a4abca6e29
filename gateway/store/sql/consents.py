"""Consents on SQL: one row per person and portal, widened by an upsert, withdrawn by a date."""

from __future__ import annotations

import datetime

from sqlalchemy import select, update

from gateway.store.contract import Consent, SubjectNotFoundError
from gateway.store.schema import consents
from gateway.store.sql.base import SqlBase, require_aware, require_text
from gateway.store.sql.subjects import subject_exists


class SqlConsents(SqlBase):
    """:class:`~gateway.store.contract.ConsentStore` on SQL."""

    def save_consent(
        self, subject: str, client_id: str, claims: frozenset[str], now: datetime.datetime
    ) -> Consent:
        require_text(subject=subject, client_id=client_id)
        require_aware(now=now)
        with self._write() as conn:
            if not subject_exists(conn, subject):
                raise SubjectNotFoundError("the consent's subject is unknown")
            row = conn.execute(
                select(consents.c.claims, consents.c.revoked_at).where(
                    consents.c.subject == subject, consents.c.client_id == client_id
                )
            ).first()
            kept = set(row.claims) if row is not None and row.revoked_at is None else set()
            merged = sorted(kept | set(claims))
            upsert = self._insert(consents).values(
                subject=subject,
                client_id=client_id,
                claims=merged,
                granted_at=now,
                revoked_at=None,
            )
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[consents.c.subject, consents.c.client_id],
                    set_={"claims": merged, "granted_at": now, "revoked_at": None},
                )
            )
        return Consent(subject, client_id, frozenset(merged), now)

    def get_consent(self, subject: str, client_id: str) -> Consent | None:
        with self._read() as conn:
            row = conn.execute(
                select(consents).where(
                    consents.c.subject == subject,
                    consents.c.client_id == client_id,
                    consents.c.revoked_at.is_(None),
                )
            ).first()
        if row is None:
            return None
        return Consent(row.subject, row.client_id, frozenset(row.claims), row.granted_at)

    def list_consents(self, subject: str) -> list[Consent]:
        with self._read() as conn:
            rows = conn.execute(
                select(consents)
                .where(consents.c.subject == subject, consents.c.revoked_at.is_(None))
                .order_by(consents.c.client_id)
            ).all()
        return [Consent(r.subject, r.client_id, frozenset(r.claims), r.granted_at) for r in rows]

    def revoke_consent(self, subject: str, client_id: str, now: datetime.datetime) -> bool:
        require_aware(now=now)
        with self._write() as conn:
            done = conn.execute(
                update(consents)
                .where(
                    consents.c.subject == subject,
                    consents.c.client_id == client_id,
                    consents.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
        return bool(done.rowcount)


__all__ = ["SqlConsents"]
