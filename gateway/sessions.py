"""SSO sessions and back-channel logout (OIDC Back-Channel Logout 1.0).

The browser holds only an opaque session id in a cookie; the store keeps its hash and the facts
of the sign-in. Ending a session notifies every portal that took part, with a logout token per
portal, in parallel and with short timeouts so one slow portal delays nobody.

Each session ended here is said once (:class:`~gateway.observe.LoggedOut`, with who ended it
and the portals told), after the store ended it, and each delivery and retry of a logout token
(:class:`~gateway.observe.LogoutDelivered`), after the store recorded its outcome. A session
that simply expires is not said per row: the purge deletes expired rows in bulk
(:class:`gateway.housekeeping.ExpiredRecordPurge`), and nobody ended them.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal

import requests

from gateway.keys import KeyRing
from gateway.logs import in_this_context
from gateway.observe import Events, LoggedOut, LogoutDelivered
from gateway.outbound import OutboundPolicy
from gateway.registry import Portal, Registry
from gateway.sealing import IdentitySealer, SecretUnreadableError
from gateway.store.contract import SessionParticipant, SsoSession, Store, StoreError, token_hash
from gateway.store.contract.deliveries import LogoutDelivery

log = logging.getLogger(__name__)

SESSION_COOKIE = "tongxing_sso"
# The session keeps the resident identity number only sealed (AES-GCM, bound to the subject), so
# that it can be released to portals whose registration allows it and to no one else.
SEALED_ID_NUMBER = "id_number_sealed"
# The region's ID token of the sign-in, kept sealed the same way (bound to the subject under its
# own purpose): the ``id_token_hint`` of the logout at the region (RP-Initiated Logout 1.0 §2).
SEALED_REGION_ID_TOKEN = "region_id_token_sealed"  # noqa: S105 - a claim name, not a secret
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_LIFETIME = 120
BACKCHANNEL_TIMEOUT = 2.0
_NO_RECEIVER = "no back-channel logout URI registered"
Initiator = Literal["portal", "person", "region", "admin"]
"""Who ended a session (:class:`~gateway.observe.LoggedOut`): a portal's RP-initiated logout
proven by its ``id_token_hint``, the person confirming at the gateway, the region's
back-channel logout, or an administrator ending a region's sessions."""


@dataclass(frozen=True)
class LogoutReport:
    """Which portals were told, and which could not be reached; ``ended``: whether the logout
    ended a live session (``False``: it was unknown, ended already or expired)."""

    notified: tuple[str, ...]
    failed: tuple[str, ...]
    ended: bool = True


class Sessions:
    """Create, find and end SSO sessions; tell the portals, and try again those that failed.

    A delivery a portal does not accept (no answer, or not 200: Back-Channel Logout 1.0 §2.8) is
    recorded in the store and tried again after each of :attr:`RETRY_DELAYS` in turn, each time
    with a new logout token (its ``jti`` is single use and it expires, §2.4); after the last it
    is given up, and the record kept for :attr:`DELIVERY_RECORD_KEPT`.
    """

    RETRY_DELAYS: tuple[timedelta, ...] = (
        timedelta(seconds=10),
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
    )
    # Longer than a try can take (every post is bounded by BACKCHANNEL_TIMEOUT).
    DELIVERY_LEASE = timedelta(minutes=1)
    DELIVERY_RECORD_KEPT = timedelta(days=7)
    # A region's sid names one session, its sub a few; a disabled region's are ended in batches.
    REGION_BATCH = 100

    def __init__(
        self,
        store: Store,
        keys: KeyRing,
        registry: Registry,
        issuer: str,
        pairwise_secret: bytes,
        http: requests.Session | None = None,
        *,
        events: Events | None = None,
    ) -> None:
        self.store = store
        # A service built without one (unit tests) says what happened to nobody.
        self.events = events if events is not None else Events()
        self.pairwise_secret = pairwise_secret
        self.keys = keys
        self.registry = registry
        self.issuer = issuer
        # Portals' back-channel URIs are theirs to name: connect only where the registration
        # rules allow (https, no loopback or link-local address, checked again after DNS).
        self.http = http if http is not None else OutboundPolicy().session()

    def start(self, session: SsoSession) -> None:
        self.store.create_session(session)

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(32)

    def find(self, session_id: str | None, now: datetime) -> SsoSession | None:
        if not session_id or len(session_id) > 128:
            return None
        return self.store.get_session(token_hash(session_id), now)

    def named_by(self, client_id: str, sid: str, sub: str, now: datetime) -> SsoSession | None:
        """The live session an ID token of ``client_id`` with ``sid`` and ``sub`` was issued
        in, or ``None``: the session an ``id_token_hint`` names (RP-Initiated Logout 1.0 §2;
        the ``sid`` is the portal's own in that session, Back-Channel Logout 1.0 §2.1). The
        ``sub`` must be the one this portal sees for the session's person."""
        if not sid or len(sid) > 255:
            return None
        session = self.store.find_participant_session(client_id, sid, now)
        if session is None or self._sub_for(client_id, session) != sub:
            return None
        return session

    def end(
        self, session_hash: str, now: datetime, initiator: Initiator = "person"
    ) -> LogoutReport:
        """End the session, revoke its grants and tell every participating portal
        (RP-Initiated Logout 1.0 §2, Back-Channel Logout 1.0 §2.5).

        The end and the revocation are one store transaction: a crash cannot leave the grants
        of an ended session alive. Portals are told only by the logout that ended a live
        session, so concurrent logouts fan out once, and the logout is said once.
        """
        ended = self.store.end_session_and_revoke_grants(session_hash, now)
        if ended.session is None:
            return LogoutReport((), (), ended=False)
        return self._ended(ended.session, ended.participants, now, initiator)

    def end_region_logout(
        self, region: str, sid: str | None, sub: str | None, now: datetime
    ) -> int:
        """A region's logout token asked to end its session ``sid`` (or, without one, every
        session of its person ``sub``): end each live session of ``region`` it names, with its
        grants, and tell their portals (Back-Channel Logout 1.0 §2.7). How many were ended.
        """
        if sid is None and sub is None:
            raise ValueError("a region's logout names a sid or a sub")
        found = self.store.find_region_sessions(
            region, now, region_sid=sid, region_sub=None if sid else sub, limit=self.REGION_BATCH
        )
        return sum(1 for session in found if self._end_found(session, now, "region"))

    def end_region(self, region: str, now: datetime) -> int:
        """End every live session of ``region`` (a region disabled, or withdrawn), in batches,
        each with its grants and its portals told. How many were ended."""
        ended = 0
        while found := self.store.find_region_sessions(region, now, limit=self.REGION_BATCH):
            progress = sum(1 for session in found if self._end_found(session, now, "admin"))
            ended += progress
            if not progress:
                break  # all ended by other requests meanwhile: nothing live is left
        return ended

    def end_subject(self, subject: str, now: datetime) -> int:
        """End every live session of the national ``subject`` (the help desk reset their
        factor: a session it raised to loa2 must not outlive it), in batches, each with its
        grants and its portals told. How many were ended."""
        ended = 0
        while found := self.store.find_subject_sessions(subject, now, limit=self.REGION_BATCH):
            progress = sum(1 for session in found if self._end_found(session, now, "admin"))
            ended += progress
            if not progress:
                break
        return ended

    def _end_found(self, session: SsoSession, now: datetime, initiator: Initiator) -> bool:
        ended = self.store.end_session_and_revoke_grants(session.session_hash, now)
        if ended.session is None:
            return False  # ended by another request in the meantime: it told the portals
        self._ended(ended.session, ended.participants, now, initiator)
        return True

    def _ended(
        self,
        session: SsoSession,
        participants: list[SessionParticipant],
        now: datetime,
        initiator: Initiator,
    ) -> LogoutReport:
        """Say that ``session`` ended (committed by the caller), then tell its portals."""
        jobs = self._jobs(session, participants)
        self.events.emit(
            LoggedOut(
                subject=session.subject,
                region=session.region,
                initiator=initiator,
                portals=tuple(job[0] for job in jobs),
            )
        )
        return self._notify_jobs(jobs, now)

    def notify(
        self, session: SsoSession, participants: list[SessionParticipant], now: datetime
    ) -> LogoutReport:
        """POST a logout token to each participant's ``backchannel_logout_uri`` (§2.5).

        Each delivery the portal does not accept is recorded, to be tried again
        (:meth:`redeliver`).
        """
        return self._notify_jobs(self._jobs(session, participants), now)

    def _jobs(
        self, session: SsoSession, participants: list[SessionParticipant]
    ) -> list[tuple[str, str, str]]:
        """The deliveries to make: (client id, its ``sub``, ``sid``) of each participant
        with a ``backchannel_logout_uri``, the portals to be told."""
        jobs: list[tuple[str, str, str]] = []
        for participant in participants:
            portal = self.registry.portal(participant.client_id)
            if portal is None or not portal.backchannel_logout_uri:
                continue
            sub = self._sub_for(portal.client_id, session)
            jobs.append((portal.client_id, sub, participant.sid))
        return jobs

    def _notify_jobs(self, jobs: list[tuple[str, str, str]], now: datetime) -> LogoutReport:
        if not jobs:
            return LogoutReport((), ())
        with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
            # The pool's threads do not inherit the request's context (its X-Request-ID).
            deliver = in_this_context(lambda job: self._deliver(*job, now=now))
            failures = list(pool.map(deliver, jobs))
        for (client_id, sub, sid), failure in zip(jobs, failures, strict=True):
            if failure is not None:
                self._record_failure(client_id, sub, sid, failure, now)
            self._delivered(client_id, "delivered" if failure is None else "failed", 1)
        return LogoutReport(
            tuple(job[0] for job, failure in zip(jobs, failures, strict=True) if failure is None),
            tuple(job[0] for job, failure in zip(jobs, failures, strict=True) if failure),
        )

    def redeliver(self, now: datetime, limit: int = 50) -> LogoutReport:
        """Try again the deliveries that are due; claim each first, so that of several replicas
        running this at once only one sends it. A portal no longer registered (or without a
        ``backchannel_logout_uri``) is given up at once."""
        claimed = self.store.claim_logout_deliveries(now, self.DELIVERY_LEASE, limit)
        if not claimed:
            return LogoutReport((), ())
        with ThreadPoolExecutor(max_workers=min(8, len(claimed))) as pool:
            failures = list(
                pool.map(in_this_context(partial(self._redeliver_one, now=now)), claimed)
            )
        for delivery, failure in zip(claimed, failures, strict=True):
            attempts = delivery.attempts + 1
            if failure is None:
                self.store.logout_delivered(delivery.delivery_id)
                log.info("back-channel logout to %s delivered on retry", delivery.client_id)
                self._delivered(delivery.client_id, "delivered", attempts)
                continue
            retry = attempts <= len(self.RETRY_DELAYS) and failure != _NO_RECEIVER
            self.store.logout_delivery_failed(
                delivery.delivery_id,
                attempts=attempts,
                status=failure,
                next_attempt_at=now + self.RETRY_DELAYS[attempts - 1] if retry else None,
                now=now,
                expires_at=self._record_expiry(now, attempts if retry else None),
            )
            if not retry:
                log.warning(
                    "back-channel logout to %s given up after %d attempts (%s)",
                    delivery.client_id,
                    attempts,
                    failure,
                )
            self._delivered(delivery.client_id, "failed" if retry else "given_up", attempts)
        return LogoutReport(
            tuple(d.client_id for d, f in zip(claimed, failures, strict=True) if f is None),
            tuple(d.client_id for d, f in zip(claimed, failures, strict=True) if f),
        )

    def _delivered(self, client_id: str, outcome: str, attempt: int) -> None:
        """Say how one try went, once the store has its outcome."""
        self.events.emit(LogoutDelivered(portal=client_id, outcome=outcome, attempt=attempt))

    def _redeliver_one(self, delivery: LogoutDelivery, *, now: datetime) -> str | None:
        return self._deliver(delivery.client_id, delivery.subject, delivery.sid, now=now)

    def _deliver(self, client_id: str, sub: str, sid: str, *, now: datetime) -> str | None:
        """One try with a new logout token: ``None`` when the portal accepted it, else why not."""
        portal = self.registry.portal(client_id)
        if portal is None or not portal.backchannel_logout_uri:
            return _NO_RECEIVER
        token = self.logout_token(client_id, sub, sid if sends_sid(portal) else None, now)
        return self._post(portal.backchannel_logout_uri, token)

    def _record_failure(
        self, client_id: str, sub: str, sid: str, failure: str, now: datetime
    ) -> None:
        delivery = LogoutDelivery(
            delivery_id=secrets.token_urlsafe(24),
            client_id=client_id,
            subject=sub,
            sid=sid,
            attempts=1,
            created_at=now,
            next_attempt_at=now + self.RETRY_DELAYS[0],
            expires_at=self._record_expiry(now, 1),
            last_status=failure,
        )
        try:
            self.store.record_logout_delivery(delivery)
        except StoreError:
            log.warning("could not record the failed back-channel logout to %s", client_id)

    def _record_expiry(self, now: datetime, attempts: int | None) -> datetime:
        """Kept past the last try still to come (``attempts`` made), or past giving up."""
        remaining = sum(self.RETRY_DELAYS[attempts - 1 :], timedelta()) if attempts else None
        return now + (remaining or timedelta()) + self.DELIVERY_RECORD_KEPT

    def _sub_for(self, client_id: str, session: SsoSession) -> str:
        portal = self.registry.portal(client_id)
        if portal is None:
            return session.subject
        return portal.subject_for(session.subject, self.pairwise_secret)

    def logout_token(self, client_id: str, sub: str, sid: str | None, now: datetime) -> str:
        """A Logout Token (Back-Channel Logout §2.4), typed ``logout+jwt``: always ``sub``,
        and ``sid`` when given (§2.4: a ``sub`` or a ``sid``, or both; which one a portal gets
        is :func:`sends_sid`'s choice)."""
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": client_id,
            "iat": int(now.timestamp()),
            "exp": int(now.timestamp()) + LOGOUT_TOKEN_LIFETIME,
            "jti": secrets.token_urlsafe(16),
            "sub": sub,
            "events": {BACKCHANNEL_EVENT: {}},
        }
        if sid is not None:
            claims["sid"] = sid
        return self.keys.sign(claims, typ="logout+jwt")

    def _post(self, uri: str, token: str) -> str | None:
        """POST the token (§2.5); ``None`` on 200 (§2.8), else a short label of what happened."""
        try:
            response = self.http.post(
                uri,
                data={"logout_token": token},
                timeout=BACKCHANNEL_TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            log.warning("back-channel logout to %s failed: %s", uri, type(exc).__name__)
            return type(exc).__name__
        with response:
            if response.status_code != 200:
                log.warning("back-channel logout to %s answered %s", uri, response.status_code)
                return f"http {response.status_code}"
        return None


def sends_sid(portal: Portal) -> bool:
    """Whether ``portal``'s logout tokens carry the session's ``sid`` (Back-Channel Logout 1.0
    §2.2, §2.4), by its registered ``backchannel_logout_session_required``.

    ``true``: the portal requires it (§2.2), so it is sent. ``false``: it is not sent, and the
    token names the person by ``sub`` alone, which §2.4 reads as "log out every session of this
    person at the portal". That is what a Keycloak broker needs: Keycloak (26.x, its bug
    #12142) matches a logout token's ``sid`` only against the ``session_state`` of a token
    response, which the gateway does not send, and with a ``sid`` present never falls back to
    ``sub``, so a token with ``sid`` ends nothing there. Not registered: sent, as the gateway
    always did. §2.2 makes the absent field mean ``false`` ("not required"), not "must not be
    sent", and §2.4 lets a token carry both; a portal registered before the field existed keeps
    tokens that end only the one session that ended here, not every session of the person.
    """
    return portal.backchannel_logout_session_required is not False


def seal_region_id_token(sealer: IdentitySealer, id_token: str, subject: str) -> str:
    """The region's ID token sealed for the session's ``claims`` (AES-GCM, bound to ``subject``).

    Its purpose is part of the binding (``region_id_token:<subject>``), so neither the sealed
    identity number nor a TOTP secret of the same subject opens as one, nor the other way round.
    """
    sealed = sealer.cipher.encrypt(id_token.encode(), _region_id_token_binding(subject))
    return base64.b64encode(sealed).decode()


def open_region_id_token(sealer: IdentitySealer, session: SsoSession) -> str | None:
    """The region's ID token of ``session``'s sign-in, or ``None``: none kept (a session opened
    before it was), or one that does not open for this subject (moved to another row, or sealed
    under a key no longer configured). Used only as the ``id_token_hint`` of RP-Initiated
    Logout 1.0 §2 at the region."""
    sealed = session.claims.get(SEALED_REGION_ID_TOKEN)
    if not isinstance(sealed, str) or not sealed:
        return None
    try:
        raw = base64.b64decode(sealed, validate=True)
        return sealer.cipher.decrypt(raw, _region_id_token_binding(session.subject)).decode()
    except (binascii.Error, SecretUnreadableError, UnicodeDecodeError):
        log.warning("session of %s: the sealed region ID token does not open", session.subject)
        return None


def _region_id_token_binding(subject: str) -> str:
    return f"region_id_token:{subject}"
