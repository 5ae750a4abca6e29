"""Replay protection for client assertions (RFC 7523): each ``jti`` used once per client."""

from __future__ import annotations

import datetime
from typing import Protocol


class ReplayStore(Protocol):
    """Used client assertions, remembered until they expire."""

    def use_assertion(
        self,
        client_id: str,
        jti: str,
        expires_at: datetime.datetime,
        now: datetime.datetime,
    ) -> bool:
        """Record that ``client_id`` used the assertion ``jti`` (RFC 7523 §3, item 7).

        ``True`` the first time; ``False`` while an earlier use of the same ``jti`` by the same
        client is remembered (until its ``expires_at``). Atomic and shared by every store on the
        same database: of concurrent uses, across replicas too, exactly one gets ``True``.
        """
        ...


__all__ = ["ReplayStore"]
