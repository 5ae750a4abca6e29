"""SSO sessions and the portals that took part in them (OIDC Back-Channel Logout 1.0)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Protocol

from gateway.store.contract.common import JsonObject, RecordNotFoundError, require_aware


@dataclass(frozen=True)
class SsoSession:
    """A server-side SSO session; the browser cookie holds only the opaque id it hashes to.

    ``claims`` are the person's claims as the region asserted them at login, kept so that a
    second portal gets its ID token without another upstream round trip (single sign-on).
    ``region_sid`` is the region's own session id (the ``sid`` of its ID token) and
    ``region_sub`` the person's ``sub`` at the region: a logout token from the region names
    the session by one or the other (Back-Channel Logout 1.0 §2.4, §2.7).
    """

    session_hash: str
    subject: str
    region: str
    auth_time: datetime.datetime
    acr: str | None
    amr: tuple[str, ...]
    created_at: datetime.datetime
    expires_at: datetime.datetime
    ended_at: datetime.datetime | None = None
    claims: JsonObject = field(default_factory=dict, hash=False)
    region_sid: str | None = None
    region_sub: str | None = None

    def __post_init__(self) -> None:
        require_aware(
            self,
            auth_time=self.auth_time,
            created_at=self.created_at,
            expires_at=self.expires_at,
            ended_at=self.ended_at,
        )


@dataclass(frozen=True)
class SessionParticipant:
    """A portal that received tokens in an SSO session, and the ``sid`` it was given.

    OIDC Back-Channel Logout 1.0 §2.1 and §2.4: when the session ends, each participant gets a
    logout token carrying this ``sid``.
    """

    session_hash: str
    client_id: str
    sid: str
    created_at: datetime.datetime


@dataclass(frozen=True)
class EndedSession:
    """What a logout did (:meth:`SessionStore.end_session_and_revoke_grants`).

    ``session`` is the session this call ended (``ended_at`` set), if it was live until then:
    what :meth:`SessionStore.get_session` returned a moment before. It is ``None`` if the
    session was unknown, already ended or expired. ``participants`` are the portals to notify,
    as :meth:`SessionStore.end_session` returns them (an expired session still names them), and
    ``revoked_grants`` the ids of the grants the logout revoked, sorted.
    """

    session: SsoSession | None
    participants: list[SessionParticipant]
    revoked_grants: list[str]


class SessionNotFoundError(RecordNotFoundError):
    """The SSO session is unknown, ended or expired."""


class SessionStore(Protocol):
    """SSO sessions, their participants, and their end (logout)."""

    def create_session(self, session: SsoSession) -> None:
        """Store a new SSO session for an existing national subject."""
        ...

    def get_session(self, session_hash: str, now: datetime.datetime) -> SsoSession | None:
        """The session unless it is unknown, ended or expired."""
        ...

    def raise_session_assurance(
        self, session_hash: str, acr: str, amr: tuple[str, ...], now: datetime.datetime
    ) -> SsoSession:
        """Record a step-up in a live session: its new ``acr`` and the full ``amr``.

        Raises :class:`SessionNotFoundError` when the session is unknown, ended or expired.
        """
        ...

    def add_participant(
        self, session_hash: str, client_id: str, sid: str, now: datetime.datetime
    ) -> SessionParticipant:
        """Record that a portal took part in a live session (idempotent per client).

        Adding a client again keeps (and returns) the first ``sid``, so every ID token the
        portal receives in this session carries the same one.
        """
        ...

    def list_participants(self, session_hash: str) -> list[SessionParticipant]: ...

    def end_session(self, session_hash: str, now: datetime.datetime) -> list[SessionParticipant]:
        """End a session; return the portals to notify (OIDC Back-Channel Logout 1.0 §2.7).

        An expired but not yet ended session still returns its participants, since their own
        sessions may outlive ours. Ending twice returns an empty list the second time, so the
        fan-out happens once.
        """
        ...

    def find_subject_sessions(
        self, subject: str, now: datetime.datetime, *, limit: int = 100
    ) -> list[SsoSession]:
        """The live sessions of the national ``subject``, at most ``limit``, oldest first:
        what a help-desk reset of the person's factor must end (a session the factor raised
        must not outlive it). ``limit`` bounds the read (a caller ends them and asks again)."""
        ...

    def find_region_sessions(
        self,
        region: str,
        now: datetime.datetime,
        *,
        region_sid: str | None = None,
        region_sub: str | None = None,
        limit: int = 100,
    ) -> list[SsoSession]:
        """The live sessions of ``region``, at most ``limit``, oldest first.

        With ``region_sid``, those the region's session ``region_sid`` opened (one, normally);
        else with ``region_sub``, those of the person the region knows as ``region_sub``; with
        neither, any. What a region's logout token (Back-Channel Logout 1.0 §2.7) or the end of
        a disabled region must end; ``limit`` bounds the read (a caller ends them and asks
        again).
        """
        ...

    def find_participant_session(
        self, client_id: str, sid: str, now: datetime.datetime
    ) -> SsoSession | None:
        """The live session in which the portal ``client_id`` was given ``sid``, or ``None``
        (unknown, ended or expired). An ``id_token_hint``'s ``aud`` and ``sid`` name the
        session it was issued in this way (RP-Initiated Logout 1.0 §2; Back-Channel Logout 1.0
        §2.1: the ``sid`` of the portal's ID tokens)."""
        ...

    def end_session_and_revoke_grants(
        self, session_hash: str, now: datetime.datetime
    ) -> EndedSession:
        """A logout, in one transaction: end the session and revoke every grant made in it.

        :meth:`end_session` and :meth:`~gateway.store.contract.TokenStore.revoke_session_grants`
        at once, so a crash between them cannot leave tokens alive after the logout (OIDC
        Back-Channel Logout 1.0 §2.7; RFC 9700 §4.14.2 on revoking what a session yielded).
        Both happen or neither. A grant being made in the session concurrently is either
        refused (:class:`SessionNotFoundError`) or revoked with the others: once this returns,
        no grant of the session is live. Ending twice returns no participants and no grants
        the second time.
        """
        ...


__all__ = [
    "EndedSession",
    "SessionNotFoundError",
    "SessionParticipant",
    "SessionStore",
    "SsoSession",
]
