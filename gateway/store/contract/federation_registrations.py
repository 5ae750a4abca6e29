"""Explicit registrations: the clients OpenID Federation 1.0 §12.2 registered (issue 17).

A portal the trust anchor vouches for (a ``portal`` subordinate) posts its entity configuration
to the federation registration endpoint; the gateway assigns it a client identifier and keeps
the registration here: ``client_id`` (assigned, never an admin-API client id), the portal's
``entity_id`` (at most one registration per entity: §12.2.2 step 4, a new registration
invalidates the old one), the registered portal as a JSON document (the resolved,
policy-applied ``openid_relying_party`` metadata turned into a
:class:`~gateway.registry.Portal`, without its ``client_id``), and ``expires_at``: §12.2.6, the
registration does not outlive the trust chain it was made from. An expired registration is not
returned and is deleted by housekeeping (:meth:`LifecycleStore.purge_expired`).

The store keeps the document as JSON and never interprets it: :mod:`gateway.federation.explicit`
validates it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Protocol

from gateway.store.contract.common import JsonObject, require_aware


@dataclass(frozen=True)
class FederationRegistration:
    """One explicit registration (§12.2.3): the client ``client_id`` of ``entity_id``, usable
    until ``expires_at``."""

    client_id: str
    entity_id: str
    portal: JsonObject = field(hash=False)
    created_at: datetime.datetime
    expires_at: datetime.datetime

    def __post_init__(self) -> None:
        require_aware(self, created_at=self.created_at, expires_at=self.expires_at)


class FederationRegistrationStore(Protocol):
    """Explicit registrations by client id, one per entity (revision 0015)."""

    def put_federation_registration(self, registration: FederationRegistration) -> None:
        """Keep ``registration``, replacing (deleting) any registration of its ``entity_id`` in
        the same transaction (§12.2.2: re-registration invalidates the previous one)."""
        ...

    def federation_registration(
        self, client_id: str, now: datetime.datetime
    ) -> FederationRegistration | None:
        """The registration ``client_id`` names, unless it expired at ``now`` (§12.2.6)."""
        ...

    def delete_federation_registrations(self, entity_id: str) -> int:
        """Delete the registrations of ``entity_id``; how many went."""
        ...


__all__ = ["FederationRegistration", "FederationRegistrationStore"]
