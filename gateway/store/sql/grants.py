"""Grant rows on SQL: the rules every aggregate that issues under a grant or revokes one shares.

Revoking a grant is one ``UPDATE ... RETURNING`` of the grants still live, then their live
refresh tokens become ``revoked``. Codes and access tokens need no update: every read of one
checks its grant.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, bindparam, exists, select, update
from sqlalchemy.engine import Connection

from gateway.store.contract import Grant, GrantNotFoundError, RefreshTokenStatus
from gateway.store.schema import grants, refresh_tokens

GRANT = select(grants).where(grants.c.grant_id == bindparam("grant_id"))
LOCK_GRANT = GRANT.with_for_update()  # renders without FOR UPDATE on SQLite (BEGIN IMMEDIATE)


def grant_is_live(grant_id: ColumnElement[str]) -> ColumnElement[bool]:
    return exists().where(and_(grants.c.grant_id == grant_id, grants.c.revoked_at.is_(None)))


def issuable_grant(
    conn: Connection,
    grant_id: str,
    client_id: str,
    *,
    subject: str | None,
    lock: bool = False,
) -> None:
    """Refuse to issue under an unknown or revoked grant, or for another client/subject."""
    row = conn.execute(LOCK_GRANT if lock else GRANT, {"grant_id": grant_id}).first()
    if row is None or row.revoked_at is not None:
        raise GrantNotFoundError("the grant is unknown or revoked")
    if row.client_id != client_id:
        raise ValueError("the record's client_id differs from its grant's")
    if subject is not None and row.subject != subject:
        raise ValueError("the record's subject differs from its grant's")


def revoke_grants(
    conn: Connection, which: ColumnElement[bool], now: datetime.datetime
) -> list[str]:
    """Revoke matching live grants and kill their live refresh tokens; return their ids.

    Codes and access tokens need no update: every read checks the grant. Rotated refresh
    tokens keep their status so that presenting one later is still reported as reuse.
    """
    revoked = list(
        conn.execute(
            update(grants)
            .where(which, grants.c.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(grants.c.grant_id)
        ).scalars()
    )
    if revoked:
        conn.execute(
            update(refresh_tokens)
            .where(
                refresh_tokens.c.grant_id.in_(revoked),
                refresh_tokens.c.status == RefreshTokenStatus.LIVE.value,
            )
            .values(status=RefreshTokenStatus.REVOKED.value)
        )
    return sorted(revoked)


def grant_from_row(row: Row[Any]) -> Grant:
    return Grant(
        row.grant_id,
        row.client_id,
        row.subject,
        row.session_hash,
        row.created_at,
        row.revoked_at,
        row.claims_request,
    )


__all__ = [
    "GRANT",
    "LOCK_GRANT",
    "grant_from_row",
    "grant_is_live",
    "issuable_grant",
    "revoke_grants",
]
