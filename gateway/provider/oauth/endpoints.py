"""Revocation (RFC 7009), introspection (RFC 7662) and ``private_key_jwt`` client
authentication (OIDC Core §9, RFC 7523 §2.2).

Each is registered on the server as an instance made with that server; they reach the token
service through it (``self.server.tokens``), like the grants.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, cast

from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc.jwk import KeySet

from gateway.tokens import TokenService

from .adapters import PortalClient, StoredAccessToken, StoredRefreshToken, find_token

# A client assertion may live this long (RFC 7523 §3, item 4: the server may refuse a far-off
# exp); its jti is remembered for as long, so a replay within its lifetime is always caught.
ASSERTION_LIFETIME = timedelta(minutes=10)

Token = StoredAccessToken | StoredRefreshToken


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009: revoking either token of a grant ends the whole grant."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "none",
        "private_key_jwt",
    ]

    @property
    def tokens(self) -> TokenService:
        tokens: TokenService = self.server.tokens
        return tokens

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return find_token(self.tokens, token_string, token_type_hint)

    def revoke_token(self, token: Token, request: OAuth2Request) -> None:
        self.tokens.store.revoke_grant(token.record.grant_id, self.tokens.clock())


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662 for confidential portals: a portal may introspect only its own tokens."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]

    @property
    def tokens(self) -> TokenService:
        tokens: TokenService = self.server.tokens
        return tokens

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return find_token(self.tokens, token_string, token_type_hint)

    def check_permission(self, token: Token, client: PortalClient, request: OAuth2Request) -> bool:
        return bool(token.record.client_id == client.client_id)

    def introspect_token(self, token: Token) -> dict[str, Any]:
        record = token.record
        tokens = self.tokens
        portal = tokens.registry.portal(record.client_id)
        subject = record.subject
        if portal is not None and subject != record.client_id:
            subject = tokens.subject_for(portal, subject)
        return {
            "active": True,
            "client_id": record.client_id,
            "scope": record.scope,
            "sub": subject,
            "exp": int(record.expires_at.timestamp()),
            "iss": tokens.settings.issuer_url,
            "token_type": "Bearer" if isinstance(token, StoredAccessToken) else "refresh_token",
        }


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """``private_key_jwt`` (OIDC Core §9, RFC 7523 §2.2) against the portal's registered JWKS."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, tokens: TokenService) -> None:
        issuer = tokens.settings.issuer_url
        super().__init__(validate_jti=True, leeway=30)
        self.tokens = tokens
        self.audiences = [issuer, f"{issuer}/token", f"{issuer}/revoke", f"{issuer}/introspect"]

    def get_audiences(self) -> list[str]:
        return self.audiences

    def validate_jti(self, claims: Any, jti: str) -> bool:
        """One use per assertion (RFC 7523 §3, item 7), remembered in the store until it expires:
        a replay is refused whichever worker or replica it reaches."""
        now = self.tokens.clock()
        remember = ASSERTION_LIFETIME + timedelta(seconds=self.leeway)
        if claims["exp"] > (now + remember).timestamp():
            raise InvalidClientError(description="the assertion expires too late")
        return self.tokens.store.use_assertion(str(claims["sub"]), jti, now + remember, now)

    def resolve_client_public_key(self, client: PortalClient) -> Any:
        return KeySet.import_key_set(cast(Any, client.portal.jwks or {"keys": []}))


__all__ = ["ASSERTION_LIFETIME", "Introspection", "PrivateKeyJwt", "Revocation"]
