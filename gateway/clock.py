"""The clock the sign-in and the token side are given: a callable, so tests own the time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Now, timezone-aware (the store refuses naive times)."""


def utc_now() -> datetime:
    """The wall clock, in UTC: the default :data:`Clock`."""
    return datetime.now(UTC)


__all__ = ["Clock", "utc_now"]
