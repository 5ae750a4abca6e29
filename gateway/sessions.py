"""SSO sessions and back-channel logout (OIDC Back-Channel Logout 1.0).

The browser holds only an opaque session id in a cookie; the store keeps its hash and the facts
of the sign-in. Ending a session notifies every portal that took part, with a logout token per
portal, in parallel and with short timeouts so one slow portal delays nobody.
"""

from __future__ import annotations

import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from gateway.keys import KeyRing
from gateway.registry import Registry
from gateway.store.contract import SessionParticipant, SessionStore, SsoSession, token_hash

log = logging.getLogger(__name__)

SESSION_COOKIE = "tongxing_sso"
# The session keeps the resident identity number only sealed (AES-GCM, bound to the subject), so
# that it can be released to portals whose registration allows it and to no one else.
SEALED_ID_NUMBER = "id_number_sealed"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_LIFETIME = 120
BACKCHANNEL_TIMEOUT = 2.0


@dataclass(frozen=True)
class LogoutReport:
    """Which portals were told, and which could not be reached."""

    notified: tuple[str, ...]
    failed: tuple[str, ...]


class Sessions:
    """Create, find and end SSO sessions."""

    def __init__(
        self,
        store: SessionStore,
        keys: KeyRing,
        registry: Registry,
        issuer: str,
        pairwise_secret: bytes,
    ) -> None:
        self.store = store
        self.pairwise_secret = pairwise_secret
        self.keys = keys
        self.registry = registry
        self.issuer = issuer
        self.http = requests.Session()

    def start(self, session: SsoSession) -> None:
        self.store.create_session(session)

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(32)

    def find(self, session_id: str | None, now: datetime) -> SsoSession | None:
        if not session_id or len(session_id) > 128:
            return None
        return self.store.get_session(token_hash(session_id), now)

    def end(self, session_hash: str, now: datetime) -> LogoutReport:
        """End the session, revoke its grants and tell every participating portal.

        The end and the revocation are one store transaction: a crash cannot leave the grants
        of an ended session alive. Portals are told only by the logout that ended a live
        session, so concurrent logouts fan out once.
        """
        ended = self.store.end_session_and_revoke_grants(session_hash, now)
        if ended.session is None or not ended.participants:
            return LogoutReport((), ())
        return self.notify(ended.session, ended.participants, now)

    def notify(
        self, session: SsoSession, participants: list[SessionParticipant], now: datetime
    ) -> LogoutReport:
        """POST a logout token to each participant's ``backchannel_logout_uri`` (§2.5)."""
        jobs: list[tuple[str, str, str]] = []
        for participant in participants:
            portal = self.registry.portal(participant.client_id)
            if portal is None or not portal.backchannel_logout_uri:
                continue
            token = self.logout_token(
                portal.client_id, self._sub_for(portal.client_id, session), participant.sid, now
            )
            jobs.append((portal.client_id, portal.backchannel_logout_uri, token))
        if not jobs:
            return LogoutReport((), ())
        with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
            results = list(pool.map(lambda job: (job[0], self._post(job[1], job[2])), jobs))
        return LogoutReport(
            tuple(c for c, ok in results if ok), tuple(c for c, ok in results if not ok)
        )

    def _sub_for(self, client_id: str, session: SsoSession) -> str:
        portal = self.registry.portal(client_id)
        if portal is None:
            return session.subject
        return portal.subject_for(session.subject, self.pairwise_secret)

    def logout_token(self, client_id: str, sub: str, sid: str, now: datetime) -> str:
        """A Logout Token (Back-Channel Logout §2.4), typed ``logout+jwt``."""
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": client_id,
            "iat": int(now.timestamp()),
            "exp": int(now.timestamp()) + LOGOUT_TOKEN_LIFETIME,
            "jti": secrets.token_urlsafe(16),
            "sub": sub,
            "sid": sid,
            "events": {BACKCHANNEL_EVENT: {}},
        }
        return self.keys.sign(claims, typ="logout+jwt")

    def _post(self, uri: str, token: str) -> bool:
        try:
            response = self.http.post(
                uri,
                data={"logout_token": token},
                timeout=BACKCHANNEL_TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            log.warning("back-channel logout to %s failed: %s", uri, type(exc).__name__)
            return False
        if response.status_code != 200:
            log.warning("back-channel logout to %s answered %s", uri, response.status_code)
            return False
        return True
