"""Identity proofing as a pluggable step, and the verification result only.

**Proofing** (OpenID Connect for Identity Assurance 1.0, "IDA"). ``loa3`` is two factors and a
verified real name: ``verified_claims`` from a proofing provider the platform trusts, never a
region's say-so (:data:`gateway.assurance.REGION_LEVEL_LIMIT`). When a portal needs ``loa3``
and the SSO session is at ``loa2`` without them, the policies' verdict is ``PROOF``
(:class:`gateway.assurance.Verdict`); the sign-in waits at its step-up stage and the step-up
page sends the person here:

1. :meth:`ProofingService.start` sends them to the provider (an upstream OpenID Provider,
   reached through the broker exactly as a region is: state, nonce, PKCE, ``iss``, strict ID
   token checks, :mod:`gateway.broker`), the round trip kept in the pending authorization;
2. :meth:`ProofingService.complete` takes the round trip once, from this browser and for this
   session only, lets the broker check and redeem the answer, and keeps the provider's
   ``verified_claims`` (from its ID token, else from its UserInfo response, IDA §5, fetched
   by the broker with the provider's access token) only when (a) its ID token names the
   person of the session (the resident identity number, compared in full), and (b) every
   trust framework and claim in them is one the platform lets that provider vouch for
   (:func:`gateway.verified.checked_assertion`).
   Then, in one transaction, the claims are kept (sealed) with the session and the session is
   raised to ``loa3`` (:meth:`~gateway.store.contract.verified_claims.VerifiedClaimsStore.
   attach_verified_claims`), and the authorization resumes (:meth:`gateway.signin.SignIn.resume`).
   Every outcome leaves an audit record (``identity.proofed``), without claim values.

**Verification result only** (the 网号/网证 data-minimisation rule): a portal that holds a
person's access token may ask whether a name and identity number it already holds are the
signed-in person's (:meth:`ProofingService.verify`). It gets ``match`` true or false, never the
number: the number it sent is compared by its keyed hash (:func:`gateway.identity.identity_key`)
with the national subject's key, and the name with the verified name (else the region's).
A "no" is counted per portal and person in the store (every replica sees it): after
``verification_misses`` of them in ``verification_hold`` (settings; defaults
:data:`VERIFICATION_MISSES` and :data:`VERIFICATION_HOLD`), that portal gets no answer
about that person until the hold ends (:class:`VerificationHeld`, a 429). Without it the
answer would be an oracle: a portal that knows a person's birth date and home county could try
the thousand-odd remaining numbers in an afternoon and learn the number this rule withholds.

Protocol-free: no Flask.
"""

from __future__ import annotations

import hmac
import logging
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from gateway.assurance import PROOFED_LEVEL, STEP_UP_LEVEL
from gateway.broker import LoginTransaction, UpstreamIdentity
from gateway.broker.errors import UpstreamAccessDenied
from gateway.clock import Clock, utc_now
from gateway.errors import (
    CallbackNotRecognised,
    LoginExpired,
    ProofingNotAccepted,
    ProofingUnavailable,
    SignInFromAnotherBrowser,
    SignInLinkExpired,
)
from gateway.identity import IdentityNumberError, identity_key, parse_identity_number
from gateway.policy import known_level, level_rank
from gateway.registry import Region
from gateway.sealing import IdentitySealer
from gateway.sessions import SEALED_ID_NUMBER, Sessions
from gateway.settings import VERIFICATION_HOLD, VERIFICATION_MISSES, Settings
from gateway.signin import INTERACTION_LIFETIME, REGION_LEG_LIFETIME, Answer, SignIn
from gateway.store.contract import (
    AttemptStore,
    AuditEntry,
    AuditStore,
    PendingAuthorizationNotFoundError,
    PendingAuthorizationStore,
    PendingStage,
    SessionNotFoundError,
    SsoSession,
    SubjectStore,
    TokenStore,
    UpstreamLeg,
    token_hash,
)
from gateway.store.contract.verified_claims import VerifiedClaimsRecord, VerifiedClaimsStore
from gateway.verified import (
    VERIFIED_CLAIMS,
    ProofingProviderSettings,
    ProofingRefused,
    VerifiedClaimsService,
    checked_assertion,
)

log = logging.getLogger(__name__)

PROOFED_KIND = "identity.proofed"
VERIFICATION_KIND = "verification.checked"
MAX_NAME_LENGTH = 128
MAX_NUMBER_LENGTH = 32


class VerificationHeld(Exception):  # noqa: N818 - an answer (429), not a fault
    """This portal got ``verification_misses`` "no" answers about this person lately: no
    further answer until ``until`` (RFC 6585 §4 with ``Retry-After``)."""

    def __init__(self, until: datetime) -> None:
        super().__init__("verification held")
        self.until = until


class ProofingStore(
    PendingAuthorizationStore,
    VerifiedClaimsStore,
    AuditStore,
    SubjectStore,
    TokenStore,
    AttemptStore,
    Protocol,
):
    """What proofing and verification touch."""


class ProofingBroker(Protocol):
    """A proofing provider's OpenID Provider, as proofing uses it (a
    :class:`~gateway.broker.RegionClient`)."""

    def start_login(
        self, redirect_uri: str, *, ui_locales: str | None = None
    ) -> Any: ...  # LoginStart

    def finish_login(
        self,
        params: Mapping[str, str | Sequence[str]],
        transaction: LoginTransaction,
        *,
        userinfo_claims: Sequence[str] = (),
    ) -> UpstreamIdentity: ...


@dataclass(frozen=True)
class Verification:
    """The answer of :meth:`ProofingService.verify`: the result, never the data."""

    match: bool
    subject: str
    client_id: str


class ProofingService:
    """Proofing (start, complete) and the verification result, over one store."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: ProofingStore,
        sessions: Sessions,
        sealer: IdentitySealer,
        verified: VerifiedClaimsService,
        signin: SignIn,
        broker: Callable[[Region], ProofingBroker],
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sessions = sessions
        self.sealer = sealer
        self.verified = verified
        self.signin = signin
        self.broker = broker
        self.clock = clock

    @property
    def provider(self) -> ProofingProviderSettings | None:
        """Where a citizen who needs ``loa3`` is sent: the first configured provider."""
        providers = self.settings.proofing_providers
        return providers[0] if providers else None

    @property
    def callback_uri(self) -> str:
        return f"{self.settings.issuer_url}/proofing/callback"

    def due(self, session: SsoSession) -> bool:
        """Whether a session waiting at the step-up needs proofing rather than a second factor:
        a provider is configured and the session already has two factors (``loa2``)."""
        level = known_level(session.acr or "") or "loa1"
        return self.provider is not None and level_rank(level) == level_rank(STEP_UP_LEVEL)

    # -- the round trip --------------------------------------------------------------------------

    def start(self, pending_id: str | None, session_id: str | None) -> str:
        """Send the person to the proofing provider (OIDC Core §3.1.2.1): the round trip is
        kept in the pending authorization, which must wait at the step-up for this session."""
        session = self.signin.step_up_session(pending_id, session_id)  # LoginExpired if not
        provider = self.provider
        if provider is None or not self.due(session) or pending_id is None:
            raise ProofingUnavailable("no proofing provider, or this session is not due for it")
        now = self.clock()
        record = self.store.get_pending_authorization(token_hash(pending_id), now)
        if record is None or record.stage is not PendingStage.STEP_UP:  # pragma: no cover
            raise LoginExpired("the pending authorization moved on")
        start = self.broker(provider.region()).start_login(
            self.callback_uri, ui_locales=record.request.ui_locales
        )
        sent: LoginTransaction = start.transaction
        leg = UpstreamLeg(
            region=sent.region,
            state_hash=token_hash(sent.state),
            nonce=sent.nonce,
            code_verifier=sent.code_verifier,
            redirect_uri=sent.redirect_uri,
            started_at=sent.created_at,
            max_age=sent.max_age,
        )
        moved = replace(
            record, stage=PendingStage.AT_REGION, upstream=leg, expires_at=now + REGION_LEG_LIFETIME
        )
        try:
            self.store.update_pending_authorization(moved, (PendingStage.STEP_UP,), now)
        except PendingAuthorizationNotFoundError:
            raise LoginExpired("the pending authorization moved on or expired") from None
        url: str = start.url
        return url

    def complete(
        self,
        params: Mapping[str, Sequence[str]],
        pending_id: str | None,
        session_id: str | None,
    ) -> Answer:
        """The provider's answer at ``/proofing/callback`` (OIDC Core §3.1.2.5), checked, kept,
        and the portal's authorization resumed."""
        provider = self.provider
        states = params.get("state") or ()
        state = states[0] if len(states) == 1 else None
        if provider is None or not state:
            raise CallbackNotRecognised("a proofing callback without provider or state")
        now = self.clock()
        try:
            record = self.store.take_upstream_leg(token_hash(state), now)
        except PendingAuthorizationNotFoundError:
            raise SignInLinkExpired("proofing: no live round trip for this state") from None
        if not pending_id or not hmac.compare_digest(token_hash(pending_id), record.id_hash):
            raise SignInFromAnotherBrowser("proofing: the pending cookie is foreign")
        leg = record.upstream
        if leg is None or leg.region != provider.code:
            raise CallbackNotRecognised("proofing: the round trip was not to the provider")
        session = self.sessions.find(session_id, now)
        if session is None or session.session_hash != record.session_hash:
            raise LoginExpired("proofing: the SSO session is not the one that was sent")
        back = replace(
            record,
            stage=PendingStage.STEP_UP,
            upstream=None,
            expires_at=now + INTERACTION_LIFETIME,
        )
        try:
            # IDA §5: verified_claims may come in the ID token or the UserInfo response; the
            # broker asks the provider's userinfo endpoint when its ID token has none.
            identity = self.broker(provider.region()).finish_login(
                params, _transaction(leg, state), userinfo_claims=(VERIFIED_CLAIMS,)
            )
        except UpstreamAccessDenied:
            self._back(back, now)
            self._audit(session, provider, "cancelled", now)
            why = "identity proofing was cancelled"
            return self.signin.cannot_step_up(pending_id, session_id, why)
        try:
            elements = self._accepted(session, identity, provider)
        except ProofingRefused as refused:
            self._audit(session, provider, "refused", now, reason=str(refused))
            raise ProofingNotAccepted(str(refused)) from None
        kept = VerifiedClaimsRecord(
            session_hash=session.session_hash,
            subject=session.subject,
            provider=provider.id,
            sealed=self.verified.seal(elements, session.subject),
            verified_at=now,
        )
        amr = tuple(dict.fromkeys((*session.amr, *identity.amr)))
        try:
            self.store.attach_verified_claims(kept, PROOFED_LEVEL, amr, now)
        except SessionNotFoundError:
            raise LoginExpired("the SSO session ended during the proofing") from None
        self._audit(
            session,
            provider,
            "accepted",
            now,
            frameworks=sorted({e["verification"]["trust_framework"] for e in elements}),
            claims=sorted({name for e in elements for name in e["claims"]}),
        )
        self._back(back, now)
        return self.signin.resume(pending_id, session_id)

    def _accepted(
        self, session: SsoSession, identity: UpstreamIdentity, provider: ProofingProviderSettings
    ) -> list[dict[str, Any]]:
        """The provider's ``verified_claims`` if they are of this session's person and within
        what the provider may vouch for; :class:`ProofingRefused` otherwise."""
        sealed = session.claims.get(SEALED_ID_NUMBER)
        if not isinstance(sealed, str):
            raise ProofingRefused("the session holds no identity number to bind the proofing to")
        number = self.sealer.open_identity_number(sealed, session.subject)
        if not hmac.compare_digest(number.encode(), identity.identity_number.value.encode()):
            raise ProofingRefused(f"provider {provider.id} proofed another person")
        return checked_assertion(identity.claims.get(VERIFIED_CLAIMS), provider)

    def _back(self, record: Any, now: datetime) -> None:
        """The pending authorization back at the step-up, for :meth:`SignIn.resume`."""
        try:
            self.store.update_pending_authorization(record, (PendingStage.AT_REGION,), now)
        except PendingAuthorizationNotFoundError:
            raise LoginExpired("the pending authorization moved on or expired") from None

    def _audit(
        self,
        session: SsoSession,
        provider: ProofingProviderSettings,
        outcome: str,
        now: datetime,
        **details: Any,
    ) -> None:
        log.info(
            "proofing provider=%s subject=%s outcome=%s", provider.id, session.subject, outcome
        )
        self.store.append_audit(
            AuditEntry(
                kind=PROOFED_KIND,
                outcome=outcome,
                occurred_at=now,
                subject=session.subject,
                region=provider.code,
                level=PROOFED_LEVEL if outcome == "accepted" else session.acr,
                details={"provider": provider.id, **details},
            )
        )

    # -- the verification result only (网号/网证) ----------------------------------------------

    def token_client(self, access_token: str) -> str | None:
        """The portal a live access token of a person was issued to, or ``None``: what the
        per-portal limit counts before any comparison is made."""
        found = self.store.get_access_token_session(token_hash(access_token), self.clock())
        if found is None or found[1] is None or "openid" not in found[0].scope.split():
            return None
        return found[0].client_id

    def verify(self, access_token: str, name: str, id_number: str) -> Verification | None:
        """Whether ``name`` and ``id_number`` are the person of ``access_token`` (a live token
        of a portal, with ``openid``, whose sign-in's SSO session lives); ``None`` when the
        token is not such a token. The number is compared by its keyed hash only;
        :class:`VerificationHeld` while this portal's "no" answers about this person are
        spent (module docstring)."""
        now = self.clock()
        found = self.store.get_access_token_session(token_hash(access_token), now)
        if found is None:
            return None
        record, session, _ = found
        if session is None or "openid" not in record.scope.split():
            return None
        subject = self.store.get_subject(record.subject)
        if subject is None:
            return None
        misses = f"verification:{record.client_id}:{record.subject}"
        held = self.store.is_locked(misses, now)
        if held is not None:
            raise VerificationHeld(held)
        secret = self.settings.national_secret.get_secret_value().encode()
        try:
            key = identity_key(parse_identity_number(id_number.strip().upper()), secret)
        except IdentityNumberError:
            key = ""
        number_matches = hmac.compare_digest(key.encode(), subject.identity_key.encode())
        name_matches = any(
            hmac.compare_digest(_folded(name).encode(), _folded(known).encode())
            for known in self._names(session)
        )
        match = number_matches and name_matches
        if not match:
            self.store.record_failure(
                misses, now, self.settings.verification_misses, self.settings.verification_hold
            )
        self.store.append_audit(
            AuditEntry(
                kind=VERIFICATION_KIND,
                outcome="match" if match else "no_match",
                occurred_at=now,
                subject=record.subject,
                portal=record.client_id,
            )
        )
        return Verification(match, record.subject, record.client_id)

    def _names(self, session: SsoSession) -> list[str]:
        """The person's verified name(s), else the name the region asserted."""
        held = self.verified.held(session.session_hash, session.subject)
        verified = [
            e["claims"]["name"]
            for e in (held.elements if held is not None else ())
            if isinstance(e["claims"].get("name"), str)
        ]
        if verified:
            return verified
        asserted = session.claims.get("name")
        return [asserted] if isinstance(asserted, str) else []


def _folded(name: str) -> str:
    """A name as compared: NFKC (full-width forms, compatibility characters), no spaces."""
    return "".join(unicodedata.normalize("NFKC", name).split()).casefold()


def _transaction(leg: UpstreamLeg, state: str) -> LoginTransaction:
    return LoginTransaction(
        region=leg.region,
        state=state,
        nonce=leg.nonce,
        code_verifier=leg.code_verifier,
        redirect_uri=leg.redirect_uri,
        created_at=leg.started_at,
        max_age=leg.max_age,
    )


__all__ = [
    "PROOFED_KIND",
    "VERIFICATION_HOLD",  # the settings' defaults, from gateway.settings
    "VERIFICATION_KIND",
    "VERIFICATION_MISSES",
    "ProofingService",
    "ProofingStore",
    "Verification",
]
