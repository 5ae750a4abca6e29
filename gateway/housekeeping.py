"""Housekeeping: expired records leave the store on a timer, not only when read.

Codes, pending authorizations, tokens, SSO sessions, attempt counters and used assertions all
expire by time, and every read already ignores what has expired; without a purge the rows would
stay, and an anonymous caller who starts sign-ins it never finishes would grow the store without
bound (THREAT_MODEL.md row 7). Each gateway process runs one :class:`ExpiredRecordPurge`; several
replicas purging the same database is harmless (a delete of what is gone deletes nothing).
"""

from __future__ import annotations

import logging
import threading

from gateway.clock import Clock, utc_now
from gateway.store.contract import LifecycleStore

log = logging.getLogger(__name__)


class ExpiredRecordPurge:
    """Deletes expired records every ``interval`` seconds, in a daemon thread, until stopped."""

    def __init__(self, store: LifecycleStore, interval: float, clock: Clock = utc_now) -> None:
        if interval <= 0:
            raise ValueError("the purge interval must be positive")
        self.store = store
        self.interval = interval
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """One purge now; the number of records deleted, or 0 when the store is unavailable."""
        try:
            purged = self.store.purge_expired(self.clock())
        except Exception:  # a database hiccup must not end the timer; the next run tries again
            log.warning("purging expired records failed; trying again in %.0f s", self.interval)
            return 0
        if purged:
            log.info("purged %d expired records", purged)
        return purged

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="tongxing-purge", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()


__all__ = ["ExpiredRecordPurge"]
