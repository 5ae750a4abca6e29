"""The throttle on waitress's per-request queue-depth warning."""

from __future__ import annotations

import logging

from gateway.wsgi import Throttle


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("waitress.queue", logging.WARNING, __file__, 1, message, None, None)


def test_throttle_lets_one_record_through_per_interval_and_counts_the_rest() -> None:
    now = [100.0]
    throttle = Throttle(interval=10, clock=lambda: now[0])
    assert throttle.filter(record("Task queue depth is 3")) is True
    assert throttle.filter(record("Task queue depth is 4")) is False
    now[0] += 5
    assert throttle.filter(record("Task queue depth is 5")) is False
    now[0] += 5
    passed = record("Task queue depth is 6")
    assert throttle.filter(passed) is True
    assert passed.getMessage() == "Task queue depth is 6 (and 2 more in the last 10 s)"


def test_throttle_leaves_a_lone_record_unchanged() -> None:
    throttle = Throttle(interval=10, clock=lambda: 0.0)
    passed = record("Task queue depth is 1")
    assert throttle.filter(passed) is True
    assert passed.getMessage() == "Task queue depth is 1"
