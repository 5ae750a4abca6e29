"""The region circuit's states without a probe (a half-open trial after ``open_seconds``), and
the rate limits' bounded memory (no sockets: the unit tier)."""

from __future__ import annotations

import pytest
from flask import Flask

from gateway.broker.errors import RegionMetadataInvalid, RegionUnavailable
from gateway.limits import RequestLimits, client_address
from gateway.region_health import CircuitState, RegionHealth, RegionShortCircuited, failure_code
from gateway.settings import RateLimits, RegionCircuit


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _fail(health: RegionHealth, code: str = "sh") -> None:
    with pytest.raises(RegionUnavailable), health.call(code):
        raise RegionUnavailable(code, "discovery: ConnectTimeout")


def test_k_failures_open_the_circuit_and_one_trial_goes_through_after_open_seconds() -> None:
    clock = Clock()
    health = RegionHealth(RegionCircuit(failures=3, open_seconds=30), clock)
    for _ in range(3):
        health.check("sh")
        _fail(health)
    assert health.state("sh") is CircuitState.OPEN
    with pytest.raises(RegionShortCircuited):
        health.check("sh")
    with pytest.raises(RegionShortCircuited), health.call("sh"):
        pass
    health.check("other")  # other regions are not affected

    clock.now += 30
    health.check("sh")  # due for a trial: a sign-in may start
    with health.call("sh"):  # the trial claims the half-open slot ...
        assert health.state("sh") is CircuitState.HALF_OPEN
        with pytest.raises(RegionShortCircuited):
            health.check("sh")  # ... and nobody else gets one meanwhile
    assert health.state("sh") is CircuitState.CLOSED


def test_a_failed_trial_opens_the_circuit_again_and_answers_that_are_wrong_do_not_count() -> None:
    clock = Clock()
    health = RegionHealth(RegionCircuit(failures=1, open_seconds=10), clock)
    _fail(health)
    clock.now += 10
    _fail(health)
    assert health.state("sh") is CircuitState.OPEN
    with pytest.raises(RegionShortCircuited):
        health.check("sh")
    clock.now += 10
    with pytest.raises(RegionUnavailable), health.call("sh"):  # it answered, wrongly: closed
        raise RegionMetadataInvalid("sh", "discovery issuer 'x' differs")
    assert health.state("sh") is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ("discovery: ConnectionError", ("discovery", "connection_error")),
        ("JWK Set: ReadTimeout", ("jwks", "timeout")),
        ("token endpoint: HTTP 503", ("token", "http_503")),
        ("discovery: no complete answer within the deadline", ("discovery", "timeout")),
        ("discovery: unexpected redirect 302", ("discovery", "redirect")),
    ],
)
def test_failures_are_named_by_stable_codes(detail: str, expected: tuple[str, str]) -> None:
    assert failure_code(RegionUnavailable("sh", detail)) == expected


def test_a_flood_of_distinct_addresses_keeps_at_most_max_keys_buckets() -> None:
    limits = RequestLimits(RateLimits(authorize="5/minute", max_keys=100))
    app = Flask(__name__)
    for n in range(1000):
        with app.test_request_context(
            "/authorize", environ_base={"REMOTE_ADDR": f"10.0.{n // 256}.{n % 256}"}
        ):
            assert limits() is None
    assert len(limits.storage.events) <= 100


def test_addresses_are_bucketed_by_host() -> None:
    assert client_address("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert client_address("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_address("192.0.2.1") == "192.0.2.1"
    assert client_address(None) == client_address("junk") == "unknown"
