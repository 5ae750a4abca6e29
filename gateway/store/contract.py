"""The storage contract: records, the :class:`Store` protocol and its errors.

Every engine (see :mod:`gateway.store.sql`) passes the same conformance suite,
``tests/integration/test_store_contract.py``. Nothing here knows about HTTP, Flask or SQL.

Conventions that hold for every operation:

* Secrets (authorization codes, tokens, SSO session ids, ``state`` values) are never stored: the
  caller passes their SHA-256 (see :func:`token_hash`) and looks records up by that hash, so a
  copy of the database does not hand out working credentials (RFC 6749 §10.3, §10.5).
* Times are timezone-aware datetimes supplied by the caller (``now``), so tests own the clock. A
  record is valid while ``now < expires_at``; it is expired from ``expires_at`` on.
* Each operation is one transaction: an error leaves nothing half-written.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

JsonObject = dict[str, Any]
"""A JSON object as the store keeps it: ``str`` keys, values that :mod:`json` can encode."""


def token_hash(value: str) -> str:
    """The lookup key for a secret: lower-case hex SHA-256 of its UTF-8 bytes.

    Codes, tokens, session ids and ``state`` values are high-entropy random strings, so one
    unsalted SHA-256 is enough to keep them useless to whoever reads the database (RFC 6749
    §10.5: codes must not be guessable; §10.3: tokens kept confidential in storage).
    """
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _require_aware(owner: object, **times: datetime.datetime | None) -> None:
    for name, value in times.items():
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{type(owner).__name__}.{name} must be timezone-aware")


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """A national subject: one person, however many regions they signed in through.

    ``identity_key`` is the keyed hash of the resident identity number
    (:func:`gateway.identity.identity_key`); the number itself is never stored.
    """

    id: str
    identity_key: str
    created_at: datetime.datetime


@dataclass(frozen=True)
class SubjectLink:
    """One upstream account (``sub`` at one region) linked to a national subject."""

    region: str
    upstream_sub: str
    subject_id: str
    created_at: datetime.datetime


class RegistryKind(StrEnum):
    """The two kinds of registry document: upstream regions and client portals."""

    REGION = "region"
    PORTAL = "portal"


@dataclass(frozen=True)
class RegistryDocument:
    """A region (key: its code) or a portal (key: its client_id), as validated JSON.

    ``revision`` starts at 1 and grows by one on every replacement: callers can use it for
    optimistic concurrency (``expected_revision``) and to notice change.
    """

    kind: RegistryKind
    key: str
    document: JsonObject = field(hash=False)
    revision: int
    created_at: datetime.datetime
    updated_at: datetime.datetime


@dataclass(frozen=True)
class Grant:
    """One authorization of one client by one subject: the family of its codes and tokens.

    Revoking the grant invalidates every code, access token and refresh token issued under it
    (RFC 6749 §4.1.2 and §10.5 on code replay; RFC 9700 §4.14.2 on refresh token reuse).
    ``session_hash`` names the SSO session the grant was made in, if any.
    """

    grant_id: str
    client_id: str
    subject: str
    session_hash: str | None
    created_at: datetime.datetime
    revoked_at: datetime.datetime | None = None

    def __post_init__(self) -> None:
        _require_aware(self, created_at=self.created_at, revoked_at=self.revoked_at)


@dataclass(frozen=True)
class CodeRecord:
    """An authorization code (RFC 6749 §4.1.2), kept by its hash until redeemed or expired.

    ``claims`` carries what the ID token will need (``auth_time``, ``acr``, ``amr``, ...).
    ``code_challenge``/``code_challenge_method`` are the PKCE values of RFC 7636 §4.3.
    """

    code_hash: str
    grant_id: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    claims: JsonObject = field(hash=False)
    expires_at: datetime.datetime
    redeemed_at: datetime.datetime | None = None

    def __post_init__(self) -> None:
        _require_aware(self, expires_at=self.expires_at, redeemed_at=self.redeemed_at)


@dataclass(frozen=True)
class AccessTokenRecord:
    """An issued access token, by the hash of its ``jti`` (introspection, RFC 7662; userinfo)."""

    token_hash: str
    grant_id: str
    client_id: str
    subject: str
    scope: str
    expires_at: datetime.datetime

    def __post_init__(self) -> None:
        _require_aware(self, expires_at=self.expires_at)


class RefreshTokenStatus(StrEnum):
    """Where a refresh token is in its rotation life (RFC 9700 §4.14.2)."""

    LIVE = "live"
    ROTATED = "rotated"  # exchanged once; presenting it again is reuse
    REVOKED = "revoked"


@dataclass(frozen=True)
class RefreshTokenRecord:
    """A refresh token; ``grant_id`` is its rotation family (RFC 9700 §4.14.2)."""

    token_hash: str
    grant_id: str
    client_id: str
    subject: str
    scope: str
    expires_at: datetime.datetime
    status: RefreshTokenStatus = RefreshTokenStatus.LIVE

    def __post_init__(self) -> None:
        _require_aware(self, expires_at=self.expires_at)


@dataclass(frozen=True)
class SsoSession:
    """A server-side SSO session; the browser cookie holds only the opaque id it hashes to.

    ``claims`` are the person's claims as the region asserted them at login, kept so that a
    second portal gets its ID token without another upstream round trip (single sign-on).
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

    def __post_init__(self) -> None:
        _require_aware(
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
        _require_aware(self, expires_at=self.expires_at, consumed_at=self.consumed_at)


@dataclass(frozen=True)
class TotpCredential:
    """A subject's TOTP factor (RFC 6238): pending until confirmed with a first code.

    ``secret`` is ciphertext made by :mod:`gateway.mfa` (the store never holds the key).
    ``last_accepted_step`` is the newest time step ever accepted: a code of that step or an
    older one is never accepted again (RFC 6238 §5.2).
    """

    subject: str
    secret: bytes = field(repr=False)
    created_at: datetime.datetime
    confirmed_at: datetime.datetime | None = None
    last_accepted_step: int | None = None
    last_used_at: datetime.datetime | None = None

    def __post_init__(self) -> None:
        _require_aware(
            self,
            created_at=self.created_at,
            confirmed_at=self.confirmed_at,
            last_used_at=self.last_used_at,
        )

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None


@dataclass(frozen=True)
class RecoveryCode:
    """One recovery code of a subject, as a slow salted hash (the code is shown once)."""

    subject: str
    code_id: int
    code_hash: str = field(repr=False)
    created_at: datetime.datetime
    used_at: datetime.datetime | None = None

    def __post_init__(self) -> None:
        _require_aware(self, created_at=self.created_at, used_at=self.used_at)


@dataclass(frozen=True)
class Consent:
    """The claims a person agreed to release to one portal, until they revoke it."""

    subject: str
    client_id: str
    claims: frozenset[str]
    granted_at: datetime.datetime

    def __post_init__(self) -> None:
        _require_aware(self, granted_at=self.granted_at)


# --- errors -------------------------------------------------------------------------------------


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or answered with an unexpected failure."""


class DuplicateRecordError(StoreError):
    """A record with the same key exists (or a family already has a live refresh token)."""


class RecordNotFoundError(StoreError):
    """A record the operation needs does not exist (or is no longer valid)."""


class SubjectNotFoundError(RecordNotFoundError):
    """No national subject has this id."""


class GrantNotFoundError(RecordNotFoundError):
    """The grant is unknown or revoked: nothing may be issued under it."""


class SessionNotFoundError(RecordNotFoundError):
    """The SSO session is unknown, ended or expired."""


class CodeNotFoundError(RecordNotFoundError):
    """The authorization code is unknown, expired, or its grant was revoked."""


class CodeReplayedError(StoreError):
    """The authorization code was redeemed before (RFC 6749 §4.1.2, RFC 9700 §4.5).

    The store has already revoked ``grant_id``, and with it every token issued from the first
    redemption; revoking it again is harmless.
    """

    def __init__(self, grant_id: str) -> None:
        self.grant_id = grant_id
        super().__init__(f"authorization code replayed; grant {grant_id} revoked")


class RefreshTokenNotFoundError(RecordNotFoundError):
    """The refresh token is unknown, expired, revoked, or its grant was revoked."""


class RefreshTokenReuseError(StoreError):
    """A rotated refresh token was presented again (RFC 9700 §4.14.2).

    Either the legitimate client or an attacker holds a stolen copy; the store cannot tell
    which, so it has revoked the whole family (``grant_id``).
    """

    def __init__(self, grant_id: str) -> None:
        self.grant_id = grant_id
        super().__init__(f"refresh token reused; grant {grant_id} revoked")


class LoginTransactionNotFoundError(RecordNotFoundError):
    """The ``state`` is unknown, expired or already consumed (RFC 6749 §10.12)."""


class SubjectLinkConflictError(StoreError):
    """The upstream account is linked to a different national subject than the one asserted.

    A region re-used a ``sub`` for another person, or asserted another identity number for the
    same account: never re-link silently.
    """

    def __init__(self, region: str) -> None:
        self.region = region
        super().__init__(f"upstream account at region {region!r} is linked to another subject")


class RevisionConflictError(StoreError):
    """A registry document is not at the revision the caller expected."""

    def __init__(self, kind: RegistryKind, key: str, expected: int, actual: int | None) -> None:
        self.kind = kind
        self.key = key
        self.expected = expected
        self.actual = actual
        super().__init__(f"{kind} {key!r} is at revision {actual}, not {expected}")


# --- the protocol -------------------------------------------------------------------------------


class Store(Protocol):
    """Everything the gateway keeps. One transaction per call; see the module docstring."""

    # lifecycle

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent; safe from several replicas)."""
        ...

    def healthy(self) -> bool:
        """A cheap round trip to the database, for readiness probes. Never raises."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    # national subjects

    def link_subject(
        self, identity_key: str, region: str, upstream_sub: str, now: datetime.datetime
    ) -> Subject:
        """The national subject for ``identity_key``, created at the first login.

        Links (``region``, ``upstream_sub``) to it. Idempotent and race-safe: concurrent first
        logins with the same key yield one subject. Raises :class:`SubjectLinkConflictError` if
        the upstream account is already linked to another subject.
        """
        ...

    def get_subject(self, subject_id: str) -> Subject | None: ...

    def find_subject(self, region: str, upstream_sub: str) -> Subject | None:
        """The subject an upstream account is linked to, if any."""
        ...

    def list_subject_links(self, subject_id: str) -> list[SubjectLink]: ...

    # registry

    def put_document(
        self,
        kind: RegistryKind,
        key: str,
        document: Mapping[str, Any],
        now: datetime.datetime,
        *,
        expected_revision: int | None = None,
    ) -> RegistryDocument:
        """Create or replace a document; return it with its new revision.

        ``expected_revision``: ``None`` writes unconditionally; ``0`` creates only (the key must
        not exist); ``n > 0`` replaces only revision ``n``. A mismatch raises
        :class:`RevisionConflictError`.
        """
        ...

    def get_document(self, kind: RegistryKind, key: str) -> RegistryDocument | None: ...

    def list_documents(self, kind: RegistryKind) -> list[RegistryDocument]:
        """All documents of a kind, ordered by key."""
        ...

    def delete_document(
        self, kind: RegistryKind, key: str, *, expected_revision: int | None = None
    ) -> bool:
        """Delete a document; ``False`` if there was none (deleting twice is not an error).

        ``expected_revision``: ``None`` deletes whatever is there; ``n > 0`` deletes only
        revision ``n``, so a caller can decide on what it read and delete exactly that. A
        mismatch (another revision, or no document at all) raises
        :class:`RevisionConflictError` and deletes nothing.
        """
        ...

    # grants

    def create_grant(
        self,
        client_id: str,
        subject: str,
        now: datetime.datetime,
        *,
        session_hash: str | None = None,
    ) -> Grant:
        """A new grant with a store-generated id. A named session must be live."""
        ...

    def get_grant(self, grant_id: str) -> Grant | None: ...

    def get_grant_session(
        self, grant_id: str, now: datetime.datetime
    ) -> tuple[Grant, SsoSession | None] | None:
        """The grant and its SSO session in one read (every token request needs both).

        ``None`` if the grant is unknown. The session is ``None`` when the grant has none or
        when :meth:`get_session` would not return it (unknown, ended or expired).
        """
        ...

    def revoke_grant(self, grant_id: str, now: datetime.datetime) -> bool:
        """Revoke a grant and all issued under it; ``False`` if unknown or already revoked."""
        ...

    def revoke_session_grants(self, session_hash: str, now: datetime.datetime) -> list[str]:
        """Revoke every live grant made in an SSO session; return their ids."""
        ...

    # authorization codes

    def save_code(self, code: CodeRecord) -> None:
        """Store a new code. Its grant must exist, be live and belong to ``code.client_id``."""
        ...

    def issue_code(
        self,
        code: CodeRecord,
        subject: str,
        now: datetime.datetime,
        *,
        session_hash: str | None,
        sid: str,
    ) -> tuple[CodeRecord, Grant]:
        """All an authorization response writes, in one transaction (or nothing).

        A new grant for ``code.client_id`` and ``subject`` (in the session ``session_hash``,
        which must be live: else :class:`SessionNotFoundError`), the portal added to that
        session as :meth:`add_participant` does (``sid`` is used only if it takes part for the
        first time), and the code under the new grant. Returns the code as stored, with the new
        grant's id and, with a session, ``claims["sid"]`` the portal's ``sid`` in it, and the
        grant. ``code.grant_id`` is ignored.
        """
        ...

    def redeem_code(self, code_hash: str, now: datetime.datetime) -> CodeRecord:
        """Redeem a code exactly once (RFC 6749 §4.1.2, §10.5; RFC 9700 §4.5).

        Atomic: of concurrent callers exactly one gets the record (with ``redeemed_at`` set).
        A later attempt revokes the grant and raises :class:`CodeReplayedError`; an unknown or
        expired code, or one whose grant was revoked, raises :class:`CodeNotFoundError`.
        """
        ...

    # access tokens

    def save_access_token(self, token: AccessTokenRecord) -> None:
        """Store an issued access token under a live grant with the same client and subject."""
        ...

    def get_access_token(self, token_hash: str, now: datetime.datetime) -> AccessTokenRecord | None:
        """The token if it is known, unexpired and its grant not revoked (RFC 7662 §2.2)."""
        ...

    def get_access_token_session(
        self, token_hash: str, now: datetime.datetime
    ) -> tuple[AccessTokenRecord, SsoSession | None] | None:
        """:meth:`get_access_token` with its grant's SSO session, in one read (userinfo).

        The session is ``None`` when the grant has none or when :meth:`get_session` would not
        return it (ended or expired).
        """
        ...

    def revoke_access_token(self, token_hash: str) -> bool:
        """Forget one access token (RFC 7009 §2.1); ``False`` if it was unknown."""
        ...

    # refresh tokens

    def save_refresh_token(
        self, token: RefreshTokenRecord, *, access_token: AccessTokenRecord | None = None
    ) -> None:
        """Store the first refresh token of a family (status must be ``live``).

        Raises :class:`DuplicateRecordError` if the family already has a live token.
        ``access_token``, when given, is saved in the same transaction (same grant, client and
        subject): both are stored or neither.
        """
        ...

    def get_refresh_token(
        self, token_hash: str, now: datetime.datetime
    ) -> RefreshTokenRecord | None:
        """The token if it is live, unexpired and its grant not revoked."""
        ...

    def get_refresh_token_session(
        self, token_hash: str, now: datetime.datetime
    ) -> tuple[RefreshTokenRecord, SsoSession | None] | None:
        """:meth:`get_refresh_token` with its grant's SSO session, in one read (the refresh
        grant needs both). The session is ``None`` as for :meth:`get_access_token_session`."""
        ...

    def rotate_refresh_token(
        self,
        old_hash: str,
        new: RefreshTokenRecord,
        now: datetime.datetime,
        *,
        access_token: AccessTokenRecord | None = None,
    ) -> RefreshTokenRecord:
        """Exchange a live refresh token for ``new``; return the old record (RFC 9700 §4.14.2).

        Atomic: the old token becomes ``rotated`` and ``new`` becomes the family's only live
        token. Presenting a rotated token again revokes the family and raises
        :class:`RefreshTokenReuseError`; unknown, expired or revoked tokens raise
        :class:`RefreshTokenNotFoundError`. ``new`` must be in the same grant and client.
        ``access_token``, when given, is saved in the same transaction (same grant, client and
        subject), so the client gets both new tokens or neither and keeps its old refresh token.
        """
        ...

    # SSO sessions

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

    # upstream login transactions

    def save_login_transaction(self, transaction: LoginTransaction) -> None: ...

    def consume_login_transaction(
        self, state_hash: str, now: datetime.datetime
    ) -> LoginTransaction:
        """Take a transaction exactly once (``state`` is single use, RFC 6749 §10.12).

        Raises :class:`LoginTransactionNotFoundError` if unknown, expired or consumed.
        """
        ...

    # second factor (TOTP, recovery codes, attempt counters)

    def save_totp_credential(self, credential: TotpCredential) -> None:
        """Store a pending (unconfirmed) credential, replacing a pending one (enrolment restarted).

        Raises :class:`DuplicateRecordError` if the subject already has a confirmed credential
        (it must be deleted first) and :class:`SubjectNotFoundError` if the subject is unknown.
        """
        ...

    def get_totp_credential(self, subject: str) -> TotpCredential | None: ...

    def confirm_totp_credential(
        self,
        subject: str,
        secret: bytes,
        step: int,
        recovery_codes: Sequence[RecoveryCode],
        now: datetime.datetime,
    ) -> bool:
        """Confirm the pending credential that holds exactly ``secret``; accept ``step``.

        Atomic, with the subject's recovery codes replaced by ``recovery_codes``. ``False`` (and
        nothing written) if there is no such pending credential: it was confirmed by a
        concurrent call, restarted with another secret, or deleted.
        """
        ...

    def delete_totp_credential(self, subject: str) -> bool:
        """Remove the credential and its recovery codes; ``False`` if there was none."""
        ...

    def accept_totp_step(self, subject: str, step: int, now: datetime.datetime) -> bool:
        """Accept a time step of a confirmed credential, once (RFC 6238 §5.2).

        One conditional update: ``True`` only if ``step`` is newer than every step accepted
        before. Of concurrent callers with the same step exactly one gets ``True``.
        """
        ...

    def list_recovery_codes(self, subject: str) -> list[RecoveryCode]:
        """The subject's recovery codes, used or not, by ``code_id``."""
        ...

    def replace_recovery_codes(self, subject: str, recovery_codes: Sequence[RecoveryCode]) -> None:
        """Replace every recovery code of a confirmed credential.

        Raises :class:`RecordNotFoundError` if the subject has no confirmed credential.
        """
        ...

    def use_recovery_code(self, subject: str, code_id: int, now: datetime.datetime) -> bool:
        """Spend a recovery code, once: ``False`` if it is unknown or was used before."""
        ...

    def record_failure(
        self, key: str, now: datetime.datetime, limit: int, lockout: datetime.timedelta
    ) -> datetime.datetime | None:
        """Count one failed attempt for ``key``; return the lock in force after it, if any.

        Failures count within ``lockout`` of the first one of a run; the ``limit``-th locks the
        key until ``now + lockout``. A failure while locked is counted but does not extend the
        lock. After the window or the lock has passed, counting starts again from one. Atomic
        and shared by every store on the same database (several gateway replicas).
        """
        ...

    def is_locked(self, key: str, now: datetime.datetime) -> datetime.datetime | None:
        """When the lock on ``key`` ends, if one is in force at ``now``."""
        ...

    def reset_failures(self, key: str) -> bool:
        """Forget the failures (and any lock) of ``key``; ``False`` if there were none."""
        ...

    # housekeeping

    # client assertions

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

    # consents

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

    def purge_expired(self, now: datetime.datetime) -> int:
        """Delete expired short-lived rows; return how many rows went.

        Attempt counters go once their window and any lock have passed.
        """
        ...


__all__ = [
    "AccessTokenRecord",
    "CodeNotFoundError",
    "CodeRecord",
    "CodeReplayedError",
    "DuplicateRecordError",
    "Grant",
    "GrantNotFoundError",
    "JsonObject",
    "LoginTransaction",
    "LoginTransactionNotFoundError",
    "RecordNotFoundError",
    "RecoveryCode",
    "RefreshTokenNotFoundError",
    "RefreshTokenRecord",
    "RefreshTokenReuseError",
    "RefreshTokenStatus",
    "RegistryDocument",
    "RegistryKind",
    "RevisionConflictError",
    "SessionNotFoundError",
    "SessionParticipant",
    "SsoSession",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "Subject",
    "SubjectLink",
    "SubjectLinkConflictError",
    "SubjectNotFoundError",
    "TotpCredential",
    "token_hash",
]
