"""The grants at the token endpoint: authorization code (RFC 6749 §4.1, OIDC Core §3.1.3),
refresh token (RFC 6749 §6) and client credentials (RFC 6749 §4.4).

Authlib validates each token request and authenticates the client; what a grant issues comes
from :class:`~gateway.tokens.TokenService`, which every grant reaches through the server that
made it (``self.server.tokens``): Authlib makes a grant per request, from the registered class,
with the server instance, so nothing is kept on the classes.

The authorization half of the code grant is not here: the sign-in (:mod:`gateway.signin`)
answers the portal's validated request with :meth:`TokenService.issue_code`. This module starts
where the portal comes back with that code.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants import OpenIDCode

from gateway.observe import TokenIssued
from gateway.store.contract import (
    CodeNotFoundError,
    CodeRecord,
    CodeReplayedError,
    Grant,
    GrantNotFoundError,
    RefreshTokenNotFoundError,
    RefreshTokenReuseError,
    SsoSession,
    token_hash,
)
from gateway.tokens import ACCESS_TOKEN_BYTES, TokenService, User

from .adapters import PortalClient, StoredCode, StoredRefreshToken

TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]


class ServedGrant:
    """What every grant here shares: the token service, reached through its server."""

    server: Any  # the OAuthServer that made this grant (Authlib sets it per request)
    GRANT_TYPE: str  # Authlib's grant class says which (RFC 6749 §4.1.3, §4.4.2, §6)

    @property
    def tokens(self) -> TokenService:
        tokens: TokenService = self.server.tokens
        return tokens

    def issued(self, client_id: str) -> None:
        """Say that this grant answered with tokens (:class:`~gateway.observe.TokenIssued`):
        called once per successful token response, after what it issued is stored."""
        self.tokens.events.emit(TokenIssued(portal=client_id, grant_type=self.GRANT_TYPE))


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only (RFC 9700 §2.1.1): ``plain`` is refused, public clients must use it.

    Checked when the authorization request is validated (RFC 7636 §4.4.1) and again when the
    code is redeemed (§4.6).
    """

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        request: OAuth2Request = grant.request
        data = request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        if request.client.portal.is_public and not data.get("code_challenge"):
            raise InvalidRequestError("PKCE (code_challenge with S256) is required")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: StoredCode) -> str | None:
        return authorization_code.record.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: StoredCode) -> str:
        return authorization_code.record.code_challenge_method or "S256"


class OpenIDCodeExtension(OpenIDCode):  # type: ignore[misc]
    """Adds the ID token to the code grant's token response (OIDC Core §3.1.3.3)."""

    def __init__(self) -> None:
        super().__init__(require_nonce=False)

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False  # codes are single-use; a nonce is bound to its code

    def process_token(self, grant: CodeGrant, response: Any) -> dict[str, Any]:
        _, token, _ = response
        if "openid" not in token.get("scope", "").split():
            return dict(token)
        request = grant.request
        record: CodeRecord = request.authorization_code.record
        token["id_token"] = grant.tokens.issue_id_token(
            request.client.portal,
            request.user,
            token["scope"],
            nonce=record.nonce,
            access_token=token["access_token"],
            sid=record.claims.get("sid"),
        )
        return dict(token)


class CodeGrant(ServedGrant, grants.AuthorizationCodeGrant):  # type: ignore[misc]
    """RFC 6749 §4.1.3-4.1.4: single-use codes, whose replay revokes the grant (§4.1.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(TOKEN_AUTH_METHODS)
    # The redeemed code's grant and live SSO session (Authlib makes a grant per request).
    redeemed: tuple[Grant, SsoSession | None] | None = None

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Authlib's response (RFC 6749 §4.1.4, with the ID token of OIDC Core §3.1.3.3),
        said once it stands: every token in it is stored by then (:meth:`generate_token`)."""
        response: tuple[int, dict[str, Any], list[tuple[str, str]]] = (
            super().create_token_response()
        )
        self.issued(self.request.client.client_id)
        return response

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        raise RuntimeError("codes are issued by the sign-in: TokenService.issue_code")

    def query_authorization_code(self, code: str, client: PortalClient) -> StoredCode | None:
        """Redeem atomically: the first caller wins, a replay revokes the grant."""
        now = self.tokens.clock()
        store = self.tokens.store
        try:
            record, grant, session = store.redeem_code_session(token_hash(code), now)
        except CodeReplayedError:
            raise InvalidGrantError(
                "authorization code already used; its tokens are revoked"
            ) from None
        except CodeNotFoundError:
            return None
        if record.client_id != client.client_id:
            # A code presented by another client is burnt: RFC 6749 §4.1.3.
            store.revoke_grant(record.grant_id, now)
            return None
        # Read with the code, in the same statement: authenticate_user needs no second read.
        self.redeemed = (grant, session)
        return StoredCode(record)

    def delete_authorization_code(self, authorization_code: StoredCode) -> None:
        """Nothing to do: :meth:`query_authorization_code` already marked it redeemed."""

    def authenticate_user(self, authorization_code: StoredCode) -> User:
        """The person the code was issued to, with the facts of the sign-in it recorded and the
        grant's ``claims`` request (OIDC Core §5.5), all read with the code."""
        if self.redeemed is not None:
            grant: Grant | None = self.redeemed[0]
            user = self.tokens.session_user(self.redeemed[0].subject, self.redeemed[1])
        else:  # pragma: no cover - Authlib redeems the code (query_authorization_code) first
            grant, user = self.tokens.grant_user(authorization_code.record.grant_id, "-")
        if grant is None or grant.revoked_at is not None:
            raise InvalidGrantError("the grant was revoked") from None
        claims = authorization_code.record.claims
        if grant.session_hash is not None and user.session_hash is None:
            # The sign-in's SSO session ended between the code and its redemption: nothing
            # issued now may outlive it.
            raise InvalidGrantError("the session of the sign-in has ended") from None
        return User(
            user.subject,
            grant.session_hash,
            datetime.fromtimestamp(claims["auth_time"], UTC)
            if claims.get("auth_time")
            else user.auth_time,
            claims.get("acr"),
            tuple(claims.get("amr") or ()),
            user.claims,
            user.session_expires_at,
            grant.claims_request,
        )

    def generate_token(
        self,
        user: User | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        """The access token, and a refresh token when the portal may refresh (RFC 6749 §5.1):
        both stored in one transaction (the grant row is locked once).

        ``scope`` is the code's, granted at ``/authorize``; it is cut again to the portal's
        registration as it stands now, in case that narrowed since (RFC 6749 §3.3). The
        refresh token's family ends ``refresh_token_lifetime`` from now or with the SSO
        session, whichever comes first (:meth:`TokenService.refresh_family_end`).
        """
        assert user is not None  # noqa: S101 - the code grant always has a user
        tokens = self.tokens
        record: CodeRecord = self.request.authorization_code.record
        scope = self.request.client.portal.granted_scope(scope)
        token, access = tokens.new_access_token(
            record.client_id, record.grant_id, user.subject, scope
        )
        if not include_refresh_token:
            tokens.store.save_access_token(access)
            return token
        value = secrets.token_urlsafe(ACCESS_TOKEN_BYTES)
        refresh = tokens.refresh_record(
            value,
            record.client_id,
            record.grant_id,
            user.subject,
            scope,
            expires_at=tokens.refresh_family_end(user.session_expires_at),
        )
        tokens.store.save_refresh_token(refresh, access_token=access)
        token["refresh_token"] = value
        return token


class RefreshGrant(ServedGrant, grants.RefreshTokenGrant):  # type: ignore[misc]
    """RFC 6749 §6 with rotation and reuse detection (RFC 9700 §4.14.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(TOKEN_AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> StoredRefreshToken | None:
        tokens = self.tokens
        now = tokens.clock()
        hashed = token_hash(refresh_token)
        found = tokens.store.get_refresh_token_session(hashed, now)
        if found is None:
            self._detect_reuse(hashed, now)
            return None
        record, session, claims_request = found
        user = tokens.session_user(record.subject, session, claims_request)
        return StoredRefreshToken(record, refresh_token, user, now)

    def _detect_reuse(self, hashed: str, now: datetime) -> None:
        """A rotated token presented again revokes its family (RFC 9700 §4.14.2).

        ``get_refresh_token_session`` sees live tokens only; the store says what became of any
        other (``refresh_token_status``): a rotated one is a reuse, the rest (revoked, expired,
        unknown) is just an invalid grant.
        """
        store = self.tokens.store
        standing = store.refresh_token_status(hashed, now)
        if standing.reused and standing.grant_id is not None:
            store.revoke_grant(standing.grant_id, now)
            raise InvalidGrantError("refresh token reused; every token of its grant is revoked")

    def authenticate_user(self, refresh_token: StoredRefreshToken) -> User:
        """The user read with the token (one store read for both), with the grant's ``claims``
        request: the new ID token honours it as the first did (OIDC Core §5.5, §12.2)."""
        return refresh_token.user

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Rotate: a new refresh token and access token for the old one, in one transaction,
        and a new ID token when the scope has ``openid`` (OIDC Core §12.2).

        The scope is never more than originally granted (RFC 6749 §6: Authlib refuses a wider
        request with ``invalid_scope``) nor than the portal is registered for now; when nothing
        is left, ``invalid_scope``. The new token ends when its family does (the first token's
        expiry, never later than the SSO session): rotation does not extend a grant.
        """
        tokens = self.tokens
        old: StoredRefreshToken = self.request.refresh_token
        user = self.authenticate_user(old)
        self.request.user = user
        original = old.record.scope.split()
        asked = self.request.payload.scope or old.record.scope
        registered = self.request.client.portal.granted_scope(asked).split()
        scope = " ".join(s for s in registered if s in original)
        if not scope:
            raise InvalidScopeError("the portal is no longer registered for any granted scope")
        expires_at = old.record.expires_at
        if user.session_expires_at is not None:
            expires_at = min(expires_at, user.session_expires_at)
        new_value = secrets.token_urlsafe(ACCESS_TOKEN_BYTES)
        new = tokens.refresh_record(
            new_value,
            old.record.client_id,
            old.record.grant_id,
            old.record.subject,
            scope,
            expires_at=expires_at,
        )
        token, access = tokens.new_access_token(
            old.record.client_id, old.record.grant_id, old.record.subject, scope
        )
        try:
            # One transaction: the client gets both new tokens, or neither and keeps the old one.
            tokens.store.rotate_refresh_token(
                old.record.token_hash, new, tokens.clock(), access_token=access
            )
        except RefreshTokenReuseError:
            raise InvalidGrantError(
                "refresh token reused; every token of its grant is revoked"
            ) from None
        except (RefreshTokenNotFoundError, GrantNotFoundError):
            raise InvalidGrantError("refresh token is not valid") from None
        token["refresh_token"] = new_value
        if "openid" in scope.split():
            token["id_token"] = tokens.issue_id_token(
                self.request.client.portal,
                user,
                scope,
                nonce=None,
                access_token=token["access_token"],
                sid=None,
            )
        self.issued(old.record.client_id)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class PortalCredentialsGrant(ServedGrant, grants.ClientCredentialsGrant):  # type: ignore[misc]
    """RFC 6749 §4.4 for portal back ends: the token's subject is the portal itself."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """The requested scopes the portal is registered for, less ``openid`` and
        ``offline_access`` (no person signs in here); ``invalid_scope`` when scopes were asked
        and none of them is left. No scope asked: a token with an empty scope, as before."""
        tokens = self.tokens
        client: PortalClient = self.request.client
        requested = self.request.payload.scope or ""
        scope = client.get_allowed_scope(requested)
        scope = " ".join(s for s in scope.split() if s not in ("openid", "offline_access"))
        if requested.strip() and not scope:
            raise InvalidScopeError("the portal is not registered for any requested scope")
        token = tokens.issue_portal_token(client.client_id, scope)
        self.issued(client.client_id)
        return 200, token, self.TOKEN_RESPONSE_HEADER


__all__ = [
    "CodeGrant",
    "OpenIDCodeExtension",
    "PortalCredentialsGrant",
    "RefreshGrant",
    "S256Only",
    "ServedGrant",
]
