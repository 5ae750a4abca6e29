"""The sign-in: a portal's authorization request, from ``/authorize`` to the portal's answer.

A state machine over ONE stored record, the pending authorization
(:mod:`gateway.store.contract.pending_authorizations`), in the spirit of Dex's
``server/authflow``. The portal's request is validated once, at ``/authorize``, by the provider
(:mod:`gateway.provider.oauth`), and from then on travels only in that record; the browser holds
the record's opaque id in a cookie, which also binds the round trip to the region to this
browser (RFC 6749 §10.12, RFC 9700 §4.7)::

    begin ─┬─ a live SSO session answers ──────────────────────────────► decide
           ├─ the portal named a region ─────────────────► AT_REGION
           └─ otherwise ─► CHOOSING ──choose──► AT_REGION ──complete──► decide
    decide ─┬─ the code, or an error, for the portal (the record is taken, once)
            ├─ STEP_UP ── the step-up pages ──stepped_up / resume──► decide
            └─ CONSENT ── the consent page ───consent──────────────► decide

Each method is one step a view calls with what it parsed (the portal's request, the region's
answer, the browser's cookies, a form) and returns what the browser gets next: an
:data:`Answer`. Protocol-free: no Flask, no Authlib; the tests drive it without HTTP.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gateway.assurance import (
    STEP_UP_LEVEL,
    Assurance,
    Verdict,
    region_acr_values,
    region_level,
    requested_acr,
)
from gateway.broker import LoginStart, LoginTransaction, UpstreamIdentity
from gateway.broker.errors import RegionUnavailable, StaleAuthentication, UpstreamAccessDenied
from gateway.clock import Clock, utc_now
from gateway.errors import (
    CallbackNotRecognised,
    ConsentRequestExpired,
    IdentityConflict,
    LoginExpired,
    NoEnterpriseToActFor,
    SignInFromAnotherBrowser,
    SignInLinkExpired,
    TongxingError,
    UnknownClient,
    UnregisteredRedirectUri,
)
from gateway.identity import identity_key
from gateway.mandates import SEAT_CLAIM, Choice, Mandates, accepts_enterprises, check_assertion
from gateway.mfa import REGION_LEVEL_CLAIM
from gateway.observe import (
    ConsentGiven,
    Events,
    IdentityLinked,
    MandateRefused,
    SignInCompleted,
    SignInFailed,
    SignInStarted,
)
from gateway.registry import Portal, Region, RegionKind, Registry
from gateway.sealing import IdentitySealer
from gateway.sessions import (
    SEALED_ID_NUMBER,
    SEALED_REGION_ID_TOKEN,
    Sessions,
    seal_region_id_token,
)
from gateway.settings import Settings
from gateway.store.contract import (
    AuthorizationRequest,
    ConsentStore,
    PendingAuthorization,
    PendingAuthorizationNotFoundError,
    PendingAuthorizationStore,
    PendingStage,
    SessionNotFoundError,
    SessionStore,
    SsoSession,
    SubjectLinkConflictError,
    SubjectStore,
    UpstreamLeg,
    token_hash,
)
from gateway.store.contract.mandates import MandateStore
from gateway.tokens import TokenService, User
from gateway.verified import (
    ClaimsRequest,
    ClaimsRequestError,
    IndividualRequest,
    parse_claims_request,
)

log = logging.getLogger(__name__)

REGION_LEG_LIFETIME = timedelta(minutes=10)
"""How long the chooser and a round trip to a region may take (renewed at each step)."""
INTERACTION_LIFETIME = timedelta(minutes=30)
"""How long a step-up (installing an authenticator included) or a consent page may take."""
WAITING = {
    PendingStage.CHOOSING: REGION_LEG_LIFETIME,
    PendingStage.AT_REGION: REGION_LEG_LIFETIME,
    PendingStage.STEP_UP: INTERACTION_LIFETIME,
    PendingStage.CONSENT: INTERACTION_LIFETIME,
    PendingStage.ACTING_FOR: INTERACTION_LIFETIME,
}
ID_BYTES = 32
CLOCK_SKEW = timedelta(seconds=10)
"""How far the region's clock may run behind ours when its ``auth_time`` is judged fresh."""


# --- what the browser gets next ------------------------------------------------------------------


@dataclass(frozen=True)
class PendingCookie:
    """The browser's handle on its pending authorization: the opaque id, for ``max_age`` s."""

    value: str = field(repr=False)
    max_age: int


@dataclass(frozen=True)
class SessionCookie:
    """The new SSO session's opaque id, for ``max_age`` seconds."""

    value: str = field(repr=False)
    max_age: int


@dataclass(frozen=True)
class ToPortal:
    """The authorization response at the portal's redirect URI (RFC 6749 §4.1.2, §4.1.2.1),
    with ``iss`` (RFC 9207): a code, or ``error`` (the pending authorization, if any, is over).
    """

    url: str = field(repr=False)  # it carries the code and the portal's state
    error: str | None = None


@dataclass(frozen=True)
class ToRegion:
    """The Authentication Request at the person's region (OIDC Core §3.1.2.1)."""

    url: str
    region: str
    pending: PendingCookie


@dataclass(frozen=True)
class ChooseRegion:
    """The chooser page: the enabled regions, provinces first; ``form`` ties the page's answer
    to this pending authorization; ``ui_locales`` is the portal's (OIDC Core §3.1.2.1), for
    which language leads."""

    regions: tuple[Region, ...]
    form: str
    pending: PendingCookie
    ui_locales: str | None = None


@dataclass(frozen=True)
class StepUp:
    """The second-factor pages must raise the SSO session before the portal is answered."""

    pending: PendingCookie


@dataclass(frozen=True)
class AskConsent:
    """The consent page: ``portal`` asks for ``claims`` its registration reserves for consent."""

    portal: Portal
    claims: tuple[str, ...]
    form: str
    pending: PendingCookie
    ui_locales: str | None = None  # the portal's (OIDC Core §3.1.2.1): which language leads


@dataclass(frozen=True)
class ChooseEnterprise:
    """The acting-for page (issue 16): at a portal that accepts enterprises, the person picks
    whom they act for (:meth:`SignIn.acting_for_page` gives its content)."""

    pending: PendingCookie


Answer = ToPortal | ToRegion | ChooseRegion | StepUp | AskConsent | ChooseEnterprise


@dataclass(frozen=True)
class ActingForPage:
    """What the acting-for page shows: the portal, the choices, the form handle."""

    portal: Portal
    choices: tuple[Choice, ...]
    form: str
    ui_locales: str | None = None


@dataclass(frozen=True)
class Completion:
    """The region's answer, handled: the new SSO session (``None`` when nobody signed in) and
    what the browser gets, or the error page it gets while the session stands."""

    answer: Answer | TongxingError
    session: SessionCookie | None


class RefusedRequest(Exception):  # noqa: N818 - named after what happened
    """A portal's request refused at ``/authorize``, before any record: ``error`` (RFC 6749
    §4.1.2.1, OIDC Core §3.1.2.6) goes to its verified ``redirect_uri`` with its ``state``."""

    def __init__(
        self,
        error: str,
        description: str | None,
        redirect_uri: str,
        state: str | None,
        client_id: str | None = None,
    ) -> None:
        super().__init__(f"{error}: {description or 'no description'}")
        self.client_id = client_id  # the verified client, for what is said of the refusal
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state


# --- what the sign-in needs --------------------------------------------------------------------


class SignInStore(
    PendingAuthorizationStore, SubjectStore, SessionStore, ConsentStore, MandateStore, Protocol
):
    """The aggregates a sign-in touches: its record, subjects, sessions, consents, and the
    enterprises and mandates of people acting for one (:mod:`gateway.mandates`)."""


class RegionBroker(Protocol):
    """A region's OpenID Provider, as the sign-in uses it: a :class:`~gateway.broker.RegionClient`
    (tests give another)."""

    def start_login(
        self,
        redirect_uri: str,
        *,
        prompt: str | None = None,
        max_age: int | None = None,
        login_hint: str | None = None,
        ui_locales: str | None = None,
        acr_values: str | Sequence[str] | None = None,
    ) -> LoginStart: ...

    def finish_login(
        self, params: Mapping[str, str | Sequence[str]], transaction: LoginTransaction
    ) -> UpstreamIdentity: ...


@dataclass(frozen=True)
class _Live:
    """A pending authorization this browser holds: its id (the cookie's value) and record."""

    id: str = field(repr=False)
    record: PendingAuthorization


@dataclass
class _Seen:
    """What a step of the sign-in has learned so far (portal, region, person): what is said
    of the failure it may end in (:class:`~gateway.observe.SignInFailed`)."""

    portal: str | None = None
    region: str | None = None
    subject: str | None = None

    def failed(self, events: Events, reason: str) -> None:
        events.emit(
            SignInFailed(
                portal=self.portal, region=self.region, reason=reason, subject=self.subject
            )
        )


class SignIn:
    """The sign-in service: one method per step, each over the one pending authorization."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: SignInStore,
        registry: Registry,
        sessions: Sessions,
        tokens: TokenService,
        assurance: Assurance,
        sealer: IdentitySealer,
        broker: Callable[[Region], RegionBroker],
        clock: Clock = utc_now,
        events: Events | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.sessions = sessions
        self.tokens = tokens
        self.assurance = assurance
        self.sealer = sealer
        self.broker = broker
        self.clock = clock
        # What happened, said once (gateway.observe); built without (unit tests): to nobody.
        self.events = events if events is not None else Events()
        # Enterprises, mandates, acting for one (issue 16): over the same store and events.
        self.mandates = Mandates(
            settings=settings,
            store=store,
            registry=registry,
            sealer=sealer,
            events=self.events,
            clock=clock,
        )

    @contextmanager
    def _step(self, portal: str | None = None, region: str | None = None) -> Iterator[_Seen]:
        """One step a view calls: a :class:`~gateway.errors.TongxingError` it ends in (the
        page the person is shown) is said as :class:`~gateway.observe.SignInFailed` with its
        code, naming what the step had learned; answers for the portal say their own."""
        seen = _Seen(portal, region)
        try:
            yield seen
        except TongxingError as error:
            seen.failed(self.events, error.code)
            raise

    # -- /authorize ---------------------------------------------------------------------------

    def begin(self, request: AuthorizationRequest, session_id: str | None) -> Answer:
        """A portal's validated request (OIDC Core §3.1.2.2): answered at once when the SSO
        session satisfies it (§3.1.2.3), else the person goes to their region, through the
        chooser unless the portal named one.

        The sign-in is said to have started (:class:`~gateway.observe.SignInStarted`) once it
        exists: answered from the SSO session, or its record stored. A request refused here
        at once is only said to have failed, as one refused at ``/authorize`` is.
        """
        with self._step(request.client_id, request.region) as seen:
            now = self.clock()
            user = self._session_user(request, self.sessions.find(session_id, now), now)
            if user is not None:
                seen.region, seen.subject = _home_region(user), user.subject
                self.events.emit(SignInStarted(portal=request.client_id, region=seen.region))
                return self._decide(request, user, None, now)
            if "none" in request.prompt:  # OIDC Core §3.1.2.6: no page may be shown
                return self._to_portal(request, None, "login_required", None, now)
            pending_id = secrets.token_urlsafe(ID_BYTES)
            region = self._enabled_region(request.region)
            if region is None:
                record = self._record(pending_id, request, PendingStage.CHOOSING, now)
                self.store.save_pending_authorization(record)
                self.events.emit(SignInStarted(portal=request.client_id, region=None))
                return self._chooser(pending_id, request.ui_locales)
            seen.region = region.code
            try:
                leg, url = self._start_leg(region, request)
            except ValueError as error:
                return self._to_portal(request, None, "invalid_request", str(error), now)
            record = self._record(pending_id, request, PendingStage.AT_REGION, now, upstream=leg)
            self.store.save_pending_authorization(record)
            self.events.emit(SignInStarted(portal=request.client_id, region=region.code))
            return ToRegion(url, region.code, self._cookie(pending_id, PendingStage.AT_REGION))

    def refused(self, refused: RefusedRequest) -> ToPortal:
        """The error a request refused at ``/authorize`` earned, for its verified redirect URI."""
        self.events.emit(SignInFailed(portal=refused.client_id, region=None, reason=refused.error))
        return ToPortal(
            self._error_url(
                refused.redirect_uri, refused.state, refused.error, refused.description
            ),
            refused.error,
        )

    def choose(self, pending_id: str | None, form: str | None, code: str | None) -> Answer:
        """The chooser's answer: go to region ``code`` (the chooser again if it is not one).

        Choosing again while at a region (the back button) starts a new round trip; the old
        ``state`` is no longer answered. The chooser's search (``q``, no region) lands here too
        and gets the chooser again, which the page filters.
        """
        with self._step() as seen:
            now = self.clock()
            stages = (PendingStage.CHOOSING, PendingStage.AT_REGION)
            live = self._live(pending_id, stages, now)
            if live is None or not _names(form, live):
                raise LoginExpired("the chooser's answer names no pending authorization here")
            seen.portal = live.record.request.client_id
            region = self._enabled_region(code)
            if region is None:
                self._move(live, stages, now, stage=PendingStage.CHOOSING, upstream=None)
                return self._chooser(live.id, live.record.request.ui_locales)
            seen.region = region.code
            try:
                leg, url = self._start_leg(region, live.record.request)
            except ValueError as error:
                request = live.record.request
                return self._to_portal(request, live, "invalid_request", str(error), now)
            self._move(live, stages, now, stage=PendingStage.AT_REGION, upstream=leg)
            return ToRegion(url, region.code, self._cookie(live.id, PendingStage.AT_REGION))

    # -- /callback/<region> -----------------------------------------------------------------

    def complete(
        self, code: str, params: Mapping[str, Sequence[str]], pending_id: str | None
    ) -> Completion:
        """The region's authorization response (OIDC Core §3.1.2.5) at its own callback.

        Takes the round trip its ``state`` names (once), checks that this browser started it,
        lets the broker check and redeem the response, links the national subject, opens the
        SSO session and answers the portal's request with it. A failure of the broker's checks
        (mix-up, signature, state, an unavailable region) is said with its stable code.
        """
        with self._step() as seen:
            region = self.registry.region(code)
            states = params.get("state") or ()
            state = states[0] if states else None
            if region is None or not state:
                raise CallbackNotRecognised(
                    f"callback for region {code[:40]!r}, state: {bool(state)}"
                )
            seen.region = region.code
            now = self.clock()
            try:
                record = self.store.take_upstream_leg(token_hash(state), now)
            except PendingAuthorizationNotFoundError:
                expired = f"region {region.code}: no live sign-in for this state"
                raise SignInLinkExpired(expired) from None
            if not pending_id or not hmac.compare_digest(token_hash(pending_id), record.id_hash):
                raise SignInFromAnotherBrowser(
                    f"region {region.code}: the pending cookie is foreign"
                )
            seen.portal = record.request.client_id
            live = _Live(pending_id, record)
            leg = record.upstream
            if leg is None:  # pragma: no cover - the store returns the leg it took
                raise SignInLinkExpired(f"region {region.code}: the sign-in has no round trip")
            if not region.enabled:
                raise RegionUnavailable(region.code, "the region was disabled during the sign-in")
            try:
                identity = self.broker(region).finish_login(params, _transaction(leg, state))
            except UpstreamAccessDenied:
                # The person said no at their region: the portal hears it (RFC 6749 §4.1.2.1).
                cancelled = "sign-in was cancelled at the region"
                answer = self._to_portal(record.request, live, "access_denied", cancelled, now)
                return Completion(answer, None)
            except StaleAuthentication:
                stale = "the region did not sign the person in again within max_age"
                answer = self._to_portal(record.request, live, "login_required", stale, now)
                return Completion(answer, None)
            stale_reason = _not_fresh(record.request, leg, identity.auth_time, now)
            if stale_reason is not None:
                # Never report a sign-in fresher than the region's (OIDC Core §3.1.2.6).
                answer = self._to_portal(record.request, live, "login_required", stale_reason, now)
                return Completion(answer, None)
            session_id, session = self._open_session(region, identity, now)
            seen.subject = session.subject
            self._note_new_link(session.subject, region.code, now)
            lifetime = int(self.settings.sso_session_lifetime.total_seconds())
            cookie = SessionCookie(session_id, lifetime)
            try:
                return Completion(self._signed_in(live, User.from_session(session), now), cookie)
            except TongxingError as error:
                # The portal's request no longer stands (say, the portal was removed meanwhile):
                # the person still signed in, so the SSO session is kept and the page says why.
                seen.failed(self.events, error.code)
                return Completion(error, cookie)

    # -- the step-up pages -------------------------------------------------------------------

    def step_up_session(self, pending_id: str | None, session_id: str | None) -> SsoSession:
        """The SSO session the second-factor pages are for: :class:`LoginExpired` unless this
        browser's pending authorization waits for a step-up of that very session."""
        with self._step():
            now = self.clock()
            found = self._waiting(pending_id, session_id, PendingStage.STEP_UP, now)
            if found is None:
                raise LoginExpired("no SSO session or no authorization request to step up for")
            return found[1]

    def stepped_up(self, session: SsoSession, amr: tuple[str, ...]) -> None:
        """Record a second factor in the SSO session: it now vouches for ``loa2``."""
        with self._step(region=session.region) as seen:
            seen.subject = session.subject
            methods = tuple(dict.fromkeys((*session.amr, *amr, "mfa")))
            try:
                self.store.raise_session_assurance(
                    session.session_hash, STEP_UP_LEVEL, methods, self.clock()
                )
            except SessionNotFoundError:
                raise LoginExpired("the SSO session ended during the step-up") from None

    def cannot_step_up(self, pending_id: str | None, session_id: str | None, why: str) -> Answer:
        """The step-up cannot happen (the person has no factor, and a password alone may not
        bind one: NIST SP 800-63B §6.1.2.1): the portal gets
        ``unmet_authentication_requirements`` (OIDC Core §3.1.2.6), as an unreachable level
        does in :meth:`_decide`."""
        with self._step():
            now = self.clock()
            found = self._waiting(pending_id, session_id, PendingStage.STEP_UP, now)
            if found is None:
                raise LoginExpired("no authorization request waits for this step-up")
            live, session = found
            return self._to_portal(
                live.record.request,
                live,
                "unmet_authentication_requirements",
                why,
                now,
                user=User.from_session(session),
            )

    def resume(self, pending_id: str | None, session_id: str | None) -> Answer:
        """After the step-up: decide again with the raised session."""
        with self._step() as seen:
            now = self.clock()
            found = self._waiting(pending_id, session_id, PendingStage.STEP_UP, now)
            if found is None:
                raise LoginExpired("no authorization request to resume after the step-up")
            live, session = found
            seen.portal, seen.region = live.record.request.client_id, session.region
            seen.subject = session.subject
            return self._decide(live.record.request, User.from_session(session), live, now)

    # -- the consent page --------------------------------------------------------------------

    def consent(
        self, pending_id: str | None, form: str | None, session_id: str | None, allow: bool
    ) -> Answer:
        """The consent page's answer: remembered when given (then decide again), else
        ``access_denied`` for the portal."""
        with self._step() as seen:
            now = self.clock()
            found = self._waiting(pending_id, session_id, PendingStage.CONSENT, now)
            if found is None or not _names(form, found[0]):
                raise ConsentRequestExpired("no pending consent, SSO session or matching form")
            live, session = found
            request = live.record.request
            seen.portal, seen.region = request.client_id, session.region
            seen.subject = session.subject
            user = User.from_session(session)
            if not allow:
                refused = "the person did not consent"
                return self._to_portal(request, live, "access_denied", refused, now, user=user)
            claims = frozenset(live.record.consent_claims)
            self.store.save_consent(session.subject, request.client_id, claims, now)
            self.events.emit(
                ConsentGiven(
                    subject=session.subject, portal=request.client_id, claims=tuple(sorted(claims))
                )
            )
            return self._decide(request, user, live, now)

    # -- the acting-for page (issue 16) ------------------------------------------------------

    def acting_for_page(self, pending_id: str | None, session_id: str | None) -> ActingForPage:
        """The acting-for page of this browser's sign-in: the portal and the choices as they
        stand now (a mandate revoked since is no longer offered)."""
        with self._step() as seen:
            now = self.clock()
            found = self._waiting(pending_id, session_id, PendingStage.ACTING_FOR, now)
            if found is None:
                raise LoginExpired("no sign-in waits for the choice of an enterprise")
            live, session = found
            request = live.record.request
            seen.portal, seen.region = request.client_id, session.region
            seen.subject = session.subject
            portal = self._portal(request, live, now)
            choices = tuple(self.mandates.choices(session, portal))
            return ActingForPage(portal, choices, form_handle(live.id), request.ui_locales)

    def act_for(
        self, pending_id: str | None, form: str | None, session_id: str | None, choice: str
    ) -> Answer:
        """The acting-for page's answer: the choice kept (:meth:`Mandates.choose`), then decide
        again. A choice that is no longer live (a mandate revoked or expired since the page was
        shown) is refused with a page (:class:`~gateway.errors.MandateNotLive`), said as
        :class:`~gateway.observe.MandateRefused`; the sign-in is over."""
        with self._step() as seen:
            now = self.clock()
            found = self._waiting(pending_id, session_id, PendingStage.ACTING_FOR, now)
            if found is None or not _names(form, found[0]):
                raise LoginExpired("no sign-in waits for this choice of an enterprise")
            live, session = found
            request = live.record.request
            seen.portal, seen.region = request.client_id, session.region
            seen.subject = session.subject
            portal = self._portal(request, live, now)
            try:
                self.mandates.choose(session, portal, live.record.id_hash, choice[:200])
            except TongxingError as error:
                named = choice.startswith("mandate:")
                mandate = choice.removeprefix("mandate:")[:64] if named else None
                self.events.emit(
                    MandateRefused(
                        subject=session.subject,
                        portal=portal.client_id,
                        reason=error.code,
                        mandate=mandate,
                    )
                )
                self._close(live, now, missing_ok=True)
                raise
            return self._decide(request, User.from_session(session), live, now)

    # -- deciding the answer -----------------------------------------------------------------

    def _decide(
        self, request: AuthorizationRequest, user: User, live: _Live | None, now: datetime
    ) -> Answer:
        """The portal's answer for a signed-in ``user``: the policies' verdict (enter, step up,
        or refuse), then consent to reserved claims, then the code (RFC 6749 §4.1.2).

        A refusal carries no personal data: only the error code, ``state`` and ``iss``. The
        code, once stored, is the sign-in completed (:class:`~gateway.observe.SignInCompleted`;
        ``single_sign_on`` when ``/authorize`` was answered from the SSO session at once).
        """
        portal = self._portal(request, live, now)
        if "authorization_code" not in portal.grant_types:
            refused = "The client is not authorized to use 'response_type=code'"
            return self._to_portal(request, live, "unauthorized_client", refused, now, user=user)
        none = "none" in request.prompt
        level = requested_acr(request.acr_values, _acr_claim(request))
        if level.unmeetable:  # OIDC Core §5.5.1.1: an essential acr no level here matches
            unmet = "the essential acr names no level of assurance the gateway knows"
            return self._to_portal(
                request, live, "unmet_authentication_requirements", unmet, now, user=user
            )
        outcome = self.assurance.evaluate(user.sign_in(), portal, level.acr_values)
        if outcome.verdict is Verdict.DENIED:
            denied = "the policies do not admit this person"
            return self._to_portal(request, live, "access_denied", denied, now, user=user)
        if outcome.verdict is Verdict.UNMET:
            unmet = f"{outcome.required_level} needs a sign-in at a region that can vouch for it"
            return self._to_portal(
                request, live, "unmet_authentication_requirements", unmet, now, user=user
            )
        if outcome.verdict in (Verdict.STEP_UP, Verdict.PROOF):  # PROOF: gateway.proofing
            if none:
                needed = "a second factor or identity proofing is required"
                return self._to_portal(
                    request, live, "interaction_required", needed, now, user=user
                )
            return StepUp(self._wait(request, live, PendingStage.STEP_UP, user, (), now))
        if accepts_enterprises(portal):
            acting = self._acting_for(request, portal, user, live, now)
            if acting is not None:
                return acting
        released = self.tokens.releasable(portal, user, request.scope, request.claims)
        missing = tuple(sorted(self.tokens.missing_consent(portal, user, released)))
        if missing:
            if none:
                asked = "the person has not consented to the requested claims"
                return self._to_portal(request, live, "consent_required", asked, now, user=user)
            pending = self._wait(request, live, PendingStage.CONSENT, user, missing, now)
            form = form_handle(pending.value)
            return AskConsent(portal, missing, form, pending, request.ui_locales)
        self._close(live, now)  # taken once, before the code exists
        code = self.tokens.issue_code(request, user)
        self.events.emit(
            SignInCompleted(
                subject=user.subject,
                portal=request.client_id,
                region=_home_region(user) or "",
                level=user.acr or "",
                amr=user.amr,
                single_sign_on=live is None,
            )
        )
        return ToPortal(self._code_url(request, code))

    def _acting_for(
        self,
        request: AuthorizationRequest,
        portal: Portal,
        user: User,
        live: _Live | None,
        now: datetime,
    ) -> Answer | None:
        """At a portal that accepts enterprises: the acting-for page, unless the person chose
        in this very sign-in already, or has no enterprise to act for at a portal that also
        serves people (``None``: go on). A portal serving enterprises only, for a person with
        nothing to act for, is refused with a page that says why
        (:class:`~gateway.errors.NoEnterpriseToActFor`), said as
        :class:`~gateway.observe.MandateRefused`; ``prompt=none`` gets
        ``interaction_required`` (OIDC Core §3.1.2.6)."""
        session = self.store.get_session(user.session_hash or "", now)
        if session is None:
            raise LoginExpired("the SSO session ended during the sign-in")
        if live is not None and self.mandates.chosen(
            session.session_hash, portal, live.record.id_hash
        ):
            return None
        choices = self.mandates.choices(session, portal)
        if not choices:
            if portal.subject_kinds == "both":
                return None
            self.events.emit(
                MandateRefused(
                    subject=user.subject, portal=portal.client_id, reason="no_enterprise"
                )
            )
            self._close(live, now, missing_ok=True)
            raise NoEnterpriseToActFor(f"portal {portal.client_id}: no seat and no mandate")
        if "none" in request.prompt:
            needed = "the person must choose the enterprise they act for"
            return self._to_portal(request, live, "interaction_required", needed, now, user=user)
        return ChooseEnterprise(self._wait(request, live, PendingStage.ACTING_FOR, user, (), now))

    def _signed_in(self, live: _Live, user: User, now: datetime) -> Answer:
        """The portal's answer right after a sign-in at the region, whose ``auth_time``
        :func:`_not_fresh` found to satisfy ``prompt=login`` and ``max_age``; an
        ``id_token_hint`` must name the person who signed in (OIDC Core §3.1.2.1), and so must
        a ``sub`` the ``claims`` parameter asks for with a value (§5.5.1)."""
        request = live.record.request
        required = _required_subjects(request)
        if required:
            portal = self._portal(request, live, now)
            if any(s != self.tokens.subject_for(portal, user.subject) for s in required):
                other = "the person who signed in is not the one the request names"
                return self._to_portal(request, live, "login_required", other, now, user=user)
        return self._decide(request, user, live, now)

    def _session_user(
        self, request: AuthorizationRequest, session: SsoSession | None, now: datetime
    ) -> User | None:
        """The SSO session's person, if the session satisfies the request (OIDC Core
        §3.1.2.1-3.1.2.3): ``prompt=login`` and an exceeded ``max_age`` ask for a fresh
        sign-in; an ``id_token_hint`` or a ``claims`` request's ``sub`` value (§5.5.1) naming
        someone else means this session does not answer.
        """
        if session is None or "login" in request.prompt:
            return None
        if request.max_age is not None and (now - session.auth_time).total_seconds() > (
            request.max_age
        ):
            return None
        required = _required_subjects(request)
        if required:
            portal = self.registry.portal(request.client_id)
            if portal is None:
                return None
            subject = self.tokens.subject_for(portal, session.subject)
            if any(s != subject for s in required):
                return None
        return User.from_session(session)

    def _portal(self, request: AuthorizationRequest, live: _Live | None, now: datetime) -> Portal:
        """The portal of the request, as registered now: a portal removed or a redirect URI
        unregistered while the person signed in gets a page, never a redirect (RFC 6749
        §4.1.2.1), and the pending authorization ends."""
        portal = self.tokens.portal(request.client_id)
        if portal is not None and portal.accepts_redirect_uri(request.redirect_uri):
            return portal
        self._close(live, now, missing_ok=True)
        if portal is None:
            raise UnknownClient(f"client {request.client_id[:60]!r} is no longer registered")
        raise UnregisteredRedirectUri("the redirect URI is no longer registered")

    # -- the record ---------------------------------------------------------------------------

    def _record(
        self,
        pending_id: str,
        request: AuthorizationRequest,
        stage: PendingStage,
        now: datetime,
        *,
        upstream: UpstreamLeg | None = None,
        session_hash: str | None = None,
        claims: tuple[str, ...] = (),
    ) -> PendingAuthorization:
        return PendingAuthorization(
            id_hash=token_hash(pending_id),
            request=request,
            stage=stage,
            expires_at=now + WAITING[stage],
            upstream=upstream,
            session_hash=session_hash,
            consent_claims=claims,
        )

    def _live(
        self, pending_id: str | None, stages: Collection[PendingStage], now: datetime
    ) -> _Live | None:
        """This browser's pending authorization, if it is live and at one of ``stages``."""
        if not pending_id or len(pending_id) > 128:
            return None
        record = self.store.get_pending_authorization(token_hash(pending_id), now)
        if record is None or record.stage not in stages:
            return None
        return _Live(pending_id, record)

    def _waiting(
        self,
        pending_id: str | None,
        session_id: str | None,
        stage: PendingStage,
        now: datetime,
    ) -> tuple[_Live, SsoSession] | None:
        """The pending authorization waiting at ``stage`` for this browser's SSO session."""
        live = self._live(pending_id, (stage,), now)
        session = self.sessions.find(session_id, now)
        if live is None or session is None or session.session_hash != live.record.session_hash:
            return None
        return live, session

    def _move(
        self,
        live: _Live,
        stages: Collection[PendingStage],
        now: datetime,
        *,
        stage: PendingStage,
        upstream: UpstreamLeg | None,
    ) -> None:
        moved = replace(
            live.record, stage=stage, upstream=upstream, expires_at=now + WAITING[stage]
        )
        try:
            self.store.update_pending_authorization(moved, stages, now)
        except PendingAuthorizationNotFoundError:
            raise LoginExpired("the pending authorization moved on or expired") from None

    def _wait(
        self,
        request: AuthorizationRequest,
        live: _Live | None,
        stage: PendingStage,
        user: User,
        claims: tuple[str, ...],
        now: datetime,
    ) -> PendingCookie:
        """Keep the request for a page the person must see first, bound to their session."""
        if live is None:
            pending_id = secrets.token_urlsafe(ID_BYTES)
            record = self._record(
                pending_id, request, stage, now, session_hash=user.session_hash, claims=claims
            )
            self.store.save_pending_authorization(record)
            return self._cookie(pending_id, stage)
        moved = replace(
            live.record,
            stage=stage,
            upstream=None,
            session_hash=user.session_hash,
            consent_claims=claims,
            expires_at=now + WAITING[stage],
        )
        try:
            self.store.update_pending_authorization(moved, (live.record.stage,), now)
        except PendingAuthorizationNotFoundError:
            raise LoginExpired("the pending authorization moved on or expired") from None
        return self._cookie(live.id, stage)

    def _close(self, live: _Live | None, now: datetime, *, missing_ok: bool = False) -> None:
        """Take the pending authorization once: whoever gets here second answers nothing."""
        if live is None:
            return
        try:
            self.store.consume_pending_authorization(live.record.id_hash, (live.record.stage,), now)
        except PendingAuthorizationNotFoundError:
            if not missing_ok:
                raise LoginExpired("the pending authorization was already answered") from None

    @staticmethod
    def _cookie(pending_id: str, stage: PendingStage) -> PendingCookie:
        return PendingCookie(pending_id, int(WAITING[stage].total_seconds()))

    # -- regions ------------------------------------------------------------------------------

    def _enabled_region(self, code: str | None) -> Region | None:
        region = self.registry.region(code) if code else None
        return region if region is not None and region.enabled else None

    def _chooser(self, pending_id: str, ui_locales: str | None) -> ChooseRegion:
        # Provinces and their peers first, national departments last; by code within a kind.
        regions = sorted(
            (r for r in self.registry.regions() if r.enabled),
            key=lambda r: (r.kind is RegionKind.DEPARTMENT, r.code),
        )
        cookie = self._cookie(pending_id, PendingStage.CHOOSING)
        return ChooseRegion(tuple(regions), form_handle(pending_id), cookie, ui_locales)

    def _start_leg(self, region: Region, request: AuthorizationRequest) -> tuple[UpstreamLeg, str]:
        """The Authentication Request at ``region``, and the round trip to keep (``ValueError``
        when the portal's parameters cannot be passed on)."""
        asked = requested_acr(request.acr_values, _acr_claim(request))
        acr_values = region_acr_values(region, asked.acr_values)
        start = self.broker(region).start_login(
            f"{self.settings.issuer_url}/callback/{region.code}",
            # Forwarded so that the region, not its SSO cookie, answers (OIDC Core §3.1.2.1).
            prompt="login" if "login" in request.prompt else None,
            max_age=request.max_age,
            login_hint=request.login_hint,
            ui_locales=request.ui_locales,
            acr_values=acr_values or None,
        )
        sent = start.transaction
        leg = UpstreamLeg(
            region=sent.region,
            state_hash=token_hash(sent.state),
            nonce=sent.nonce,
            code_verifier=sent.code_verifier,
            redirect_uri=sent.redirect_uri,
            started_at=sent.created_at,
            max_age=sent.max_age,
        )
        return leg, start.url

    def _open_session(
        self, region: Region, identity: UpstreamIdentity, now: datetime
    ) -> tuple[str, SsoSession]:
        """Link the national subject (keyed by the identity number, never kept in clear) and
        open the SSO session at the level the region may vouch for (THREAT_MODEL row 2).

        An ``enterprise`` region's assertion of the enterprise is checked first (a malformed
        credit code is :class:`~gateway.errors.CreditCodeInvalid`, before anything is kept),
        then recorded with the person's role, and the session remembers the seat
        (:mod:`gateway.mandates`)."""
        assertion = None
        if region.kind is RegionKind.ENTERPRISE:
            assertion = check_assertion(identity.claims)
        national_secret = self.settings.national_secret.get_secret_value().encode()
        try:
            subject = self.store.link_subject(
                identity_key(identity.identity_number, national_secret),
                region.code,
                identity.subject,
                now,
            )
        except SubjectLinkConflictError:
            raise IdentityConflict(
                f"region {region.code}: the regional account is linked elsewhere"
            ) from None
        claims: dict[str, Any] = {
            "home_region": region.code,
            SEALED_ID_NUMBER: self.sealer.seal_identity_number(
                identity.identity_number, subject.id
            ),
        }
        if assertion is not None:
            claims[SEAT_CLAIM] = self.mandates.record_sign_in(
                assertion, subject.id, region.code, now
            )
        if identity.name:
            claims["name"] = identity.name
        if identity.phone_number:
            claims["phone_number"] = identity.phone_number
        if identity.id_token:
            # Kept for the logout at the region (RP-Initiated Logout 1.0 §2), sealed.
            claims[SEALED_REGION_ID_TOKEN] = seal_region_id_token(
                self.sealer, identity.id_token, subject.id
            )
        level = region_level(region, identity.acr, self.settings.ceiling_for(region.code))
        # What the region vouched, kept apart from what a step-up makes of the session later:
        # only the region's level may bind a second factor (gateway.mfa.BindingRule).
        claims[REGION_LEVEL_CLAIM] = level
        session_id = self.sessions.new_id()
        session = SsoSession(
            session_hash=token_hash(session_id),
            subject=subject.id,
            region=region.code,
            auth_time=_region_auth_time(identity, now),
            acr=level,
            amr=identity.amr,  # what the region said, nothing assumed (THREAT_MODEL row 3)
            created_at=now,
            expires_at=now + self.settings.sso_session_lifetime,
            claims=claims,
            # How the region's logout token will name this session (Back-Channel Logout §2.4).
            region_sid=identity.sid,
            region_sub=identity.subject,
        )
        self.sessions.start(session)
        return session_id, session

    def _note_new_link(self, subject: str, region: str, now: datetime) -> None:
        """Say that a number already linked through another region was asserted by ``region``
        for the first time (THREAT_MODEL row 2: allowed, since people move, but recorded).

        The link itself is the store's record (``subject_links``: region, upstream account,
        time), committed by now; :class:`~gateway.observe.IdentityLinked` is what the audit
        trail and the operators' log hear, naming only the national subject's id and the
        regions, never the number.
        """
        links = self.store.list_subject_links(subject)
        new = [link for link in links if link.region == region and link.created_at == now]
        earlier = sorted({link.region for link in links if link.region != region})
        if new and earlier:
            self.events.emit(
                IdentityLinked(subject=subject, region=region, earlier_regions=tuple(earlier))
            )

    # -- the portal's answer (RFC 6749 §4.1.2, RFC 9207) -------------------------------------

    def _to_portal(
        self,
        request: AuthorizationRequest,
        live: _Live | None,
        error: str,
        description: str | None,
        now: datetime,
        *,
        user: User | None = None,
    ) -> ToPortal:
        """An error for the portal (the pending authorization, if any, taken first), said as
        :class:`~gateway.observe.SignInFailed` with the error code: the region is the signed-in
        person's, else the round trip's, else the one the portal named."""
        self._close(live, now)
        region = request.region
        if user is not None:
            region = _home_region(user)
        elif live is not None and live.record.upstream is not None:
            region = live.record.upstream.region
        subject = user.subject if user is not None else None
        self.events.emit(
            SignInFailed(portal=request.client_id, region=region, reason=error, subject=subject)
        )
        url = self._error_url(request.redirect_uri, request.state, error, description)
        return ToPortal(url, error)

    def _error_url(
        self, redirect_uri: str, state: str | None, error: str, description: str | None
    ) -> str:
        """An error for the portal, with ``state`` and ``iss`` (RFC 6749 §4.1.2.1, RFC 9207)."""
        query = {"error": error, "iss": self.settings.issuer_url}
        if description:
            query["error_description"] = description
        if state is not None:
            query["state"] = state
        separator = "&" if "?" in redirect_uri else "?"
        return f"{redirect_uri}{separator}{urlencode(query)}"

    def _code_url(self, request: AuthorizationRequest, code: str) -> str:
        """The code for the portal, with ``state`` and ``iss``, added to any query the
        registered redirect URI has (RFC 6749 §3.1.2)."""
        added = [("code", code)]
        if request.state:
            added.append(("state", request.state))
        added.append(("iss", self.settings.issuer_url))
        parts = urlsplit(request.redirect_uri)
        query = [*parse_qsl(parts.query, keep_blank_values=True), *added]
        return urlunsplit(parts._replace(query=urlencode(query)))


def _claims_request(request: AuthorizationRequest) -> ClaimsRequest | None:
    """The request's ``claims`` parameter, parsed (validated at ``/authorize``)."""
    if request.claims is None:
        return None
    try:
        return parse_claims_request(request.claims)
    except ClaimsRequestError:  # pragma: no cover - only validated requests are kept
        return None


def _acr_claim(request: AuthorizationRequest) -> IndividualRequest | None:
    """The ``acr`` the ``claims`` parameter asks of the ID token (OIDC Core §5.5.1.1)."""
    claims = _claims_request(request)
    return claims.acr() if claims is not None else None


def _required_subjects(request: AuthorizationRequest) -> tuple[str, ...]:
    """The portal-facing ``sub`` values the person must have: the ``id_token_hint``'s
    (OIDC Core §3.1.2.1; ``""`` for a hint not signed here, which nobody matches) and the
    ``claims`` parameter's ``sub`` value (§5.5.1)."""
    claims = _claims_request(request)
    named = claims.subject() if claims is not None else None
    return tuple(s for s in (request.hinted_subject, named) if s is not None)


def form_handle(pending_id: str) -> str:
    """What a page of the sign-in carries to name its pending authorization: derived from the
    id, which only the cookie holds, so a page's answer cannot be replayed against another
    sign-in of the browser (one started in another tab, or by a cross-site navigation)."""
    return token_hash(f"form\0{pending_id}")[:32]


def _names(form: str | None, live: _Live) -> bool:
    """Whether a page's ``form`` handle names this pending authorization (constant time)."""
    return hmac.compare_digest((form or "").encode(), form_handle(live.id).encode())


def _home_region(user: User) -> str | None:
    """The region that signed ``user``'s SSO session in (its ``home_region`` claim)."""
    home = user.claims.get("home_region")
    return home if isinstance(home, str) else None


def _region_auth_time(identity: UpstreamIdentity, now: datetime) -> datetime:
    """When the person signed in: the region's ``auth_time`` (never later than now), or now
    when the region does not say (the sign-in then asked for no freshness)."""
    signed_in = _instant(identity.auth_time)
    return now if signed_in is None else min(signed_in, now)


def _instant(epoch: float | None) -> datetime | None:
    """A region's seconds since the epoch as a time; ``None`` for none, or one out of range."""
    if epoch is None:
        return None
    try:
        return datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _not_fresh(
    request: AuthorizationRequest, leg: UpstreamLeg, auth_time: int | None, now: datetime
) -> str | None:
    """Why the region's sign-in does not satisfy ``prompt=login`` or ``max_age`` (OIDC Core
    §3.1.2.1): no ``auth_time``, one older than ``max_age``, or one before the round trip
    began for ``prompt=login`` (allowing :data:`CLOCK_SKEW`); ``None`` when it does."""
    fresh = "login" in request.prompt
    if not fresh and request.max_age is None:
        return None
    signed_in = _instant(auth_time)
    if signed_in is None:
        return "the region did not say when the person signed in"
    if (
        request.max_age is not None
        and signed_in < now - timedelta(seconds=request.max_age) - CLOCK_SKEW
    ):
        return "the region's sign-in is older than max_age"
    started = datetime.fromtimestamp(leg.started_at, UTC)
    if fresh and signed_in < started - CLOCK_SKEW:
        return "the region answered from an earlier sign-in despite prompt=login"
    return None


def _transaction(leg: UpstreamLeg, state: str) -> LoginTransaction:
    """The broker's transaction for the round trip; ``state`` is the one the region sent back,
    whose hash found the leg (the record never keeps it in clear)."""
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
    "INTERACTION_LIFETIME",
    "REGION_LEG_LIFETIME",
    "ActingForPage",
    "Answer",
    "AskConsent",
    "ChooseEnterprise",
    "ChooseRegion",
    "Completion",
    "PendingCookie",
    "RefusedRequest",
    "RegionBroker",
    "SessionCookie",
    "SignIn",
    "SignInStore",
    "StepUp",
    "ToPortal",
    "ToRegion",
    "form_handle",
]
