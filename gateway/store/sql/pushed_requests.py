"""Pushed authorization requests on SQL (RFC 9126): taken once by ``DELETE ... RETURNING``.

The take is one statement, ``DELETE ... WHERE reference_hash = :ref AND client_id = :client
AND expires_at > :now RETURNING ...``: of two concurrent takes the second matches nothing once
the first has committed (PostgreSQL re-checks the condition after the row lock; SQLite writes
one at a time), and another portal's take matches nothing at all.
"""

from __future__ import annotations

import datetime
import json

from sqlalchemy import delete

from gateway.store.contract.pushed_requests import (
    MAX_PUSHED_BYTES,
    PushedRequest,
    PushedRequestTooLargeError,
)
from gateway.store.schema import pushed_authorization_requests
from gateway.store.sql.base import SqlBase, require_aware, require_text

_TABLE = pushed_authorization_requests


class SqlPushedRequests(SqlBase):
    """:class:`~gateway.store.contract.pushed_requests.PushedRequestStore` on SQL."""

    def save_pushed_request(self, pushed: PushedRequest) -> None:
        require_text(reference_hash=pushed.reference_hash, client_id=pushed.client_id)
        parameters = {str(k): str(v) for k, v in pushed.parameters.items()}
        size = len(json.dumps(parameters, ensure_ascii=False).encode("utf-8"))
        if size > MAX_PUSHED_BYTES:
            raise PushedRequestTooLargeError(
                f"the pushed parameters take {size} bytes, more than {MAX_PUSHED_BYTES}"
            )
        with self._write() as conn:
            self._insert_new(
                conn,
                _TABLE,
                "pushed authorization request",
                reference_hash=pushed.reference_hash,
                client_id=pushed.client_id,
                parameters=parameters,
                expires_at=pushed.expires_at,
            )

    def take_pushed_request(
        self, reference_hash: str, client_id: str, now: datetime.datetime
    ) -> PushedRequest | None:
        require_aware(now=now)
        with self._write() as conn:
            row = conn.execute(
                delete(_TABLE)
                .where(
                    _TABLE.c.reference_hash == reference_hash,
                    _TABLE.c.client_id == client_id,
                    _TABLE.c.expires_at > now,
                )
                .returning(*_TABLE.c)
            ).first()
        if row is None:
            return None
        return PushedRequest(
            reference_hash=row.reference_hash,
            client_id=row.client_id,
            parameters={str(k): str(v) for k, v in dict(row.parameters).items()},
            expires_at=row.expires_at,
        )


__all__ = ["SqlPushedRequests"]
