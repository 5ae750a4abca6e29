"""Back-channel logout deliveries a portal did not accept, kept to try again (Back-Channel
Logout 1.0 §2.5, §2.8: the portal answers 200 when it logged the session out, anything else
means it did not)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Protocol

from gateway.store.contract.common import require_aware


@dataclass(frozen=True)
class LogoutDelivery:
    """One portal's logout notice that has not been accepted yet.

    It holds what a new logout token needs (``subject``: the ``sub`` this portal knows, ``sid``:
    the one its ID tokens carried), never a token: a logout token expires in minutes and its
    ``jti`` is single use (§2.4), so every try sends a new one. ``attempts`` counts the tries
    made, the first included; ``next_attempt_at`` is when the next may start; ``last_status``
    what the portal last answered (``"http 500"``, ``"ConnectionError"``). ``given_up_at`` is
    set once the tries are spent; the row stays until ``expires_at`` as a record.
    """

    delivery_id: str
    client_id: str
    subject: str
    sid: str
    attempts: int
    created_at: datetime.datetime
    next_attempt_at: datetime.datetime
    expires_at: datetime.datetime
    last_status: str | None = None
    given_up_at: datetime.datetime | None = None

    def __post_init__(self) -> None:
        require_aware(
            self,
            created_at=self.created_at,
            next_attempt_at=self.next_attempt_at,
            expires_at=self.expires_at,
            given_up_at=self.given_up_at,
        )


class LogoutDeliveryStore(Protocol):
    """Failed back-channel logout deliveries, their retries and their record."""

    def record_logout_delivery(self, delivery: LogoutDelivery) -> None:
        """Keep a delivery that failed, to be tried again from ``next_attempt_at`` on.

        Raises :class:`~gateway.store.contract.DuplicateRecordError` for a known id.
        """
        ...

    def claim_logout_deliveries(
        self, now: datetime.datetime, lease: datetime.timedelta, limit: int
    ) -> list[LogoutDelivery]:
        """Claim up to ``limit`` deliveries that are due (``next_attempt_at <= now``, not given
        up), oldest due first, and return them as they were.

        Claiming moves their ``next_attempt_at`` to ``now + lease``: atomic, and shared by every
        store on the same database, so of concurrent claims (across replicas too) each due
        delivery goes to exactly one. A claimant that dies before it reports leaves the row to be
        claimed again once the lease has passed.
        """
        ...

    def logout_delivered(self, delivery_id: str) -> bool:
        """The portal accepted it: forget the delivery. ``False`` when it was unknown."""
        ...

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
        """Another try failed: record ``attempts`` and ``status``, and either when to try again
        (``next_attempt_at``) or, with ``None``, that the gateway gives up (``given_up_at =
        now``). The row is kept until ``expires_at``. ``False`` when it was unknown.
        """
        ...

    def list_logout_deliveries(self, limit: int = 100) -> list[LogoutDelivery]:
        """Deliveries kept (pending and given up), oldest first, at most ``limit``."""
        ...


__all__ = ["LogoutDelivery", "LogoutDeliveryStore"]
