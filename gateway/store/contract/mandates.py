"""Enterprises, the people who stand for them, and mandates to act for them (issue 16).

* An :class:`Enterprise` is a legal person the e-business-licence system asserted: keyed, like a
  national subject, by the keyed hash of its unified social credit code
  (:func:`gateway.enterprise.enterprise_key`); the code itself is kept sealed, for release only.
* An :class:`EnterprisePerson` records that a national subject signed in for the enterprise
  through an ``enterprise`` region, in a role (``legal_representative`` or ``agent``).
* A :class:`Mandate` is a legal representative's authorisation of an agent: for which portals
  (client ids) or sectors, until when. It is granted as a one-time invitation, bound to the
  agent's identity number by its keyed hash (never the number), and becomes live when that
  agent, signed in as themselves, accepts it; it can be revoked at any time.
* An :class:`ActingFor` is the choice a person made at one portal in one SSO session: for which
  enterprise (under which mandate) they act there. It goes with the session.

Nothing here knows about HTTP, Flask or SQL.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Protocol

from gateway.store.contract.common import RecordNotFoundError, require_aware


@dataclass(frozen=True)
class Enterprise:
    """A legal person: ``key`` the keyed hash of its credit code, ``credit_code_sealed`` the
    code sealed for release; ``name`` and ``kind`` (its type, 企业类型) as last asserted."""

    id: str
    key: str
    name: str
    kind: str
    credit_code_sealed: str
    created_at: datetime.datetime
    updated_at: datetime.datetime

    def __post_init__(self) -> None:
        require_aware(self, created_at=self.created_at, updated_at=self.updated_at)


@dataclass(frozen=True)
class EnterprisePerson:
    """A national subject who signed in for an enterprise, in ``role``; first and last seen."""

    enterprise_id: str
    subject: str
    role: str
    first_seen: datetime.datetime
    last_seen: datetime.datetime


@dataclass(frozen=True)
class Mandate:
    """A mandate of an enterprise to an agent.

    ``agent_key`` is the keyed hash of the agent's identity number the representative typed;
    ``invitation_hash`` the hash of the one-time invitation (until ``invitation_expires_at``);
    ``agent_subject`` the national subject who accepted it (``None`` until then). ``portals``
    and ``sectors`` say where it applies (a portal is covered when its client id or its sector
    is named); it is live from ``accepted_at`` until ``valid_until`` unless ``revoked_at``.
    """

    id: str
    enterprise_id: str
    granted_by: str
    agent_key: str
    invitation_hash: str
    invitation_expires_at: datetime.datetime
    portals: tuple[str, ...]
    sectors: tuple[str, ...]
    valid_until: datetime.datetime
    created_at: datetime.datetime
    agent_subject: str | None = None
    accepted_at: datetime.datetime | None = None
    revoked_at: datetime.datetime | None = None

    def __post_init__(self) -> None:
        require_aware(
            self,
            invitation_expires_at=self.invitation_expires_at,
            valid_until=self.valid_until,
            created_at=self.created_at,
            accepted_at=self.accepted_at,
            revoked_at=self.revoked_at,
        )

    def live(self, now: datetime.datetime) -> bool:
        """Accepted, not revoked and not yet expired."""
        return (
            self.accepted_at is not None
            and self.agent_subject is not None
            and self.revoked_at is None
            and now < self.valid_until
        )

    def covers(self, client_id: str, sector: str) -> bool:
        """Whether the mandate applies at the portal ``client_id`` of ``sector``."""
        return client_id in self.portals or sector in self.sectors


@dataclass(frozen=True)
class ActingFor:
    """What a person chose at one portal in one SSO session: for ``enterprise_id`` in
    ``role`` (under ``mandate_id`` for an agent), or for themselves (``enterprise_id`` ``None``);
    ``pending_hash`` names the sign-in the choice was made in."""

    session_hash: str
    client_id: str
    pending_hash: str
    enterprise_id: str | None
    role: str | None
    mandate_id: str | None
    chosen_at: datetime.datetime

    def __post_init__(self) -> None:
        require_aware(self, chosen_at=self.chosen_at)


class MandateNotFoundError(RecordNotFoundError):
    """No mandate (or no live invitation for it) matches."""


class MandateStore(Protocol):
    """Enterprises, their people, mandates and the choices made with them."""

    def save_enterprise(
        self, key: str, name: str, kind: str, credit_code_sealed: str, now: datetime.datetime
    ) -> Enterprise:
        """The enterprise keyed ``key``, created the first time; its name and kind updated to
        what was asserted now. Race-safe: concurrent first sign-ins yield one enterprise."""
        ...

    def get_enterprise(self, enterprise_id: str) -> Enterprise | None: ...

    def record_enterprise_person(
        self, enterprise_id: str, subject: str, role: str, now: datetime.datetime
    ) -> EnterprisePerson:
        """Record (or refresh) that ``subject`` signed in for the enterprise in ``role``."""
        ...

    def list_enterprise_people(self, enterprise_id: str) -> list[EnterprisePerson]: ...

    def create_mandate(self, mandate: Mandate) -> None:
        """Store a new mandate (not yet accepted); its id and invitation hash are unique."""
        ...

    def accept_mandate(
        self, invitation_hash: str, agent_key: str, agent_subject: str, now: datetime.datetime
    ) -> Mandate:
        """Accept the invitation ``invitation_hash`` for ``agent_subject``, once: only while
        the invitation is unexpired, unaccepted and unrevoked, and only by the agent whose
        identity key it names. :class:`MandateNotFoundError` otherwise (the same error
        whatever the reason, so the invitation says nothing to whoever holds it)."""
        ...

    def revoke_mandate(
        self, mandate_id: str, enterprise_id: str, now: datetime.datetime
    ) -> Mandate | None:
        """Revoke the enterprise's mandate; ``None`` when it has no unrevoked one by that id."""
        ...

    def get_mandate(self, mandate_id: str) -> Mandate | None: ...

    def list_enterprise_mandates(self, enterprise_id: str) -> list[Mandate]:
        """Every mandate of the enterprise, newest first (revoked and expired ones too)."""
        ...

    def list_agent_mandates(self, agent_subject: str, now: datetime.datetime) -> list[Mandate]:
        """The agent's live mandates, newest first."""
        ...

    def purge_mandates(self, now: datetime.datetime, retention: datetime.timedelta) -> int:
        """Delete the mandates nobody can use any more; return how many went (THREAT_MODEL
        row 7: never an unbounded row).

        An invitation that expired unaccepted goes at ``invitation_expires_at`` (it can never
        become a mandate). A mandate that expired (``valid_until``) or was revoked goes
        ``retention`` after that, so that its enterprise still sees it ended for a while; the
        audit trail keeps its history. Live mandates and open invitations stay.
        """
        ...

    def choose_acting_for(self, choice: ActingFor) -> None:
        """Remember (replacing any earlier) the choice for its session and portal."""
        ...

    def get_acting_for(self, session_hash: str, client_id: str) -> ActingFor | None: ...


__all__ = [
    "ActingFor",
    "Enterprise",
    "EnterprisePerson",
    "Mandate",
    "MandateNotFoundError",
    "MandateStore",
]
