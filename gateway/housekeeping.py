"""Housekeeping: expired records leave the store on a timer, not only when read; failed
back-channel logout deliveries are tried again on a timer.

Codes, pending authorizations, tokens, SSO sessions, attempt counters and used assertions all
expire by time, and every read already ignores what has expired; without a purge the rows would
stay, and an anonymous caller who starts sign-ins it never finishes would grow the store without
bound (THREAT_MODEL.md row 7). Mandates that ended go the same way: an invitation that expired
unaccepted at once, a mandate that expired or was revoked after ``mandate_retention`` (the
setting ``TONGXING_MANDATE_RETENTION``, default :data:`MANDATE_RETENTION`: 30 days; the audit
trail keeps their history). Each gateway process runs one :class:`ExpiredRecordPurge`;
several replicas purging the same database is harmless (a delete of what is gone deletes
nothing).

Each process also runs one :class:`LogoutRedelivery`: a portal that did not accept a logout token
is sent a new one with back-off (:class:`~gateway.sessions.Sessions`, Back-Channel Logout 1.0
§2.8). Several replicas are safe there too: each delivery is claimed in the store before it is
sent, so only one replica sends it.
"""

from __future__ import annotations

import datetime
import logging
import threading

from gateway.clock import Clock, utc_now
from gateway.sessions import Sessions
from gateway.settings import MANDATE_RETENTION
from gateway.store.contract import AuditStore, LifecycleStore
from gateway.store.contract.mandates import MandateStore

log = logging.getLogger(__name__)

REDELIVERY_INTERVAL = 5.0
"""Seconds between two looks for due logout deliveries (the shortest back-off is 10 s)."""


class _PeriodicJob:
    """Runs :meth:`run_once` every ``interval`` seconds, in a daemon thread, until stopped."""

    name = "tongxing-job"

    def __init__(self, interval: float, clock: Clock) -> None:
        if interval <= 0:
            raise ValueError("the interval must be positive")
        self.interval = interval
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        raise NotImplementedError

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()


class ExpiredRecordPurge(_PeriodicJob):
    """Deletes expired records every ``interval`` seconds, in a daemon thread, until stopped."""

    name = "tongxing-purge"

    def __init__(
        self,
        store: LifecycleStore,
        interval: float,
        clock: Clock = utc_now,
        *,
        audit: AuditStore | None = None,
        audit_retention: datetime.timedelta | None = None,
        mandates: MandateStore | None = None,
        mandate_retention: datetime.timedelta = MANDATE_RETENTION,
    ) -> None:
        if interval <= 0:
            raise ValueError("the purge interval must be positive")
        super().__init__(interval, clock)
        self.store = store
        self.audit = audit
        self.audit_retention = audit_retention
        self.mandates = mandates
        self.mandate_retention = mandate_retention

    def run_once(self) -> int:
        """One purge now; the number of records deleted, or 0 when the store is unavailable.

        With an ``audit`` store and its ``audit_retention``, audit days older than the retention
        go too (:meth:`~gateway.store.contract.AuditStore.purge_audit`: whole days, from the
        start, leaving the anchor verification starts from). With a ``mandates`` store, the
        mandates nobody can use any more
        (:meth:`~gateway.store.contract.mandates.MandateStore.purge_mandates`).
        """
        try:
            now = self.clock()
            purged = self.store.purge_expired(now)
            if self.mandates is not None:
                purged += self.mandates.purge_mandates(now, self.mandate_retention)
            if self.audit is not None and self.audit_retention is not None:
                purged += self.audit.purge_audit(now - self.audit_retention)
        except Exception:  # a database hiccup must not end the timer; the next run tries again
            log.warning("purging expired records failed; trying again in %.0f s", self.interval)
            return 0
        if purged:
            log.info("purged %d expired records", purged)
        return purged


class LogoutRedelivery(_PeriodicJob):
    """Tries again the back-channel logout deliveries that are due, every ``interval`` seconds
    (:meth:`gateway.sessions.Sessions.redeliver`)."""

    name = "tongxing-logout-redelivery"

    def __init__(
        self, sessions: Sessions, interval: float = REDELIVERY_INTERVAL, clock: Clock = utc_now
    ) -> None:
        super().__init__(interval, clock)
        self.sessions = sessions

    def run_once(self) -> int:
        """One round now; how many deliveries were tried (0 when the store is unavailable)."""
        try:
            report = self.sessions.redeliver(self.clock())
        except Exception:  # as for the purge: the next round tries again
            log.warning("retrying logout deliveries failed; trying again in %.0f s", self.interval)
            return 0
        return len(report.notified) + len(report.failed)


__all__ = ["MANDATE_RETENTION", "REDELIVERY_INTERVAL", "ExpiredRecordPurge", "LogoutRedelivery"]
