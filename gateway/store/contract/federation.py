"""Federation subordinates: the regions and portals the trust anchor vouches for (issue 17).

OpenID Federation 1.0 §3: a trust anchor issues a *subordinate statement* about each entity it
vouches for, naming the entity's identifier (``sub``) and its federation keys (``jwks``). A
region or a portal registered with the gateway becomes a subordinate when the platform records
its entity identifier and federation JWK Set here (``PUT /admin/v1/federation/subordinates``).
``kind`` says what the entity is for the list endpoint's ``entity_type`` filter (§8.2): a
region is an ``openid_provider``, a portal an ``openid_relying_party``. ``metadata_policy`` is
the subordinate's own policy (§6.1), merged under the platform's when statements are issued.
A subordinate of kind ``intermediate`` (revision 0016) is a federation entity that vouches for
subordinates of its own (§1.2, "Intermediate Entity"): its ``key`` is a name of the platform's
choosing, and ``constraints`` the ones the anchor's statement about it carries (§6.2).

The store keeps the documents as JSON and never interprets them: validation is
:mod:`gateway.federation`'s.

Trust marks (OpenID Federation 1.0 §7) the gateway issues to a subordinate on the platform's
say-so are kept as :class:`FederationTrustMark` records (revision 0014), one per issued mark, by
its ``jti``: never deleted, revocation sets ``revoked_at`` (the status endpoint, §8.4, answers
``revoked`` from then on).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gateway.store.contract.common import JsonObject, StoreError, require_aware

SubordinateKind = Literal["region", "portal", "intermediate"]


@dataclass(frozen=True)
class FederationSubordinate:
    """One subordinate: ``(kind, key)`` is the region code or portal client id it belongs to;
    ``entity_id`` is unique among all subordinates."""

    kind: SubordinateKind
    key: str
    entity_id: str
    jwks: JsonObject = field(hash=False)
    metadata_policy: JsonObject = field(hash=False)
    created_at: datetime.datetime
    updated_at: datetime.datetime
    #: The ``constraints`` of the anchor's statement about an intermediate (§3.1.3, §6.2),
    #: ``{}`` for a region or portal (revision 0016).
    constraints: JsonObject = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        require_aware(self, created_at=self.created_at, updated_at=self.updated_at)


@dataclass(frozen=True)
class FederationTrustMark:
    """One trust mark issued to the subordinate ``(kind, key)`` whose entity identifier was
    ``entity_id`` (the mark's ``sub``) at ``issued_at`` (its ``iat``); ``expires_at`` is its
    ``exp`` (``None``: none), ``revoked_at`` when the platform withdrew it."""

    jti: str
    trust_mark_type: str
    kind: SubordinateKind
    key: str
    entity_id: str
    issued_at: datetime.datetime
    expires_at: datetime.datetime | None = None
    revoked_at: datetime.datetime | None = None

    def __post_init__(self) -> None:
        require_aware(
            self,
            issued_at=self.issued_at,
            expires_at=self.expires_at,
            revoked_at=self.revoked_at,
        )


class EntityIdTakenError(StoreError):
    """Another subordinate already has this entity identifier."""


class FederationStore(Protocol):
    """Subordinates of the trust anchor, by (kind, key) and by entity identifier."""

    def put_federation_subordinate(
        self, subordinate: FederationSubordinate
    ) -> FederationSubordinate:
        """Create or replace the subordinate of ``(kind, key)`` (its ``created_at`` kept when it
        existed) and return what is stored. :class:`EntityIdTakenError` when another
        ``(kind, key)`` has the entity identifier; nothing is written then."""
        ...

    def federation_subordinate(
        self, kind: SubordinateKind, key: str
    ) -> FederationSubordinate | None:
        """The subordinate of ``(kind, key)``, or ``None``."""
        ...

    def federation_subordinate_by_entity(self, entity_id: str) -> FederationSubordinate | None:
        """The subordinate whose entity identifier is ``entity_id`` (exactly), or ``None``."""
        ...

    def federation_subordinates(
        self, kind: SubordinateKind | None = None
    ) -> list[FederationSubordinate]:
        """Every subordinate (of ``kind`` when given), ordered by entity identifier."""
        ...

    def delete_federation_subordinate(self, kind: SubordinateKind, key: str) -> bool:
        """Delete the subordinate of ``(kind, key)``; whether there was one."""
        ...

    def add_federation_trust_mark(self, mark: FederationTrustMark) -> None:
        """Record an issued trust mark. :class:`~gateway.store.contract.common.DuplicateRecordError`
        when its ``jti`` is taken; nothing is written then."""
        ...

    def federation_trust_mark(self, jti: str) -> FederationTrustMark | None:
        """The issued trust mark of ``jti``, or ``None``."""
        ...

    def federation_trust_marks(
        self,
        kind: SubordinateKind | None = None,
        key: str | None = None,
        trust_mark_type: str | None = None,
    ) -> list[FederationTrustMark]:
        """Every issued trust mark (revoked and expired ones too), of the subordinate
        ``(kind, key)`` and of ``trust_mark_type`` when given, the latest issued first."""
        ...

    def revoke_federation_trust_marks(
        self, kind: SubordinateKind, key: str, trust_mark_type: str, at: datetime.datetime
    ) -> int:
        """Set ``revoked_at`` = ``at`` on the not yet revoked marks of ``trust_mark_type`` issued
        to ``(kind, key)``; how many there were (a revoked mark keeps its first revocation)."""
        ...


__all__ = [
    "EntityIdTakenError",
    "FederationStore",
    "FederationSubordinate",
    "FederationTrustMark",
    "SubordinateKind",
]
