"""Per-region health: a region that keeps failing is short-circuited, and probed until it answers.

DESIGN.md ("Towards regions"): a region that is down must fail fast and alone. Every upstream
call is bounded (:mod:`gateway.broker.transport`, 5 s by default), but without memory each
citizen who chooses a dead region still waits those seconds, and the threads waiting with them
are threads other regions' citizens do not get (THREAT_MODEL row 7: no thread held past a
deadline). :class:`RegionHealth` is the circuit breaker of the well-known pattern (Nygard,
*Release It!*, "Circuit Breaker"), one circuit per region:

* **closed**: calls go through. After ``failures`` consecutive failed calls to the region's
  discovery document, JWK Set or token endpoint (a connection error, a timeout, a 5xx: what
  :func:`gateway.broker.transport.request_json` raises as :class:`RegionUnavailable`) the circuit
  **opens**.
* **open**: :meth:`RegionClient.start_login <gateway.broker.client.RegionClient.start_login>`
  (the chooser's answer and ``/authorize?region=``) and the metadata fetches refuse at once with
  :class:`RegionShortCircuited`, the same ``region_unavailable`` page, instead of a wait per
  citizen. Cached documents and keys are still served (:class:`~gateway.broker.metadata.
  MetadataCache` serves stale while a region is down).
* :class:`RegionProbe` (a daemon thread per process, like :mod:`gateway.housekeeping`'s jobs)
  fetches each open region's discovery document every ``probe_seconds``; when it answers, the
  circuit **closes** and the fresh document is cached. Without a probe (tests that wire services
  by hand), one live call is let through as a **half-open** trial ``open_seconds`` after the last
  failure; its outcome closes or reopens the circuit.

A region that *answers* badly (an issuer that differs, a JSON body that is not an object, a
404) is not a failure here: it answers at once, so there is no wait to save, and its errors have
their own codes.

**State per process**: each worker of each replica keeps its own circuits (nothing is shared; a
process learns about a dead region from its own K failures). ``/status`` (:mod:`gateway.health`)
shows the circuits of the process that answers.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from gateway.broker.errors import RegionMetadataInvalid, RegionUnavailable
from gateway.settings import RegionCircuit

if TYPE_CHECKING:
    from gateway.broker.metadata import MetadataCache
    from gateway.registry import Region

__all__ = [
    "CircuitState",
    "RegionHealth",
    "RegionProbe",
    "RegionShortCircuited",
    "failure_code",
]

log = logging.getLogger(__name__)

FAILURES: Final = frozenset({"timeout", "connection_error", "tls_error"})
"""Codes that count as a failure, beside ``http_5xx``."""
_CALLS: Final = {
    "discovery": "discovery",
    "JWK Set": "jwks",
    "token endpoint": "token",
    "federation": "federation",  # a federated region's trust chain (issue 17)
}
_HTTP_STATUS = re.compile(r"HTTP (\d{3})")


class RegionShortCircuited(RegionUnavailable):
    """The region failed again and again: refused at once, without calling it (same page and
    code as :class:`RegionUnavailable`)."""


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class _Circuit:
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0  # consecutive
    since: float = 0.0  # when the current state began (epoch seconds)
    failed_at: float = 0.0  # the last failure
    last_call: str | None = None
    last_error: str | None = None
    trial_at: float | None = None  # a half-open trial in flight, since


def failure_code(error: RegionUnavailable) -> tuple[str, str]:
    """The call (``discovery``, ``jwks``, ``token``) and a stable code for what went wrong,
    from the transport's ``detail`` (never a URL, a body or a secret)."""
    detail = error.detail.removeprefix(f"region {error.region}: ")
    what, _, why = detail.partition(": ")
    call = _CALLS.get(what, "other")
    if isinstance(error, RegionMetadataInvalid):
        return call, "invalid"
    if "Timeout" in why or "deadline" in why:
        return call, "timeout"
    if "SSLError" in why:
        return call, "tls_error"
    if "ConnectionError" in why or "ChunkedEncodingError" in why:
        return call, "connection_error"
    status = _HTTP_STATUS.match(why)
    if status is not None:
        return call, f"http_{status.group(1)}"
    if "redirect" in why:
        return call, "redirect"
    if "large" in why:
        return call, "too_large"
    if "not JSON" in why:
        return call, "not_json"
    return call, "unavailable"


def _is_failure(code: str) -> bool:
    return code in FAILURES or (code.startswith("http_5") and len(code) == 8)


class RegionHealth:
    """The circuits of every region in one process. Thread-safe; ``clock`` is epoch seconds."""

    def __init__(
        self, policy: RegionCircuit | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.policy = policy if policy is not None else RegionCircuit()
        self.clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()

    # -- admission ---------------------------------------------------------------------------

    def check(self, code: str) -> None:
        """Raise :class:`RegionShortCircuited` when ``code`` is open and not yet due for a
        trial (a sign-in starts only at a region that may answer). Claims nothing."""
        with self._lock:
            circuit = self._circuits.get(code)
            if circuit is not None and not self._due(circuit, self.clock()):
                raise self._refusal(code, circuit)

    @contextmanager
    def call(self, code: str, *, probe: bool = False) -> Iterator[None]:
        """Around one upstream call: refuse it at once when the circuit is open (unless this
        is the ``probe``, or the half-open trial), and record its outcome."""
        if not probe:
            self._admit(code)
        try:
            yield
        except RegionUnavailable as error:
            call, reason = failure_code(error)
            if _is_failure(reason):
                self.failed(code, call, reason)
            else:
                self.succeeded(code)  # it answered, at once: nothing to short-circuit
            raise
        except BaseException:
            self._release(code)
            raise
        self.succeeded(code)

    def _admit(self, code: str) -> None:
        with self._lock:
            circuit = self._circuits.get(code)
            if circuit is None or circuit.state is CircuitState.CLOSED:
                return
            now = self.clock()
            if not self._due(circuit, now):
                raise self._refusal(code, circuit)
            circuit.state, circuit.since, circuit.trial_at = CircuitState.HALF_OPEN, now, now
        log.info("region %s: circuit half-open, one trial call", code)

    def _due(self, circuit: _Circuit, now: float) -> bool:
        """Whether a call may go to the region: closed, or open long enough for one trial
        (a trial in flight for longer than ``open_seconds`` is taken as lost)."""
        if circuit.state is CircuitState.CLOSED:
            return True
        if circuit.state is CircuitState.HALF_OPEN:
            return circuit.trial_at is None or now - circuit.trial_at >= self.policy.open_seconds
        return now - circuit.failed_at >= self.policy.open_seconds

    @staticmethod
    def _refusal(code: str, circuit: _Circuit) -> RegionShortCircuited:
        return RegionShortCircuited(
            code, f"short-circuited after {circuit.failures} failures ({circuit.last_error})"
        )

    # -- outcomes ----------------------------------------------------------------------------

    def failed(self, code: str, call: str, reason: str) -> None:
        """A call to ``code`` failed (``reason`` from :func:`failure_code`)."""
        with self._lock:
            now = self.clock()
            circuit = self._circuits.setdefault(code, _Circuit(since=now))
            circuit.failures += 1
            circuit.failed_at = now
            circuit.last_call, circuit.last_error = call, reason
            circuit.trial_at = None
            opens = circuit.state is CircuitState.HALF_OPEN or (
                circuit.state is CircuitState.CLOSED and circuit.failures >= self.policy.failures
            )
            if opens:
                circuit.state, circuit.since = CircuitState.OPEN, now
        if opens:
            log.warning(
                "region %s: circuit open after %d failures (last: %s %s)",
                code,
                circuit.failures,
                call,
                reason,
                extra={"event": "region.circuit_open", "region": code, "error_code": reason},
            )

    def succeeded(self, code: str) -> None:
        """A call to ``code`` was answered: the circuit closes."""
        with self._lock:
            circuit = self._circuits.get(code)
            if circuit is None:
                return
            reopened = circuit.state is not CircuitState.CLOSED
            circuit.failures, circuit.trial_at = 0, None
            if reopened:
                circuit.state, circuit.since = CircuitState.CLOSED, self.clock()
        if reopened:
            log.info(
                "region %s: circuit closed, the region answers",
                code,
                extra={"event": "region.circuit_closed", "region": code},
            )

    def _release(self, code: str) -> None:
        """A call ended without an outcome (an unexpected error): free its trial."""
        with self._lock:
            circuit = self._circuits.get(code)
            if circuit is not None and circuit.state is CircuitState.HALF_OPEN:
                circuit.state, circuit.trial_at = CircuitState.OPEN, None

    def forget(self, code: str) -> None:
        """Drop the circuit of ``code`` (the region was changed or deleted)."""
        with self._lock:
            self._circuits.pop(code, None)

    # -- what operations see -----------------------------------------------------------------

    def open_regions(self) -> list[str]:
        """The codes whose circuit is not closed (what the probe asks)."""
        with self._lock:
            return sorted(
                c for c, s in self._circuits.items() if s.state is not CircuitState.CLOSED
            )

    def state(self, code: str) -> CircuitState:
        with self._lock:
            circuit = self._circuits.get(code)
            return CircuitState.CLOSED if circuit is None else circuit.state

    def snapshot(self, codes: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Each region's circuit for ``/status``: state, consecutive failures, since when
        (RFC 3339), the last failed call and its code. ``codes`` adds regions never seen."""
        with self._lock:
            circuits = {code: _Circuit(**vars(c)) for code, c in self._circuits.items()}
        for code in codes or ():
            circuits.setdefault(code, _Circuit())
        return {
            code: {
                "state": str(c.state),
                "failures": c.failures,
                "since": _rfc3339(c.since) if c.since else None,
                "last_error": (
                    {"call": c.last_call, "code": c.last_error} if c.last_error else None
                ),
            }
            for code, c in sorted(circuits.items())
        }


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class RegionProbe:
    """Every ``interval`` seconds, asks each open region for its discovery document (through
    :meth:`MetadataCache.probe <gateway.broker.metadata.MetadataCache.probe>`), which closes the
    circuit when the region answers. A daemon thread per process, stopped with the cache."""

    name = "tongxing-region-probe"

    def __init__(
        self,
        cache: MetadataCache,
        find_region: Callable[[str], Region | None],
        interval: float,
    ) -> None:
        if interval <= 0:
            raise ValueError("the probe interval must be positive")
        self.cache = cache
        self.find_region = find_region
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def run_once(self) -> int:
        """Probe every open region once; how many now answer."""
        health, answered = self.cache.health, 0
        for code in health.open_regions():
            try:
                region = self.find_region(code)
            except Exception:  # the store is down: the next round tries again
                log.warning("region probe: cannot read region %s; trying again later", code)
                continue
            if region is None or not region.enabled:
                health.forget(code)
                continue
            try:
                self.cache.probe(region)
            except RegionUnavailable:
                continue
            except Exception:  # a probe must not end the timer
                log.exception("region probe of %s failed unexpectedly", code)
                continue
            answered += 1
        return answered
