"""Attempt counters on SQL: made to exist, then locked and updated, so none is lost.

An attempt counter is made to exist (``INSERT ... ON CONFLICT DO NOTHING``), then locked
(``SELECT ... FOR UPDATE``) and updated, so concurrent failures from several replicas are all
counted.
"""

from __future__ import annotations

import datetime

from sqlalchemy import delete, select, update

from gateway.store.schema import attempt_counters
from gateway.store.sql.base import SqlBase, require_aware, require_text


class SqlAttempts(SqlBase):
    """:class:`~gateway.store.contract.AttemptStore` on SQL."""

    def record_failure(
        self, key: str, now: datetime.datetime, limit: int, lockout: datetime.timedelta
    ) -> datetime.datetime | None:
        require_text(key=key)
        require_aware(now=now)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if lockout <= datetime.timedelta(0):
            raise ValueError("lockout must be positive")
        table = attempt_counters
        with self._write() as conn:
            # Make the row exist (a stale one, expired at once), then lock it: concurrent
            # failures from any replica queue on the row lock and each sees the last count.
            conn.execute(
                self._insert(table)
                .values(key=key, failures=0, window_started_at=now, expires_at=now)
                .on_conflict_do_nothing(index_elements=[table.c.key])
            )
            row = conn.execute(select(table).where(table.c.key == key).with_for_update()).one()
            locked_until: datetime.datetime | None = row.locked_until
            if locked_until is not None and locked_until > now:
                failures, started = row.failures + 1, row.window_started_at
            else:
                stale = row.expires_at <= now
                failures = 1 if stale else row.failures + 1
                started = now if stale else row.window_started_at
                locked_until = now + lockout if failures >= limit else None
            window_ends = started + lockout
            conn.execute(
                update(table)
                .where(table.c.key == key)
                .values(
                    failures=failures,
                    window_started_at=started,
                    locked_until=locked_until,
                    expires_at=max(window_ends, locked_until or window_ends),
                )
            )
            return locked_until

    def delay_after_failure(
        self,
        key: str,
        now: datetime.datetime,
        budget: int,
        window: datetime.timedelta,
        first_delay: datetime.timedelta,
        max_delay: datetime.timedelta,
    ) -> datetime.datetime | None:
        require_text(key=key)
        require_aware(now=now)
        if budget < 1:
            raise ValueError("budget must be at least 1")
        if not datetime.timedelta(0) < first_delay <= max_delay:
            raise ValueError("need 0 < first_delay <= max_delay")
        if window <= datetime.timedelta(0):
            raise ValueError("window must be positive")
        table = attempt_counters
        with self._write() as conn:
            conn.execute(
                self._insert(table)
                .values(key=key, failures=0, window_started_at=now, expires_at=now)
                .on_conflict_do_nothing(index_elements=[table.c.key])
            )
            row = conn.execute(select(table).where(table.c.key == key).with_for_update()).one()
            stale = row.expires_at <= now
            failures = 1 if stale else row.failures + 1
            started = now if stale else row.window_started_at
            held_until: datetime.datetime | None = None if stale else row.locked_until
            if held_until is not None and held_until <= now:
                held_until = None
            over = failures - budget
            if over >= 1:
                # 2 ** (over - 1) capped before it is computed, so a long run cannot overflow.
                doublings = min(over - 1, 32)
                delay = min(first_delay * (2**doublings), max_delay)
                held_until = max(held_until or now, now + delay)
            window_ends = started + window
            conn.execute(
                update(table)
                .where(table.c.key == key)
                .values(
                    failures=failures,
                    window_started_at=started,
                    locked_until=held_until,
                    expires_at=max(window_ends, held_until or window_ends),
                )
            )
            return held_until

    def is_locked(self, key: str, now: datetime.datetime) -> datetime.datetime | None:
        require_aware(now=now)
        table = attempt_counters
        with self._read() as conn:
            locked_until: datetime.datetime | None = conn.execute(
                select(table.c.locked_until).where(table.c.key == key, table.c.locked_until > now)
            ).scalar_one_or_none()
        return locked_until

    def reset_failures(self, key: str) -> bool:
        with self._write() as conn:
            result = conn.execute(delete(attempt_counters).where(attempt_counters.c.key == key))
            return result.rowcount > 0


__all__ = ["SqlAttempts"]
