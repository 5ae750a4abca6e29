"""Typed adapters: the gateway's records as Authlib's client, code and token models.

Authlib has no type hints and duck-types its models (``ClientMixin``, ``AuthorizationCodeMixin``,
``TokenMixin``); these classes give it the gateway's records and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from authlib.oauth2.rfc6749 import ClientMixin

from gateway.registry import Portal
from gateway.store.contract import AccessTokenRecord, CodeRecord, RefreshTokenRecord, token_hash
from gateway.tokens import TokenService, User


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

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scope less what the portal is not registered for (RFC 6749 §3.3)."""
        return self.portal.granted_scope(scope)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """The portal's rule (:meth:`Portal.accepts_redirect_uri`): exact string comparison
        (RFC 9700 §4.1.3), but for a native app's loopback URI, whose port may differ (RFC
        8252 §7.3). Authlib asks this at ``/authorize``; at the token endpoint it compares the
        code's redirect URI, as sent, with the one presented (RFC 6749 §4.1.3)."""
        return self.portal.accepts_redirect_uri(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return self.portal.check_secret(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return bool(method == self.portal.token_endpoint_auth_method.value)

    def check_response_type(self, response_type: str) -> bool:
        return bool(response_type == "code" and "authorization_code" in self.portal.grant_types)

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.portal.grant_types


class StoredCode:
    """An authorization code record as Authlib's ``AuthorizationCodeMixin``."""

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
    """A refresh-token record as Authlib's ``TokenMixin``, with the user it was read with."""

    def __init__(self, record: RefreshTokenRecord, value: str, user: User, now: datetime) -> None:
        self.record = record
        self.value = value
        self.user = user
        self.now = now

    def check_client(self, client: PortalClient) -> bool:
        return self.record.client_id == client.client_id

    def get_scope(self) -> str:
        return self.record.scope

    def get_expires_in(self) -> int:
        return int((self.record.expires_at - self.now).total_seconds())

    def is_expired(self) -> bool:
        return self.record.expires_at <= self.now

    def is_revoked(self) -> bool:
        return False


@dataclass(frozen=True)
class StoredAccessToken:
    """An access-token record, for revocation and introspection."""

    record: AccessTokenRecord
    now: datetime

    def check_client(self, client: PortalClient) -> bool:
        return self.record.client_id == client.client_id

    def get_scope(self) -> str:
        return self.record.scope

    def is_expired(self) -> bool:
        return self.record.expires_at <= self.now

    def is_revoked(self) -> bool:
        return False


def find_token(
    tokens: TokenService, value: str, hint: str | None
) -> StoredAccessToken | StoredRefreshToken | None:
    """The live token ``value`` is, looked up first as ``hint`` says (RFC 7009 §2.1)."""
    now = tokens.clock()
    hashed = token_hash(value)
    store = tokens.store
    if hint != "refresh_token":
        access = store.get_access_token(hashed, now)
        if access is not None:
            return StoredAccessToken(access, now)
    refresh = store.get_refresh_token(hashed, now)
    if refresh is not None:
        return StoredRefreshToken(refresh, value, User(refresh.subject), now)
    if hint == "refresh_token":
        access = store.get_access_token(hashed, now)
        if access is not None:
            return StoredAccessToken(access, now)
    return None


__all__ = ["PortalClient", "StoredAccessToken", "StoredCode", "StoredRefreshToken", "find_token"]
