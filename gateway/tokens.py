"""What the OpenID Provider issues to portals: codes, tokens, ID tokens, and the claims in them.

Protocol-free (no Flask, no Authlib): the sign-in (:mod:`gateway.signin`) issues a code here,
and the grants of :mod:`gateway.provider.oauth` redeem it, rotate refresh tokens and sign ID
tokens here. Every secret handed out (code, access token, refresh token) is stored by its hash
only (:func:`~gateway.store.contract.token_hash`).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from gateway.assurance import Assurance, SignIn, reported_acr
from gateway.clock import Clock, utc_now
from gateway.keys import KeyRing, TokenRejectedError, half_hash
from gateway.observe import Events
from gateway.policy import ID_NUMBER_CLAIM, SCOPE_CLAIMS
from gateway.registry import Portal, Registry
from gateway.sealing import IdentitySealer
from gateway.sessions import SEALED_ID_NUMBER
from gateway.settings import Settings
from gateway.store.contract import (
    AccessTokenRecord,
    AuthorizationRequest,
    CodeRecord,
    ConsentStore,
    Grant,
    RefreshTokenRecord,
    ReplayStore,
    SsoSession,
    TokenStore,
    token_hash,
)
from gateway.verified import (
    VERIFIED_CLAIMS,
    ClaimsRequest,
    ClaimsRequestError,
    VerifiedClaimsService,
    parse_claims_request,
)

ACCESS_TOKEN_BYTES = 32
CODE_BYTES = 36  # 48 URL-safe characters, the length Authlib gave codes


class TokenServiceStore(TokenStore, ConsentStore, ReplayStore, Protocol):
    """What the token side keeps: grants and tokens, consents, used client assertions."""


@dataclass(frozen=True)
class User:
    """The person behind a grant, as the provider needs them for one portal."""

    subject: str
    session_hash: str | None = None
    auth_time: datetime | None = None
    acr: str | None = None
    amr: tuple[str, ...] = ()
    claims: dict[str, Any] = field(default_factory=dict)
    # When the SSO session of the sign-in ends: no refresh token outlives it.
    session_expires_at: datetime | None = None
    # The portal's ``claims`` request of the authorization behind the grant (OIDC Core §5.5;
    # Grant.claims_request), read with the grant: None when it sent none.
    claims_request: str | None = None

    @classmethod
    def from_session(cls, session: SsoSession, claims_request: str | None = None) -> User:
        return cls(
            session.subject,
            session.session_hash,
            session.auth_time,
            session.acr,
            session.amr,
            dict(session.claims),
            session.expires_at,
            claims_request,
        )

    def get_user_id(self) -> str:
        return self.subject

    def sign_in(self) -> SignIn:
        """What policies may know of this sign-in."""
        home = self.claims.get("home_region")
        return SignIn(self.subject, home if isinstance(home, str) else "", self.acr, self.amr)


@dataclass(frozen=True)
class BearerRefusal:
    """Why a bearer token gets no answer (RFC 6750 §3.1): error code, text, HTTP status."""

    error: str
    description: str
    status: int


class TokenService:
    """The token side of the OpenID Provider: issuing, rotating, revoking, introspecting."""

    def __init__(
        self,
        settings: Settings,
        store: TokenServiceStore,
        registry: Registry,
        keys: KeyRing,
        sealer: IdentitySealer,
        assurance: Assurance,
        clock: Clock = utc_now,
        *,
        events: Events | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.keys = keys
        self.sealer = sealer
        self.assurance = assurance
        self.clock = clock
        # Where a grant that issued tokens says so (TokenIssued, emitted by the grants of
        # gateway.provider.oauth); a service built without one (unit tests) has its own.
        self.events = events if events is not None else Events()
        self._pairwise = settings.pairwise_secret.get_secret_value().encode()
        # Verified claims (gateway.verified), wired by gateway.services.
        self.verified: VerifiedClaimsService | None = None
        # Further claims for the ID token and userinfo (acting for an enterprise:
        # gateway.mandates.Mandates.claims), wired by gateway.services.
        self.claim_sources: list[Callable[[Portal, User, str], dict[str, Any]]] = []

    # -- portals and people ------------------------------------------------------------------

    def portal(self, client_id: str | None) -> Portal | None:
        """The registered, enabled portal ``client_id`` names, if any."""
        if not client_id:
            return None
        portal = self.registry.portal(client_id)
        if portal is None or not portal.enabled:
            return None
        return portal

    def subject_for(self, portal: Portal, subject: str) -> str:
        """The ``sub`` a portal sees: the national subject, or pairwise (OIDC Core §8)."""
        return portal.subject_for(subject, self._pairwise)

    def hinted_subject(self, id_token_hint: str) -> str:
        """The ``sub`` an ``id_token_hint`` names (OIDC Core §3.1.2.1), ``""`` when the hint is
        not a token this gateway signed: such a hint names nobody. Only the signature counts;
        a hint may have expired."""
        try:
            sub = self.keys.verify(id_token_hint).get("sub")
        except TokenRejectedError:
            return ""
        return sub if isinstance(sub, str) else ""

    # -- claims ------------------------------------------------------------------------------

    def releasable(
        self, portal: Portal, user: User, scope: str, claims: str | ClaimsRequest | None = None
    ) -> set[str]:
        """The claims (names) the scopes or the ``claims`` request parameter (OIDC Core §5.5)
        ask for, the session holds and the policies release; :data:`VERIFIED_CLAIMS` when
        verified claims it asks for would be released (IDA §5, :mod:`gateway.verified`)."""
        request = _claims_request(claims)
        held = set(user.claims) | ({ID_NUMBER_CLAIM} if SEALED_ID_NUMBER in user.claims else set())
        wanted = {
            claim for name in scope.split() for claim in SCOPE_CLAIMS.get(name, ()) if claim in held
        }
        if request is not None:
            wanted |= {c for names in request.claims.values() for c in names if c in held}
        released = self.assurance.released(user.sign_in(), portal, wanted) if wanted else set()
        if (
            request is not None
            and self.verified is not None
            and request.wants_verified()
            and self.verified.releasable(portal, user, request)
        ):
            released.add(VERIFIED_CLAIMS)
        return released

    def missing_consent(self, portal: Portal, user: User, released: set[str]) -> set[str]:
        """Claims of ``released`` the registration reserves for consent not (yet) given;
        verified claims always need the person's own consent (the 网号/网证 rule)."""
        reserved = released & (set(portal.consent_claims) | {VERIFIED_CLAIMS})
        if not reserved:
            return set()
        consent = self.store.get_consent(user.subject, portal.client_id)
        return reserved - (consent.claims if consent is not None else frozenset())

    def user_claims(
        self, portal: Portal, user: User, scope: str, target: str = "userinfo"
    ) -> dict[str, Any]:
        """Claims for the ID token and userinfo (OIDC Core §5.4): what the scopes ask for, the
        session holds, the policies release to this portal (data minimisation) and, for claims
        the registration reserves, what the person consented to. Claims asked for only by the
        portal's ``claims`` request (its grant's, read with it: ``user.claims_request``) go where
        it asked (``target``: ``id_token`` or ``userinfo``, OIDC Core §5.5), ``verified_claims``
        too (IDA §5)."""
        claims: dict[str, Any] = {"sub": self.subject_for(portal, user.subject)}
        request = _claims_request(user.claims_request)
        released = self.releasable(portal, user, scope, request)
        released -= self.missing_consent(portal, user, released)
        by_scope = {c for name in scope.split() for c in SCOPE_CLAIMS.get(name, ())}
        asked = request.claims.get(target, frozenset()) if request is not None else frozenset()
        for claim in sorted(released):
            if claim == VERIFIED_CLAIMS or (claim not in by_scope and claim not in asked):
                continue
            if claim == ID_NUMBER_CLAIM:
                sealed = user.claims[SEALED_ID_NUMBER]
                value = self.sealer.open_identity_number(sealed, user.subject)
            else:
                value = user.claims[claim]
            if request is None or request.accepts(target, claim, value):  # gateway.verified
                claims[claim] = value
        if VERIFIED_CLAIMS in released and self.verified is not None:
            verified = self.verified.claims_for(portal, user, request, target)
            if verified:
                claims[VERIFIED_CLAIMS] = verified[0] if len(verified) == 1 else verified
        for source in self.claim_sources:
            claims.update(source(portal, user, scope))
        return claims

    def userinfo(self, access_token: str) -> dict[str, Any] | BearerRefusal:
        """The UserInfo response for a bearer token (OIDC Core §5.3.2), or why not."""
        found = self.store.get_access_token_session(token_hash(access_token), self.clock())
        if found is None:
            return BearerRefusal("invalid_token", "the access token is not valid", 401)
        record, session, claims_request = found
        if "openid" not in record.scope.split():
            return BearerRefusal("insufficient_scope", "the token lacks the openid scope", 403)
        portal = self.registry.portal(record.client_id)
        if portal is None:
            return BearerRefusal("invalid_token", "the portal is no longer registered", 401)
        user = self.session_user(record.subject, session, claims_request)
        return self.user_claims(portal, user, record.scope)

    # -- the authorization code (RFC 6749 §4.1.2) ------------------------------------------

    def issue_code(self, request: AuthorizationRequest, user: User) -> str:
        """A single-use code for the portal's request (RFC 6749 §4.1.2): the grant (with the
        portal's ``claims`` request, for the tokens and userinfo answers issued under it, OIDC
        Core §5.5), the portal's place in the SSO session and the code are stored in one
        transaction, the code by its hash, bound to the client, redirect URI, scope, nonce and
        PKCE challenge."""
        code = secrets.token_urlsafe(CODE_BYTES)
        issued = self.clock()
        claims: dict[str, Any] = {"acr": user.acr, "amr": list(user.amr)}
        if user.auth_time is not None:
            claims["auth_time"] = int(user.auth_time.timestamp())
        self.store.issue_code(
            CodeRecord(
                code_hash=token_hash(code),
                grant_id="-",  # the store creates the grant
                client_id=request.client_id,
                redirect_uri=request.redirect_uri,
                scope=request.scope,
                nonce=request.nonce,
                code_challenge=request.code_challenge,
                code_challenge_method=request.code_challenge_method,
                claims=claims,
                expires_at=issued + self.settings.code_lifetime,
            ),
            user.subject,
            issued,
            session_hash=user.session_hash,
            sid=secrets.token_urlsafe(16),
            claims_request=request.claims,
        )
        return code

    # -- tokens (RFC 6749 §5.1, OIDC Core §3.1.3.3) ----------------------------------------

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
        issued = self.clock()
        claims = self.user_claims(portal, user, scope, "id_token")
        claims.update(
            {
                "iss": self.settings.issuer_url,
                "aud": portal.client_id,
                "iat": int(issued.timestamp()),
                "exp": int((issued + self.settings.id_token_lifetime).timestamp()),
                "at_hash": half_hash(access_token, portal.id_token_signed_response_alg),
            }
        )
        if user.auth_time is not None:
            claims["auth_time"] = int(user.auth_time.timestamp())
        if nonce:
            claims["nonce"] = nonce
        request = _claims_request(user.claims_request)
        acr = reported_acr(user.acr, request.acr() if request is not None else None)
        if acr:
            claims["acr"] = acr
        if user.amr:
            claims["amr"] = list(user.amr)
        if sid:
            claims["sid"] = sid
        return self.keys.sign(claims, alg=portal.id_token_signed_response_alg)

    def issue_tokens(
        self,
        client_id: str,
        grant_id: str,
        subject: str,
        scope: str,
        *,
        include_refresh_token: bool,
    ) -> dict[str, Any]:
        """A bearer access token (opaque, stored by hash) and optionally a refresh token."""
        token, record = self.new_access_token(client_id, grant_id, subject, scope)
        self.store.save_access_token(record)
        if include_refresh_token:
            token["refresh_token"] = secrets.token_urlsafe(ACCESS_TOKEN_BYTES)
        return token

    def issue_portal_token(self, client_id: str, scope: str) -> dict[str, Any]:
        """A client credentials response (RFC 6749 §4.4.3): a bearer access token whose
        subject is the portal itself, under a new grant of its own (so that revoking it ends
        that token only); the grant and the token are stored together, in one transaction."""
        token, record = self.new_access_token(client_id, "-", client_id, scope)
        self.store.issue_access_token_grant(record, self.clock())
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
            expires_at=self.clock() + lifetime,
        )
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access_token,
            "expires_in": int(lifetime.total_seconds()),
            "scope": scope,
        }
        return token, record

    def refresh_family_end(self, session_expires_at: datetime | None) -> datetime:
        """When a new family of refresh tokens ends, for good: ``refresh_token_lifetime`` from
        now, and never after the SSO session the grant was made in (``session_expires_at``).

        Rotation does not move it (RFC 9700 §4.14.2 leaves the lifetime to the server; here it
        is absolute): every token of the family expires at this instant, so a portal that keeps
        refreshing cannot keep a grant alive past the sign-in it came from.
        """
        end = self.clock() + self.settings.refresh_token_lifetime
        if session_expires_at is not None:
            end = min(end, session_expires_at)
        return end

    def refresh_record(
        self,
        value: str,
        client_id: str,
        grant_id: str,
        subject: str,
        scope: str,
        *,
        expires_at: datetime,
    ) -> RefreshTokenRecord:
        """A refresh token of a family that ends at ``expires_at`` (see
        :meth:`refresh_family_end`; a rotation passes its predecessor's)."""
        return RefreshTokenRecord(
            token_hash=token_hash(value),
            grant_id=grant_id,
            client_id=client_id,
            subject=subject,
            scope=scope,
            expires_at=expires_at,
        )

    def grant_user(self, grant_id: str, subject: str) -> tuple[Grant | None, User]:
        """A grant and its user, with the SSO session's facts while it lives: one store read.

        ``subject`` stands in when the grant is unknown (the caller then refuses the request).
        """
        found = self.store.get_grant_session(grant_id, self.clock())
        if found is None:
            return None, User(subject)
        grant, session = found
        return grant, self.session_user(grant.subject, session, grant.claims_request)

    @staticmethod
    def session_user(
        subject: str, session: SsoSession | None, claims_request: str | None = None
    ) -> User:
        """The user of a grant: with the SSO session's facts while it lives, else bare; with
        the grant's ``claims`` request either way (without a session it releases nothing)."""
        if session is None:
            return User(subject, claims_request=claims_request)
        return User.from_session(session, claims_request)


def _claims_request(claims: str | ClaimsRequest | None) -> ClaimsRequest | None:
    """A kept ``claims`` request, parsed (it was validated at ``/authorize``)."""
    if claims is None or isinstance(claims, ClaimsRequest):
        return claims
    return _parsed_claims_request(claims)


@functools.lru_cache(maxsize=1024)
def _parsed_claims_request(text: str) -> ClaimsRequest | None:
    """A kept ``claims`` request parsed once per process: a grant's text is read again by
    every refresh and userinfo answer (the parsed value is frozen; its mappings are not
    changed by any reader). At most 1,024 texts of at most 4 KiB each are held."""
    try:
        return parse_claims_request(text)
    except ClaimsRequestError:  # pragma: no cover - only validated requests are kept
        return None


__all__ = [
    "ACCESS_TOKEN_BYTES",
    "BearerRefusal",
    "TokenService",
    "TokenServiceStore",
    "User",
]
