"""Upstream login transactions on SQL: ``state`` is taken by one conditional ``UPDATE``."""

from __future__ import annotations

import datetime

from sqlalchemy import update

from gateway.store.contract import LoginTransaction, LoginTransactionNotFoundError
from gateway.store.schema import login_transactions
from gateway.store.sql.base import SqlBase, json_object, require_aware, require_text


class SqlLoginTransactions(SqlBase):
    """:class:`~gateway.store.contract.LoginTransactionStore` on SQL."""

    def save_login_transaction(self, transaction: LoginTransaction) -> None:
        require_text(
            state_hash=transaction.state_hash,
            region=transaction.region,
            nonce=transaction.nonce,
            code_verifier=transaction.code_verifier,
        )
        request = json_object(transaction.request, "request")
        with self._write() as conn:
            self._insert_new(
                conn,
                login_transactions,
                "login transaction",
                state_hash=transaction.state_hash,
                region=transaction.region,
                nonce=transaction.nonce,
                code_verifier=transaction.code_verifier,
                request=request,
                expires_at=transaction.expires_at,
                consumed_at=transaction.consumed_at,
            )

    def consume_login_transaction(
        self, state_hash: str, now: datetime.datetime
    ) -> LoginTransaction:
        require_aware(now=now)
        table = login_transactions
        with self._write() as conn:
            row = conn.execute(
                update(table)
                .where(
                    table.c.state_hash == state_hash,
                    table.c.consumed_at.is_(None),
                    table.c.expires_at > now,
                )
                .values(consumed_at=now)
                .returning(*table.c)
            ).first()
        if row is None:
            raise LoginTransactionNotFoundError("state is unknown, expired or already used")
        return LoginTransaction(
            state_hash=row.state_hash,
            region=row.region,
            nonce=row.nonce,
            code_verifier=row.code_verifier,
            request=row.request,
            expires_at=row.expires_at,
            consumed_at=row.consumed_at,
        )


__all__ = ["SqlLoginTransactions"]
