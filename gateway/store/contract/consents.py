"""The claims a person agreed to release to each portal."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Protocol

from gateway.store.contract.common import require_aware


@dataclass(frozen=True)
class Consent:
    """The claims a person agreed to release to one portal, until they revoke it."""

    subject: str
    client_id: str
    claims: frozenset[str]
    granted_at: datetime.datetime

    def __post_init__(self) -> None:
        require_aware(self, granted_at=self.granted_at)


class ConsentStore(Protocol):
    """Consents per person and portal: given, widened, listed, withdrawn."""

    def save_consent(
        self, subject: str, client_id: str, claims: frozenset[str], now: datetime.datetime
    ) -> Consent:
        """Record (or widen, or renew after revocation) a person's consent for a portal."""
        ...

    def get_consent(self, subject: str, client_id: str) -> Consent | None:
        """The live consent, or ``None`` when there is none or it was revoked."""
        ...

    def list_consents(self, subject: str) -> list[Consent]:
        """A person's live consents, by portal."""
        ...

    def revoke_consent(self, subject: str, client_id: str, now: datetime.datetime) -> bool:
        """Withdraw a consent; ``False`` when there was no live one."""
        ...


__all__ = ["Consent", "ConsentStore"]
