"""Typed adapters between Authlib's authorization server and the gateway's services.

Authlib does the RFC 6749 / OIDC Core request validation and error mapping; the gateway decides
who the user is, what is stored and how tokens are signed. Everything Authlib needs is adapted
here, so no other module touches Authlib's untyped classes.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, cast

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core.grants import OpenIDCode
from flask import Request as FlaskRequest
from joserfc.jwk import KeySet

from gateway.assurance import Assurance, SignIn
from gateway.policy import ID_NUMBER_CLAIM, SCOPE_CLAIMS
from gateway.registry import AuthMethod, Portal
from gateway.services import Services
from gateway.sessions import SEALED_ID_NUMBER
from gateway.store.contract import (
    AccessTokenRecord,
    CodeNotFoundError,
    CodeRecord,
    CodeReplayedError,
    Grant,
    GrantNotFoundError,
    RefreshTokenNotFoundError,
    RefreshTokenRecord,
    RefreshTokenReuseError,
    SsoSession,
    token_hash,
)

ACCESS_TOKEN_BYTES = 32
# A client assertion may live this long (RFC 7523 §3, item 4: the server may refuse a far-off
# exp); its jti is remembered for as long, so a replay within its lifetime is always caught.
ASSERTION_LIFETIME = timedelta(minutes=10)


def now_utc() -> datetime:
    return datetime.now(UTC)


class PortalClient(ClientMixin):  # type: ignore[misc]
    """A registered portal as Authlib sees a client (RFC 6749 §2)."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.client_id = portal.client_id

    def get_client_id(self) -> str:
        return self.portal.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OIDC Core §3.1.2.1: redirect_uri is required, never defaulted.
        return None

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.portal.scopes) | {"openid", "offline_access"}
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact string comparison (RFC 9700 §4.1.3): no normalisation, no patterns."""
        return redirect_uri in self.portal.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.portal.check_secret(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return bool(method == self.portal.token_endpoint_auth_method.value)

    def check_response_type(self, response_type: str) -> bool:
        return bool(response_type == "code" and "authorization_code" in self.portal.grant_types)

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.portal.grant_types


@dataclass(frozen=True)
class User:
    """The person behind a grant, as the provider needs them for one portal."""

    subject: str
    session_hash: str | None = None
    auth_time: datetime | None = None
    acr: str | None = None
    amr: tuple[str, ...] = ()
    claims: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_session(cls, session: SsoSession, claims: dict[str, Any]) -> User:
        return cls(
            session.subject,
            session.session_hash,
            session.auth_time,
            session.acr,
            session.amr,
            claims,
        )

    def get_user_id(self) -> str:
        return self.subject

    def sign_in(self) -> SignIn:
        """What policies may know of this sign-in."""
        home = self.claims.get("home_region")
        return SignIn(self.subject, home if isinstance(home, str) else "", self.acr, self.amr)


class StoredCode:
    """An authorization code record as Authlib's AuthorizationCodeMixin."""

    def __init__(self, record: CodeRecord) -> None:
        self.record = record

    def get_redirect_uri(self) -> str:
        return self.record.redirect_uri

    def get_scope(self) -> str:
        return self.record.scope

    def get_nonce(self) -> str | None:
        return self.record.nonce

    def get_auth_time(self) -> int | None:
        value = self.record.claims.get("auth_time")
        return int(value) if value is not None else None

    def get_acr(self) -> str | None:
        acr = self.record.claims.get("acr")
        return str(acr) if acr is not None else None

    def get_amr(self) -> list[str] | None:
        amr = self.record.claims.get("amr")
        return list(amr) if amr else None


class StoredRefreshToken:
    """A refresh-token record as Authlib's TokenMixin, with the user it was read with."""

    def __init__(self, record: RefreshTokenRecord, value: str, user: User) -> None:
        self.record = record
        self.value = value
        self.user = user

    def check_client(self, client: PortalClient) -> bool:
        return self.record.client_id == client.client_id

    def get_scope(self) -> str:
        return self.record.scope

    def get_expires_in(self) -> int:
        return int((self.record.expires_at - now_utc()).total_seconds())

    def is_expired(self) -> bool:
        return self.record.expires_at <= now_utc()

    def is_revoked(self) -> bool:
        return False


@dataclass(frozen=True)
class StoredAccessToken:
    """An access-token record, for revocation and introspection."""

    record: AccessTokenRecord

    def check_client(self, client: PortalClient) -> bool:
        return self.record.client_id == client.client_id

    def get_scope(self) -> str:
        return self.record.scope

    def is_expired(self) -> bool:
        return self.record.expires_at <= now_utc()

    def is_revoked(self) -> bool:
        return False


class Provider:
    """The token side of the OpenID Provider: issuing, rotating, revoking, introspecting."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.store = services.store
        self.assurance = Assurance(services.policy)

    def client(self, client_id: str | None) -> PortalClient | None:
        if not client_id:
            return None
        portal = self.services.registry.portal(client_id)
        if portal is None or not portal.enabled:
            return None
        return PortalClient(portal)

    def subject_for(self, portal: Portal, subject: str) -> str:
        """The ``sub`` a portal sees: the national subject, or pairwise (OIDC Core §8)."""
        return portal.subject_for(
            subject, self.settings.pairwise_secret.get_secret_value().encode()
        )

    def releasable(self, portal: Portal, user: User, scope: str) -> set[str]:
        """The claims (names) the scopes ask for, the session holds and the policies release."""
        held = set(user.claims) | ({ID_NUMBER_CLAIM} if SEALED_ID_NUMBER in user.claims else set())
        wanted = {
            claim for name in scope.split() for claim in SCOPE_CLAIMS.get(name, ()) if claim in held
        }
        if not wanted:
            return set()
        return self.assurance.released(user.sign_in(), portal, wanted)

    def missing_consent(self, portal: Portal, user: User, released: set[str]) -> set[str]:
        """Claims of ``released`` the registration reserves for consent not (yet) given."""
        reserved = released & set(portal.consent_claims)
        if not reserved:
            return set()
        consent = self.store.get_consent(user.subject, portal.client_id)
        return reserved - (consent.claims if consent is not None else frozenset())

    def user_claims(self, portal: Portal, user: User, scope: str) -> dict[str, Any]:
        """Claims for the ID token and userinfo (OIDC Core §5.4): what the scopes ask for, the
        session holds, the policies release to this portal (data minimisation) and, for claims
        the registration reserves, what the person consented to."""
        claims: dict[str, Any] = {"sub": self.subject_for(portal, user.subject)}
        released = self.releasable(portal, user, scope)
        released -= self.missing_consent(portal, user, released)
        for claim in sorted(released):
            if claim == ID_NUMBER_CLAIM:
                sealed = user.claims[SEALED_ID_NUMBER]
                claims[claim] = self.services.sealer.open_identity_number(sealed, user.subject)
            else:
                claims[claim] = user.claims[claim]
        return claims

    def issue_id_token(
        self,
        portal: Portal,
        user: User,
        scope: str,
        *,
        nonce: str | None,
        access_token: str,
        sid: str | None,
    ) -> str:
        """An ID token (OIDC Core §2) signed by the national key."""
        issued = now_utc()
        claims = self.user_claims(portal, user, scope)
        claims.update(
            {
                "iss": self.settings.issuer_url,
                "aud": portal.client_id,
                "iat": int(issued.timestamp()),
                "exp": int((issued + self.settings.id_token_lifetime).timestamp()),
                "at_hash": half_hash(access_token),
            }
        )
        if user.auth_time is not None:
            claims["auth_time"] = int(user.auth_time.timestamp())
        if nonce:
            claims["nonce"] = nonce
        if user.acr:
            claims["acr"] = user.acr
        if user.amr:
            claims["amr"] = list(user.amr)
        if sid:
            claims["sid"] = sid
        return self.services.keys.sign(claims, alg=portal.id_token_signed_response_alg)

    def issue_tokens(
        self,
        client: PortalClient,
        grant_id: str,
        subject: str,
        scope: str,
        *,
        include_refresh_token: bool,
    ) -> dict[str, Any]:
        """A bearer access token (opaque, stored by hash) and optionally a refresh token."""
        token, record = self.new_access_token(client.client_id, grant_id, subject, scope)
        self.store.save_access_token(record)
        if include_refresh_token:
            token["refresh_token"] = secrets.token_urlsafe(ACCESS_TOKEN_BYTES)
        return token

    def new_access_token(
        self, client_id: str, grant_id: str, subject: str, scope: str
    ) -> tuple[dict[str, Any], AccessTokenRecord]:
        """A new bearer access token: the response fields, and the record to store (by hash)."""
        access_token = secrets.token_urlsafe(ACCESS_TOKEN_BYTES)
        lifetime = self.settings.access_token_lifetime
        record = AccessTokenRecord(
            token_hash=token_hash(access_token),
            grant_id=grant_id,
            client_id=client_id,
            subject=subject,
            scope=scope,
            expires_at=now_utc() + lifetime,
        )
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access_token,
            "expires_in": int(lifetime.total_seconds()),
            "scope": scope,
        }
        return token, record

    def refresh_record(
        self, value: str, client_id: str, grant_id: str, subject: str, scope: str
    ) -> RefreshTokenRecord:
        return RefreshTokenRecord(
            token_hash=token_hash(value),
            grant_id=grant_id,
            client_id=client_id,
            subject=subject,
            scope=scope,
            expires_at=now_utc() + self.settings.refresh_token_lifetime,
        )

    def grant_user(self, grant_id: str, subject: str) -> tuple[Grant | None, User]:
        """A grant and its user, with the SSO session's facts while it lives: one store read.

        ``subject`` stands in when the grant is unknown (the caller then refuses the request).
        """
        found = self.store.get_grant_session(grant_id, now_utc())
        if found is None:
            return None, User(subject)
        grant, session = found
        return grant, self.session_user(grant.subject, session)

    @staticmethod
    def session_user(subject: str, session: SsoSession | None) -> User:
        """The user of a grant: with the SSO session's facts while it lives, else bare."""
        if session is None:
            return User(subject)
        return User.from_session(session, dict(session.claims))


def half_hash(value: str) -> str:
    """``at_hash``: the left half of SHA-256 of the token, base64url (OIDC Core §3.1.3.6)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only (RFC 9700 §2.1.1): ``plain`` is refused, public clients must use it."""

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
    """Adds the ID token to the code grant's token response, signed by the key ring."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False  # codes are single-use; a nonce is bound to its code

    def process_token(self, grant: Any, response: Any) -> dict[str, Any]:
        _, token, _ = response
        if "openid" not in token.get("scope", "").split():
            return dict(token)
        request = grant.request
        record: CodeRecord = request.authorization_code.record
        token["id_token"] = self.provider.issue_id_token(
            request.client.portal,
            request.user,
            token["scope"],
            nonce=record.nonce,
            access_token=token["access_token"],
            sid=record.claims.get("sid"),
        )
        return dict(token)


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    """RFC 6749 §4.1 with single-use codes whose replay revokes the grant (§4.1.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "none",
        "private_key_jwt",
    ]
    provider: Provider

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        """The grant, the portal's place in the SSO session and the code: one transaction."""
        user: User = request.user
        client: PortalClient = request.client
        issued = now_utc()
        data = request.payload.data
        claims: dict[str, Any] = {"acr": user.acr, "amr": list(user.amr)}
        if user.auth_time is not None:
            claims["auth_time"] = int(user.auth_time.timestamp())
        self.provider.store.issue_code(
            CodeRecord(
                code_hash=token_hash(code),
                grant_id="-",  # the store creates the grant
                client_id=client.client_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.payload.scope,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                claims=claims,
                expires_at=issued + self.provider.settings.code_lifetime,
            ),
            user.subject,
            issued,
            session_hash=user.session_hash,
            sid=secrets.token_urlsafe(16),
        )

    def query_authorization_code(self, code: str, client: PortalClient) -> StoredCode | None:
        """Redeem atomically: the first caller wins, a replay revokes the grant."""
        try:
            record = self.provider.store.redeem_code(token_hash(code), now_utc())
        except CodeReplayedError:
            raise InvalidGrantError(
                "authorization code already used; its tokens are revoked"
            ) from None
        except CodeNotFoundError:
            return None
        if record.client_id != client.client_id:
            # A code presented by another client is burnt: RFC 6749 §4.1.3.
            self.provider.store.revoke_grant(record.grant_id, now_utc())
            return None
        return StoredCode(record)

    def delete_authorization_code(self, authorization_code: StoredCode) -> None:
        """Nothing to do: :meth:`query_authorization_code` already marked it redeemed."""

    def authenticate_user(self, authorization_code: StoredCode) -> User:
        grant, user = self.provider.grant_user(authorization_code.record.grant_id, "-")
        if grant is None or grant.revoked_at is not None:
            raise InvalidGrantError("the grant was revoked") from None
        claims = authorization_code.record.claims
        return User(
            user.subject,
            grant.session_hash,
            datetime.fromtimestamp(claims["auth_time"], UTC)
            if claims.get("auth_time")
            else user.auth_time,
            claims.get("acr"),
            tuple(claims.get("amr") or ()),
            user.claims,
        )

    def generate_token(
        self,
        user: User | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        assert user is not None  # noqa: S101 - the code grant always has a user
        record: CodeRecord = self.request.authorization_code.record
        scope = scope or ""
        token, access = self.provider.new_access_token(
            record.client_id, record.grant_id, user.subject, scope
        )
        if not include_refresh_token:
            self.provider.store.save_access_token(access)
            return token
        value = secrets.token_urlsafe(ACCESS_TOKEN_BYTES)
        refresh = self.provider.refresh_record(
            value, record.client_id, record.grant_id, user.subject, scope
        )
        # One transaction for both tokens (the grant row is locked once).
        self.provider.store.save_refresh_token(refresh, access_token=access)
        token["refresh_token"] = value
        return token


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    """RFC 6749 §6 with rotation and reuse detection (RFC 9700 §4.14.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "none",
        "private_key_jwt",
    ]
    INCLUDE_NEW_REFRESH_TOKEN = True
    provider: Provider

    def authenticate_refresh_token(self, refresh_token: str) -> StoredRefreshToken | None:
        now = now_utc()
        hashed = token_hash(refresh_token)
        found = self.provider.store.get_refresh_token_session(hashed, now)
        if found is None:
            self._detect_reuse(hashed, now)
            return None
        record, session = found
        return StoredRefreshToken(
            record, refresh_token, self.provider.session_user(record.subject, session)
        )

    def _detect_reuse(self, hashed: str, now: datetime) -> None:
        """A rotated token presented again revokes its family (RFC 9700 §4.14.2).

        ``get_refresh_token`` sees live tokens only; the store says what became of any other
        (``refresh_token_status``): a rotated one is a reuse, the rest (revoked, expired,
        unknown) is just an invalid grant.
        """
        standing = self.provider.store.refresh_token_status(hashed, now)
        if standing.reused and standing.grant_id is not None:
            self.provider.store.revoke_grant(standing.grant_id, now)
            raise InvalidGrantError("refresh token reused; every token of its grant is revoked")

    def authenticate_user(self, refresh_token: StoredRefreshToken) -> User:
        """The user read with the token (one store read for both)."""
        return refresh_token.user

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        old: StoredRefreshToken = self.request.refresh_token
        user = self.authenticate_user(old)
        self.request.user = user
        scope = self.request.payload.scope or old.record.scope
        new_value = secrets.token_urlsafe(ACCESS_TOKEN_BYTES)
        new = self.provider.refresh_record(
            new_value, old.record.client_id, old.record.grant_id, old.record.subject, scope
        )
        token, access = self.provider.new_access_token(
            old.record.client_id, old.record.grant_id, old.record.subject, scope
        )
        try:
            # One transaction: the client gets both new tokens, or neither and keeps the old one.
            self.provider.store.rotate_refresh_token(
                old.record.token_hash, new, now_utc(), access_token=access
            )
        except RefreshTokenReuseError:
            raise InvalidGrantError(
                "refresh token reused; every token of its grant is revoked"
            ) from None
        except (RefreshTokenNotFoundError, GrantNotFoundError):
            raise InvalidGrantError("refresh token is not valid") from None
        token["refresh_token"] = new_value
        portal = self.request.client.portal
        if "openid" in scope.split():
            token["id_token"] = self.provider.issue_id_token(
                portal,
                user,
                scope,
                nonce=None,
                access_token=token["access_token"],
                sid=None,
            )
        return 200, token, self.TOKEN_RESPONSE_HEADER


class PortalCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    """RFC 6749 §4.4 for portal back ends: the token's subject is the portal itself."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
    provider: Provider

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client: PortalClient = self.request.client
        scope = client.get_allowed_scope(self.request.payload.scope or "")
        scope = " ".join(s for s in scope.split() if s not in ("openid", "offline_access"))
        grant = self.provider.store.create_grant(client.client_id, client.client_id, now_utc())
        token = self.provider.issue_tokens(
            client, grant.grant_id, client.client_id, scope, include_refresh_token=False
        )
        return 200, token, self.TOKEN_RESPONSE_HEADER


def _find_token(provider: Provider, value: str, hint: str | None) -> Any:
    now = now_utc()
    hashed = token_hash(value)
    if hint != "refresh_token":
        access = provider.store.get_access_token(hashed, now)
        if access is not None:
            return StoredAccessToken(access)
    refresh = provider.store.get_refresh_token(hashed, now)
    if refresh is not None:
        return StoredRefreshToken(refresh, value, User(refresh.subject))
    if hint == "refresh_token":
        access = provider.store.get_access_token(hashed, now)
        if access is not None:
            return StoredAccessToken(access)
    return None


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009: revoking either token of a grant ends the whole grant."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "none",
        "private_key_jwt",
    ]
    provider: Provider

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return _find_token(self.provider, token_string, token_type_hint)

    def revoke_token(self, token: Any, request: OAuth2Request) -> None:
        self.provider.store.revoke_grant(token.record.grant_id, now_utc())


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662 for confidential portals: a portal may introspect only its own tokens."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
    provider: Provider

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return _find_token(self.provider, token_string, token_type_hint)

    def check_permission(self, token: Any, client: PortalClient, request: OAuth2Request) -> bool:
        return bool(token.record.client_id == client.client_id)

    def introspect_token(self, token: Any) -> dict[str, Any]:
        record = token.record
        portal = self.provider.services.registry.portal(record.client_id)
        subject = record.subject
        if portal is not None and subject != record.client_id:
            subject = self.provider.subject_for(portal, subject)
        return {
            "active": True,
            "client_id": record.client_id,
            "scope": record.scope,
            "sub": subject,
            "exp": int(record.expires_at.timestamp()),
            "iss": self.provider.settings.issuer_url,
            "token_type": "Bearer" if isinstance(token, StoredAccessToken) else "refresh_token",
        }


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """``private_key_jwt`` (OIDC Core §9, RFC 7523 §2.2) against the portal's registered JWKS."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, provider: Provider) -> None:
        issuer = provider.settings.issuer_url
        super().__init__(validate_jti=True, leeway=30)
        self.provider = provider
        self.audiences = [issuer, f"{issuer}/token", f"{issuer}/revoke", f"{issuer}/introspect"]

    def get_audiences(self) -> list[str]:
        return self.audiences

    def validate_jti(self, claims: Any, jti: str) -> bool:
        """One use per assertion (RFC 7523 §3, item 7), remembered in the store until it expires:
        a replay is refused whichever worker or replica it reaches."""
        now = now_utc()
        remember = ASSERTION_LIFETIME + timedelta(seconds=self.leeway)
        if claims["exp"] > (now + remember).timestamp():
            raise InvalidClientError(description="the assertion expires too late")
        return self.provider.store.use_assertion(str(claims["sub"]), jti, now + remember, now)

    def resolve_client_public_key(self, client: PortalClient) -> Any:
        return KeySet.import_key_set(cast(Any, client.portal.jwks or {"keys": []}))


class GatewayAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's Flask server, which can also answer an authorization request other than the
    current HTTP request: ``/callback`` resumes the portal's request it carried through the
    region round trip, without sending the browser back to ``/authorize`` first."""

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, FlaskRequest):
            return FlaskOAuth2Request(request)
        return super().create_oauth2_request(request)


def build_authorization_server(
    services: Services,
) -> tuple[GatewayAuthorizationServer, Provider]:
    """The Authlib server with the gateway's grants, endpoints and client authentication."""
    provider = Provider(services)
    server = GatewayAuthorizationServer(query_client=provider.client, save_token=lambda *_: None)
    server.register_token_generator("default", _no_default_generator)
    for grant_class in (CodeGrant, RefreshGrant, PortalCredentialsGrant):
        grant_class.provider = provider
    server.register_grant(CodeGrant, [S256Only(required=True), OpenIDCodeExtension(provider)])
    server.register_grant(RefreshGrant)
    server.register_grant(PortalCredentialsGrant)
    for endpoint_class in (Revocation, Introspection):
        endpoint_class.provider = provider
        server.register_endpoint(endpoint_class)
    server.register_client_auth_method(PrivateKeyJwt.CLIENT_AUTH_METHOD, PrivateKeyJwt(provider))
    issuer = services.settings.issuer_url
    server.register_extension(_Issuer(issuer))
    return server, provider


class _Issuer(IssuerParameter):  # type: ignore[misc]
    """RFC 9207: ``iss`` in every authorization response, errors included."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


def _no_default_generator(**_: Any) -> dict[str, Any]:
    raise RuntimeError("every grant issues its own tokens")


__all__ = ["AuthMethod", "Provider", "User", "build_authorization_server"]
