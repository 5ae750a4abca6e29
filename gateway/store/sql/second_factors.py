"""The second factor on SQL: TOTP steps and recovery codes are spent by conditional updates.

A TOTP time step is accepted by one ``UPDATE ... WHERE last_accepted_step < :step`` (the row
lock makes a concurrent updater re-check the condition and match nothing), and a recovery code
is spent by ``UPDATE ... WHERE used_at IS NULL``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, delete, or_, select, update
from sqlalchemy.engine import Connection

from gateway.store.contract import (
    DuplicateRecordError,
    RecordNotFoundError,
    RecoveryCode,
    SubjectNotFoundError,
    TotpCredential,
)
from gateway.store.schema import recovery_codes, totp_credentials
from gateway.store.sql.base import SqlBase, require_aware, require_text
from gateway.store.sql.subjects import subject_exists


class SqlSecondFactors(SqlBase):
    """:class:`~gateway.store.contract.SecondFactorStore` on SQL."""

    def save_totp_credential(self, credential: TotpCredential) -> None:
        require_text(subject=credential.subject)
        if credential.confirmed_at is not None:
            raise ValueError("a new TOTP credential must be pending (confirmed_at None)")
        if not credential.secret:
            raise ValueError("secret must not be empty")
        table = totp_credentials
        with self._write() as conn:
            if not subject_exists(conn, credential.subject):
                raise SubjectNotFoundError("the credential's subject is unknown")
            upsert = self._insert(table).values(
                subject=credential.subject,
                secret=credential.secret,
                created_at=credential.created_at,
                confirmed_at=None,
                last_accepted_step=None,
                last_used_at=None,
            )
            # Replace a pending enrolment only: a confirmed factor is never overwritten here.
            stored = conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=[table.c.subject],
                    set_={
                        "secret": upsert.excluded.secret,
                        "created_at": upsert.excluded.created_at,
                        "last_accepted_step": None,
                        "last_used_at": None,
                    },
                    where=table.c.confirmed_at.is_(None),
                ).returning(table.c.subject)
            ).first()
            if stored is None:
                raise DuplicateRecordError("the subject already has a confirmed TOTP credential")

    def get_totp_credential(self, subject: str) -> TotpCredential | None:
        with self._read() as conn:
            row = conn.execute(
                select(totp_credentials).where(totp_credentials.c.subject == subject)
            ).first()
        return None if row is None else _totp_credential(row)

    def confirm_totp_credential(
        self,
        subject: str,
        secret: bytes,
        step: int,
        recovery_codes: Sequence[RecoveryCode],
        now: datetime.datetime,
    ) -> bool:
        require_aware(now=now)
        _require_step(step)
        _require_codes(subject, recovery_codes)
        table = totp_credentials
        with self._write() as conn:
            confirmed = conn.execute(
                update(table)
                .where(
                    table.c.subject == subject,
                    table.c.confirmed_at.is_(None),
                    table.c.secret == secret,
                )
                .values(confirmed_at=now, last_accepted_step=step, last_used_at=now)
                .returning(table.c.subject)
            ).first()
            if confirmed is None:
                return False
            self._write_recovery_codes(conn, subject, recovery_codes)
            return True

    def delete_totp_credential(self, subject: str) -> bool:
        with self._write() as conn:
            # Recovery codes go with it (ON DELETE CASCADE).
            result = conn.execute(
                delete(totp_credentials).where(totp_credentials.c.subject == subject)
            )
            return result.rowcount > 0

    def accept_totp_step(self, subject: str, step: int, now: datetime.datetime) -> bool:
        require_aware(now=now)
        _require_step(step)
        table = totp_credentials
        with self._write() as conn:
            accepted = conn.execute(
                update(table)
                .where(
                    table.c.subject == subject,
                    table.c.confirmed_at.is_not(None),
                    or_(table.c.last_accepted_step.is_(None), table.c.last_accepted_step < step),
                )
                .values(last_accepted_step=step, last_used_at=now)
                .returning(table.c.subject)
            ).first()
            return accepted is not None

    def list_recovery_codes(self, subject: str) -> list[RecoveryCode]:
        with self._read() as conn:
            rows = conn.execute(
                select(recovery_codes)
                .where(recovery_codes.c.subject == subject)
                .order_by(recovery_codes.c.code_id)
            ).all()
        return [_recovery_code(row) for row in rows]

    def replace_recovery_codes(self, subject: str, recovery_codes: Sequence[RecoveryCode]) -> None:
        _require_codes(subject, recovery_codes)
        with self._write() as conn:
            credential = conn.execute(
                select(totp_credentials.c.subject)
                .where(
                    totp_credentials.c.subject == subject,
                    totp_credentials.c.confirmed_at.is_not(None),
                )
                .with_for_update()
            ).first()
            if credential is None:
                raise RecordNotFoundError("the subject has no confirmed TOTP credential")
            self._write_recovery_codes(conn, subject, recovery_codes)

    def use_recovery_code(self, subject: str, code_id: int, now: datetime.datetime) -> bool:
        require_aware(now=now)
        table = recovery_codes
        with self._write() as conn:
            used = conn.execute(
                update(table)
                .where(
                    table.c.subject == subject,
                    table.c.code_id == code_id,
                    table.c.used_at.is_(None),
                )
                .values(used_at=now)
                .returning(table.c.code_id)
            ).first()
            return used is not None

    @staticmethod
    def _write_recovery_codes(
        conn: Connection, subject: str, codes: Sequence[RecoveryCode]
    ) -> None:
        conn.execute(delete(recovery_codes).where(recovery_codes.c.subject == subject))
        if codes:
            conn.execute(
                recovery_codes.insert(),
                [
                    {
                        "subject": subject,
                        "code_id": code.code_id,
                        "code_hash": code.code_hash,
                        "created_at": code.created_at,
                        "used_at": code.used_at,
                    }
                    for code in codes
                ],
            )


def _require_step(step: int) -> None:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError("step must be a non-negative integer (RFC 6238 time step)")


def _require_codes(subject: str, codes: Sequence[RecoveryCode]) -> None:
    require_text(subject=subject)
    ids = [code.code_id for code in codes]
    if len(set(ids)) != len(ids):
        raise ValueError("recovery code ids must be unique")
    for code in codes:
        if code.subject != subject:
            raise ValueError("every recovery code must belong to the subject")
        require_text(code_hash=code.code_hash)


def _totp_credential(row: Row[Any]) -> TotpCredential:
    return TotpCredential(
        subject=row.subject,
        secret=bytes(row.secret),
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
        last_accepted_step=row.last_accepted_step,
        last_used_at=row.last_used_at,
    )


def _recovery_code(row: Row[Any]) -> RecoveryCode:
    return RecoveryCode(row.subject, row.code_id, row.code_hash, row.created_at, row.used_at)


__all__ = ["SqlSecondFactors"]
