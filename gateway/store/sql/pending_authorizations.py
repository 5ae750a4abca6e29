"""Pending authorizations on SQL: moved by conditional ``UPDATE``, taken once by ``DELETE``.

* A move is one ``UPDATE ... WHERE id_hash = :id AND stage IN (:stages) AND expires_at > :now``:
  of two concurrent moves from the same stage, the second matches nothing once the first has
  committed (PostgreSQL re-checks the condition after the row lock; SQLite writes one at a time).
* The region's answer locks the row it finds by ``state`` hash (``SELECT ... FOR UPDATE``) and
  clears the round trip in the same transaction, so a second answer with that ``state`` finds
  nothing.
* The portal's answer is ``DELETE ... RETURNING``: one caller gets the row, and it is gone.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from typing import Any

from sqlalchemy import Row, delete, select, update

from gateway.store.contract import (
    AuthorizationRequest,
    PendingAuthorization,
    PendingAuthorizationNotFoundError,
    PendingStage,
    UpstreamLeg,
)
from gateway.store.contract.pending_authorizations import MAX_RECORD_BYTES, record_size
from gateway.store.schema import pending_authorizations
from gateway.store.sql.base import SqlBase, require_aware, require_text

_TABLE = pending_authorizations


class SqlPendingAuthorizations(SqlBase):
    """:class:`~gateway.store.contract.PendingAuthorizationStore` on SQL."""

    def save_pending_authorization(self, pending: PendingAuthorization) -> None:
        values = _columns(pending)
        with self._write() as conn:
            self._insert_new(conn, _TABLE, "pending authorization", **values)

    def get_pending_authorization(
        self, id_hash: str, now: datetime.datetime
    ) -> PendingAuthorization | None:
        require_aware(now=now)
        with self._read() as conn:
            row = conn.execute(
                select(_TABLE).where(_TABLE.c.id_hash == id_hash, _TABLE.c.expires_at > now)
            ).first()
        return None if row is None else _record(row)

    def update_pending_authorization(
        self,
        pending: PendingAuthorization,
        stages: Collection[PendingStage],
        now: datetime.datetime,
    ) -> None:
        require_aware(now=now)
        values = _columns(pending)
        del values["id_hash"]
        with self._write() as conn:
            done = conn.execute(
                update(_TABLE)
                .where(
                    _TABLE.c.id_hash == pending.id_hash,
                    _TABLE.c.stage.in_([PendingStage(s).value for s in stages]),
                    _TABLE.c.expires_at > now,
                )
                .values(**values)
            )
        if done.rowcount != 1:
            raise PendingAuthorizationNotFoundError("no live pending authorization at that stage")

    def take_upstream_leg(self, state_hash: str, now: datetime.datetime) -> PendingAuthorization:
        require_aware(now=now)
        with self._write() as conn:
            row = conn.execute(
                select(_TABLE)
                .where(
                    _TABLE.c.upstream_state_hash == state_hash,
                    _TABLE.c.stage == PendingStage.AT_REGION.value,
                    _TABLE.c.expires_at > now,
                )
                .with_for_update()
            ).first()
            if row is None:
                raise PendingAuthorizationNotFoundError("state is unknown, expired or answered")
            conn.execute(
                update(_TABLE)
                .where(_TABLE.c.id_hash == row.id_hash)
                .values(upstream_state_hash=None, upstream=None)
            )
        return _record(row)

    def consume_pending_authorization(
        self, id_hash: str, stages: Collection[PendingStage], now: datetime.datetime
    ) -> PendingAuthorization:
        require_aware(now=now)
        with self._write() as conn:
            row = conn.execute(
                delete(_TABLE)
                .where(
                    _TABLE.c.id_hash == id_hash,
                    _TABLE.c.stage.in_([PendingStage(s).value for s in stages]),
                    _TABLE.c.expires_at > now,
                )
                .returning(*_TABLE.c)
            ).first()
        if row is None:
            raise PendingAuthorizationNotFoundError("no live pending authorization at that stage")
        return _record(row)


def _columns(pending: PendingAuthorization) -> dict[str, Any]:
    """The row of a record, checked: text where text is needed, and no larger than allowed."""
    require_text(
        id_hash=pending.id_hash,
        client_id=pending.request.client_id,
        redirect_uri=pending.request.redirect_uri,
    )
    if pending.upstream is not None:
        require_text(state_hash=pending.upstream.state_hash)
    if record_size(pending) > MAX_RECORD_BYTES:
        raise ValueError(f"a pending authorization is limited to {MAX_RECORD_BYTES} bytes")
    upstream = pending.upstream
    return {
        "id_hash": pending.id_hash,
        "stage": PendingStage(pending.stage).value,
        "request": pending.request.to_json(),
        "upstream_state_hash": upstream.state_hash if upstream is not None else None,
        "upstream": upstream.to_json() if upstream is not None else None,
        "session_hash": pending.session_hash,
        "consent_claims": list(pending.consent_claims),
        "expires_at": pending.expires_at,
    }


def _record(row: Row[Any]) -> PendingAuthorization:
    upstream = None
    if row.upstream is not None and row.upstream_state_hash is not None:
        upstream = UpstreamLeg.from_json(row.upstream_state_hash, row.upstream)
    return PendingAuthorization(
        id_hash=row.id_hash,
        request=AuthorizationRequest.from_json(row.request),
        stage=PendingStage(row.stage),
        expires_at=row.expires_at,
        upstream=upstream,
        session_hash=row.session_hash,
        consent_claims=tuple(row.consent_claims),
    )


__all__ = ["SqlPendingAuthorizations"]
