"""The broker's round trips to regions: one login transaction per ``state``."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Protocol

from gateway.store.contract.common import JsonObject, RecordNotFoundError, require_aware


@dataclass(frozen=True)
class LoginTransaction:
    """The broker's state for one round trip to a region (OIDC Core §3.1.2.1, RFC 7636).

    Looked up by the hash of ``state``; ``request`` is the portal's original authorization
    request, resumed when the region answers. ``code_verifier`` is stored as is because it must
    be sent to the region's token endpoint.
    """

    state_hash: str
    region: str
    nonce: str
    code_verifier: str
    request: JsonObject = field(hash=False)
    expires_at: datetime.datetime
    consumed_at: datetime.datetime | None = None

    def __post_init__(self) -> None:
        require_aware(self, expires_at=self.expires_at, consumed_at=self.consumed_at)


class LoginTransactionNotFoundError(RecordNotFoundError):
    """The ``state`` is unknown, expired or already consumed (RFC 6749 §10.12)."""


class LoginTransactionStore(Protocol):
    """Upstream login transactions, each taken exactly once."""

    def save_login_transaction(self, transaction: LoginTransaction) -> None: ...

    def consume_login_transaction(
        self, state_hash: str, now: datetime.datetime
    ) -> LoginTransaction:
        """Take a transaction exactly once (``state`` is single use, RFC 6749 §10.12).

        Raises :class:`LoginTransactionNotFoundError` if unknown, expired or consumed.
        """
        ...


__all__ = ["LoginTransaction", "LoginTransactionNotFoundError", "LoginTransactionStore"]
