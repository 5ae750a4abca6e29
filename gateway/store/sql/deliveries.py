"""Failed back-channel logout deliveries on SQL: a claim is one conditional ``UPDATE``.

:meth:`SqlDeliveries.claim_logout_deliveries` moves ``next_attempt_at`` of the due rows it picks
past the lease in one statement, whose ``WHERE`` repeats "still due". On PostgreSQL the rows are
picked ``FOR UPDATE SKIP LOCKED``: a concurrent claimant skips what another is claiming, and one
that waited on a row re-checks the condition on its new version (READ COMMITTED), which then no
longer holds. On SQLite every write transaction holds the database lock from ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import delete, select, update

from gateway.store.contract.deliveries import LogoutDelivery
from gateway.store.schema import logout_deliveries
from gateway.store.sql.base import SqlBase, require_aware, require_text

MAX_CLAIM = 100
"""The most deliveries one claim takes."""

_table = logout_deliveries


class SqlDeliveries(SqlBase):
    """:class:`~gateway.store.contract.LogoutDeliveryStore` on SQL."""

    def record_logout_delivery(self, delivery: LogoutDelivery) -> None:
        require_text(
            delivery_id=delivery.delivery_id,
            client_id=delivery.client_id,
            subject=delivery.subject,
            sid=delivery.sid,
        )
        if delivery.attempts < 0:
            raise ValueError("attempts must not be negative")
        with self._write() as conn:
            self._insert_new(
                conn,
                _table,
                "logout delivery",
                delivery_id=delivery.delivery_id,
                client_id=delivery.client_id,
                subject=delivery.subject,
                sid=delivery.sid,
                attempts=delivery.attempts,
                last_status=_status(delivery.last_status),
                created_at=delivery.created_at,
                next_attempt_at=delivery.next_attempt_at,
                given_up_at=delivery.given_up_at,
                expires_at=delivery.expires_at,
            )

    def claim_logout_deliveries(
        self, now: datetime.datetime, lease: datetime.timedelta, limit: int
    ) -> list[LogoutDelivery]:
        require_aware(now=now)
        if lease <= datetime.timedelta(0):
            raise ValueError("the lease must be positive")
        if not 0 < limit <= MAX_CLAIM:
            raise ValueError(f"limit must be between 1 and {MAX_CLAIM}")
        due = (_table.c.next_attempt_at <= now, _table.c.given_up_at.is_(None))
        picked = (
            select(_table.c.delivery_id)
            .where(*due)
            .order_by(_table.c.next_attempt_at, _table.c.delivery_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._write() as conn:
            rows = conn.execute(select(_table).where(_table.c.delivery_id.in_(picked))).all()
            claimed = conn.execute(
                update(_table)
                .where(_table.c.delivery_id.in_([row.delivery_id for row in rows]), *due)
                .values(next_attempt_at=now + lease)
                .returning(_table.c.delivery_id)
            ).scalars()
            mine = set(claimed)
        found = [_delivery(row._mapping) for row in rows if row.delivery_id in mine]
        return sorted(found, key=lambda d: (d.next_attempt_at, d.delivery_id))

    def logout_delivered(self, delivery_id: str) -> bool:
        with self._write() as conn:
            gone = conn.execute(delete(_table).where(_table.c.delivery_id == delivery_id))
            return bool(gone.rowcount)

    def logout_delivery_failed(
        self,
        delivery_id: str,
        *,
        attempts: int,
        status: str,
        next_attempt_at: datetime.datetime | None,
        now: datetime.datetime,
        expires_at: datetime.datetime,
    ) -> bool:
        require_aware(next_attempt_at=next_attempt_at, now=now, expires_at=expires_at)
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status": _status(status),
            "expires_at": expires_at,
        }
        if next_attempt_at is None:
            values["given_up_at"] = now
        else:
            values["next_attempt_at"] = next_attempt_at
        with self._write() as conn:
            changed = conn.execute(
                update(_table).where(_table.c.delivery_id == delivery_id).values(**values)
            )
            return bool(changed.rowcount)

    def list_logout_deliveries(self, limit: int = 100) -> list[LogoutDelivery]:
        if not 0 < limit <= MAX_CLAIM * 10:
            raise ValueError(f"limit must be between 1 and {MAX_CLAIM * 10}")
        query = select(_table).order_by(_table.c.created_at, _table.c.delivery_id).limit(limit)
        with self._read() as conn:
            return [_delivery(row._mapping) for row in conn.execute(query).all()]


def _status(status: str | None) -> str | None:
    """What the portal answered, cut to the column (it is a short label the gateway makes)."""
    return None if status is None else status[:255]


def _delivery(row: Any) -> LogoutDelivery:
    return LogoutDelivery(
        delivery_id=row["delivery_id"],
        client_id=row["client_id"],
        subject=row["subject"],
        sid=row["sid"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        expires_at=row["expires_at"],
        last_status=row["last_status"],
        given_up_at=row["given_up_at"],
    )


__all__ = ["SqlDeliveries"]
