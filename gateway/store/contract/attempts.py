"""Failed-attempt counters with lock-out, shared by every replica on one database."""

from __future__ import annotations

import datetime
from typing import Protocol


class AttemptStore(Protocol):
    """Counters of failed attempts per key (a subject, a client address) and their locks."""

    def record_failure(
        self, key: str, now: datetime.datetime, limit: int, lockout: datetime.timedelta
    ) -> datetime.datetime | None:
        """Count one failed attempt for ``key``; return the lock in force after it, if any.

        Failures count within ``lockout`` of the first one of a run; the ``limit``-th locks the
        key until ``now + lockout``. A failure while locked is counted but does not extend the
        lock. After the window or the lock has passed, counting starts again from one. Atomic
        and shared by every store on the same database (several gateway replicas).
        """
        ...

    def delay_after_failure(
        self,
        key: str,
        now: datetime.datetime,
        budget: int,
        window: datetime.timedelta,
        first_delay: datetime.timedelta,
        max_delay: datetime.timedelta,
    ) -> datetime.datetime | None:
        """Count one failed attempt for ``key``; past ``budget`` hold it back for a while.

        Failures count within ``window`` of the first one of a run (then counting starts again
        from one). The ``budget + n``-th failure (n >= 1) holds the key until
        ``now + min(first_delay * 2 ** (n - 1), max_delay)``, which :meth:`is_locked` reports;
        the hold returned is the one in force after this failure. A slowing, not a lock-out:
        the delay is bounded by ``max_delay``. Atomic and shared like :meth:`record_failure`.
        """
        ...

    def is_locked(self, key: str, now: datetime.datetime) -> datetime.datetime | None:
        """When the lock (or hold) on ``key`` ends, if one is in force at ``now``."""
        ...

    def reset_failures(self, key: str) -> bool:
        """Forget the failures (and any lock) of ``key``; ``False`` if there were none."""
        ...


__all__ = ["AttemptStore"]
