"""Verified claims on SQL (:mod:`gateway.store.contract.verified_claims`).

Attaching verified claims writes the row and raises the session in one transaction: a session
never says ``loa3`` without the verified claims that made it so.
"""

from __future__ import annotations

import datetime

from sqlalchemy import delete, select, update

from gateway.store.contract import SessionNotFoundError, SsoSession
from gateway.store.contract.verified_claims import MAX_SEALED_BYTES, VerifiedClaimsRecord
from gateway.store.schema import sso_sessions, verified_claims
from gateway.store.sql.base import SqlBase, require_aware, require_text


class SqlVerifiedClaims(SqlBase):
    """:class:`~gateway.store.contract.verified_claims.VerifiedClaimsStore` on SQL."""

    def attach_verified_claims(
        self, record: VerifiedClaimsRecord, acr: str, amr: tuple[str, ...], now: datetime.datetime
    ) -> SsoSession:
        require_text(
            session_hash=record.session_hash,
            subject=record.subject,
            provider=record.provider,
            sealed=record.sealed,
            acr=acr,
        )
        require_aware(now=now)
        if len(record.sealed.encode("utf-8")) > MAX_SEALED_BYTES:
            raise ValueError(f"sealed verified claims are larger than {MAX_SEALED_BYTES} bytes")
        with self._write() as conn:
            # FOR UPDATE: the session row is written below; a shared lock upgraded later would
            # deadlock two concurrent proofings of one session (PostgreSQL).
            row = conn.execute(
                select(sso_sessions)
                .where(
                    sso_sessions.c.session_hash == record.session_hash,
                    sso_sessions.c.ended_at.is_(None),
                    sso_sessions.c.expires_at > now,
                )
                .with_for_update()
            ).first()
            if row is None:
                raise SessionNotFoundError("the SSO session is unknown, ended or expired")
            if row.subject != record.subject:
                raise ValueError("the verified claims name another subject than the session's")
            conn.execute(
                delete(verified_claims).where(verified_claims.c.session_hash == record.session_hash)
            )
            conn.execute(
                verified_claims.insert().values(
                    session_hash=record.session_hash,
                    subject=record.subject,
                    provider=record.provider,
                    sealed=record.sealed,
                    verified_at=record.verified_at,
                )
            )
            conn.execute(
                update(sso_sessions)
                .where(sso_sessions.c.session_hash == record.session_hash)
                .values(acr=acr, amr=list(amr))
            )
        session = self.get_session(record.session_hash, now)  # type: ignore[attr-defined]
        if not isinstance(session, SsoSession):  # ended between the two statements
            raise SessionNotFoundError("the SSO session is unknown, ended or expired")
        return session

    def get_verified_claims(self, session_hash: str) -> VerifiedClaimsRecord | None:
        with self._read() as conn:
            row = conn.execute(
                select(verified_claims).where(verified_claims.c.session_hash == session_hash)
            ).first()
        if row is None:
            return None
        return VerifiedClaimsRecord(
            session_hash=row.session_hash,
            subject=row.subject,
            provider=row.provider,
            sealed=row.sealed,
            verified_at=row.verified_at,
        )


__all__ = ["SqlVerifiedClaims"]
