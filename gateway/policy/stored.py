"""One policy set for every worker and replica: the store holds it, every process follows it.

Issue 14 ("one policy set everywhere"). Before, ``POST /admin/v1/policies/reload`` activated the
files in the one process that got the request; the others went on with what they had. Now the
store is the source (:class:`~gateway.store.contract.PolicySetStore`):

* **At start** a process activates the store's newest generation; when there is none (the first
  start on this database) it records the files of ``TONGXING_POLICY_DIR`` as generation 1, and
  of several processes starting at once one writes and the others adopt what it wrote. A stored
  set this gateway's code refuses (say, a schema an older version wrote) is logged, and the
  files are recorded as the next generation instead.
* **A reload** validates the files of the process that got the request (refused whole, nothing
  written), writes them as the next generation, with the principal and the time, and activates
  them there (:meth:`PolicyEngine.reload <gateway.policy.PolicyEngine.reload>`).
* **Every process** asks the store for the newest generation every :data:`POLL_INTERVAL`
  seconds (:class:`PolicyFollower`: one lookup on the primary key's index) and, when it
  differs from the active one, reads that generation, validates it as a reload would, and
  activates it. A generation it refuses is logged once and skipped; the active set stays.

So a reload reaches every process within about :data:`POLL_INTERVAL` seconds, and each shows
the same digest and generation (``GET /admin/v1/policies``, metrics). A process that cannot
reach the store keeps enforcing the set it has; it catches up once the store answers again.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

from gateway.policy.loader import (
    LoadedPolicySet,
    PolicyLoader,
    PolicySetError,
    compile_policy_set,
    load_policy_set,
)
from gateway.store.contract import (
    PolicyGenerationConflictError,
    PolicySetRecord,
    PolicySetStore,
)

log = logging.getLogger(__package__)

POLL_INTERVAL: Final = 2.0
"""Seconds between two looks at the store's newest generation, in every process."""

STARTED_BY: Final = "gateway start-up"
"""``activated_by`` of a set a gateway recorded from its files at start (no principal asked)."""


def compile_record(
    record: PolicySetRecord, directory: Path, now: datetime.datetime
) -> LoadedPolicySet:
    """Validate a stored generation as a reload validates files; :class:`PolicySetError` if it
    does not compile here."""
    loaded = compile_policy_set(
        record.documents, directory, now, source=f"the store (generation {record.generation})"
    )
    return loaded.recorded(record.generation, record.activated_by, record.activated_at)


def initial_policy_set(
    store: PolicySetStore, directory: Path, now: datetime.datetime
) -> LoadedPolicySet:
    """The set a starting process activates: the store's newest generation, else its files
    recorded as the first (see the module). :class:`PolicySetError` when neither is usable."""
    record = store.active_policy_set()
    if record is not None:
        try:
            return compile_record(record, directory, now)
        except PolicySetError as error:
            log.error(
                "the store's policy set (generation %d) is refused by this gateway; recording "
                "the files of %s instead: %s",
                record.generation,
                directory,
                "; ".join(f"{file}: {message}" for file, message in error.problems),
                extra={"event": "policy.refused", "generation": record.generation},
            )
    loaded = load_policy_set(directory, now)
    expected = 0 if record is None else record.generation
    try:
        written = store.put_policy_set(
            loaded.documents,
            loaded.info.digest,
            STARTED_BY,
            now,
            expected_generation=expected,
        )
    except PolicyGenerationConflictError:
        # Another process wrote first (several replicas starting at once): adopt its set.
        newest = store.active_policy_set()
        if newest is None:  # pragma: no cover - a conflict means a row exists
            raise
        try:
            return compile_record(newest, directory, now)
        except PolicySetError:
            log.error(
                "the policy set another gateway just stored is refused here; enforcing the "
                "files of %s (generation %d stays in the store)",
                directory,
                newest.generation,
                extra={"event": "policy.refused", "generation": newest.generation},
            )
            return loaded
    return loaded.recorded(written.generation, written.activated_by, written.activated_at)


class StoredPolicySets:
    """A loader's sets kept in the store: recorded on reload, followed from other processes.

    Every step that reads or writes the store and then activates holds the loader's lock, so a
    reload and a poll in one process never activate out of order.
    """

    def __init__(
        self,
        store: PolicySetStore,
        loader: PolicyLoader,
        clock: Callable[[], datetime.datetime],
    ) -> None:
        self.store = store
        self.loader = loader
        self.clock = clock
        # The generation a poll refused: logged once, not tried again until another comes.
        self._refused: int | None = None

    def reload(self, principal: str) -> LoadedPolicySet:
        """Validate the files and activate them everywhere (:class:`PolicySetError`: nothing
        written, nothing activated). Files identical to the store's newest generation are not
        written again: this process activates that generation."""
        with self.loader.lock:
            loaded = self.loader.load()
            newest = self.store.active_policy_set()
            if newest is not None and newest.digest == loaded.info.digest:
                recorded = loaded.recorded(
                    newest.generation, newest.activated_by, newest.activated_at
                )
            else:
                written = self.store.put_policy_set(
                    loaded.documents, loaded.info.digest, principal, self.clock()
                )
                recorded = loaded.recorded(
                    written.generation, written.activated_by, written.activated_at
                )
            return self.loader.activate(recorded)

    def refresh(self) -> bool:
        """One poll: activate the store's newest generation if it is not the active one.

        ``True`` when a set was activated. Raises what the store raises when it cannot be
        reached (:class:`~gateway.store.contract.StoreUnavailableError`).
        """
        generation = self.store.policy_set_generation()
        if generation is None or generation in (self.loader.active.info.generation, self._refused):
            return False
        with self.loader.lock:
            record = self.store.active_policy_set()
            if record is None or record.generation == self.loader.active.info.generation:
                return False
            try:
                loaded = compile_record(record, self.loader.directory, self.clock())
            except PolicySetError as error:
                self._refused = record.generation
                log.error(
                    "policy set generation %d refused by this process, keeping %s: %s",
                    record.generation,
                    self.loader.active.info.digest[:12],
                    "; ".join(f"{file}: {message}" for file, message in error.problems),
                    extra={"event": "policy.refused", "generation": record.generation},
                )
                return False
            self._refused = None
            self.loader.activate(loaded)
            return True


class PolicyFollower:
    """Polls the store every ``interval`` seconds in a daemon thread (:meth:`StoredPolicySets.
    refresh`) until stopped. A store that does not answer is logged once, then quietly tried
    again each round; the active set stays meanwhile."""

    name = "tongxing-policy-follower"

    def __init__(self, sets: StoredPolicySets, interval: float = POLL_INTERVAL) -> None:
        if interval <= 0:
            raise ValueError("the interval must be positive")
        self.sets = sets
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> bool:
        """One poll now; ``False`` also when the store did not answer."""
        try:
            changed = self.sets.refresh()
        except Exception:  # a database hiccup must not end the thread; the next round tries
            if not self._failing:
                log.warning(
                    "looking for a new policy set failed; trying again every %.0f s",
                    self.interval,
                )
            self._failing = True
            return False
        if self._failing:
            log.info("the policy set's store answers again")
        self._failing = False
        return changed

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()


__all__ = [
    "POLL_INTERVAL",
    "STARTED_BY",
    "PolicyFollower",
    "StoredPolicySets",
    "compile_record",
    "initial_policy_set",
]
