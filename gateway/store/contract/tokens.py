"""Grants and what is issued under them: authorization codes, access and refresh tokens.

A grant is the aggregate: revoking it invalidates every code and token issued under it, and it
is the rotation family of its refresh tokens (RFC 9700 §4.14.2).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from gateway.store.contract.common import (
    JsonObject,
    RecordNotFoundError,
    StoreError,
    require_aware,
)
from gateway.store.contract.sessions import SsoSession

MAX_CLAIMS_REQUEST_BYTES = 4096
"""The longest ``claims`` request kept with a grant (UTF-8 JSON): the provider refuses a longer
parameter first (THREAT_MODEL row 7: bad input costs a refusal, never an unbounded row)."""


@dataclass(frozen=True)
class Grant:
    """One authorization of one client by one subject: the family of its codes and tokens.

    Revoking the grant invalidates every code, access token and refresh token issued under it
    (RFC 6749 §4.1.2 and §10.5 on code replay; RFC 9700 §4.14.2 on refresh token reuse).
    ``session_hash`` names the SSO session the grant was made in, if any. ``claims_request`` is
    the ``claims`` request parameter (OIDC Core §5.5) of the authorization that made it
    (normalised JSON, :func:`gateway.verified.parse_claims_request`), if the portal sent one:
    it applies to every ID token and userinfo answer issued under the grant (§5.5), and to
    nothing else.
    """

    grant_id: str
    client_id: str
    subject: str
    session_hash: str | None
    created_at: datetime.datetime
    revoked_at: datetime.datetime | None = None
    claims_request: str | None = None

    def __post_init__(self) -> None:
        require_aware(self, created_at=self.created_at, revoked_at=self.revoked_at)


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
        require_aware(self, expires_at=self.expires_at, redeemed_at=self.redeemed_at)


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
        require_aware(self, expires_at=self.expires_at)


class RefreshTokenStatus(StrEnum):
    """Where a refresh token is in its rotation life (RFC 9700 §4.14.2), as stored."""

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
        require_aware(self, expires_at=self.expires_at)


class RefreshTokenState(StrEnum):
    """What presenting a refresh token at ``now`` meets (:meth:`TokenStore.refresh_token_status`).

    Unlike :class:`RefreshTokenStatus` (what a stored row says), this folds in the clock and the
    grant: a live row of a revoked grant is ``revoked``, a live row past its expiry ``expired``.
    """

    ACTIVE = "active"  # live, unexpired, its grant live: it may be exchanged
    ROTATED = "rotated"  # exchanged once and replaced: presenting it again is reuse
    REVOKED = "revoked"  # it or its grant was revoked
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # never issued, or forgotten since (purged after its expiry)


@dataclass(frozen=True)
class RefreshTokenStanding:
    """The answer of :meth:`TokenStore.refresh_token_status`: the state and the family.

    ``grant_id`` names the token's grant (its rotation family), so that a caller who meets a
    ``rotated`` token can revoke the family (RFC 9700 §4.14.2); ``None`` when ``unknown``.
    """

    state: RefreshTokenState
    grant_id: str | None = None

    @property
    def reused(self) -> bool:
        """Presenting this token is reuse: it was rotated before (RFC 9700 §4.14.2)."""
        return self.state is RefreshTokenState.ROTATED


class GrantNotFoundError(RecordNotFoundError):
    """The grant is unknown or revoked: nothing may be issued under it."""


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


class TokenStore(Protocol):
    """Grants, their authorization codes, and their access and refresh tokens."""

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
        claims_request: str | None = None,
    ) -> tuple[CodeRecord, Grant]:
        """All an authorization response writes, in one transaction (or nothing).

        A new grant for ``code.client_id`` and ``subject`` (in the session ``session_hash``,
        which must be live: else :class:`SessionNotFoundError`; with the portal's
        ``claims_request``, ``ValueError`` when longer than :data:`MAX_CLAIMS_REQUEST_BYTES`),
        the portal added to that
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

    def redeem_code_session(
        self, code_hash: str, now: datetime.datetime
    ) -> tuple[CodeRecord, Grant, SsoSession | None]:
        """:meth:`redeem_code`, with the code's grant and that grant's SSO session while it
        lives (as :meth:`get_grant_session` reads them), in one read where the engine can: what
        a code exchange needs (RFC 6749 §4.1.3, OIDC Core §3.1.3.3). Same rules and errors as
        :meth:`redeem_code`."""
        ...

    # access tokens

    def save_access_token(self, token: AccessTokenRecord) -> None:
        """Store an issued access token under a live grant with the same client and subject."""
        ...

    def issue_access_token_grant(
        self, token: AccessTokenRecord, now: datetime.datetime
    ) -> tuple[AccessTokenRecord, Grant]:
        """A new grant of ``token.client_id`` for ``token.subject`` (in no SSO session) and
        ``token`` under it, in one transaction (or nothing): what a client credentials
        response writes (RFC 6749 §4.4.3). ``token.grant_id`` is ignored; the stored token,
        returned with the grant, carries the new grant's id. A duplicate token hash raises
        :class:`DuplicateRecordError` and leaves no grant behind.
        """
        ...

    def get_access_token(self, token_hash: str, now: datetime.datetime) -> AccessTokenRecord | None:
        """The token if it is known, unexpired and its grant not revoked (RFC 7662 §2.2)."""
        ...

    def get_access_token_session(
        self, token_hash: str, now: datetime.datetime
    ) -> tuple[AccessTokenRecord, SsoSession | None, str | None] | None:
        """:meth:`get_access_token` with its grant's SSO session and ``claims_request``
        (:attr:`Grant.claims_request`), in one read (userinfo, OIDC Core §5.3 and §5.5).

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
    ) -> tuple[RefreshTokenRecord, SsoSession | None, str | None] | None:
        """:meth:`get_refresh_token` with its grant's SSO session and ``claims_request``, in one
        read (the refresh grant needs all three: its ID token honours the grant's ``claims``
        request, OIDC Core §12.2). The session is ``None`` as for
        :meth:`get_access_token_session`."""
        ...

    def refresh_token_status(self, token_hash: str, now: datetime.datetime) -> RefreshTokenStanding:
        """Where a presented refresh token stands at ``now``, and its family; writes nothing.

        The question the refresh grant asks of a token it could not use: "was it rotated?"
        (RFC 9700 §4.14.2). ``rotated`` wins over everything else: a rotated token stays
        reuse after its grant is revoked or its expiry has passed, as for
        :meth:`rotate_refresh_token`. Then ``revoked`` (the token or its grant), ``expired``
        (from ``expires_at`` on), ``active``. A hash the store does not know is ``unknown``.
        """
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


__all__ = [
    "MAX_CLAIMS_REQUEST_BYTES",
    "AccessTokenRecord",
    "CodeNotFoundError",
    "CodeRecord",
    "CodeReplayedError",
    "Grant",
    "GrantNotFoundError",
    "RefreshTokenNotFoundError",
    "RefreshTokenRecord",
    "RefreshTokenReuseError",
    "RefreshTokenStanding",
    "RefreshTokenState",
    "RefreshTokenStatus",
    "TokenStore",
]
