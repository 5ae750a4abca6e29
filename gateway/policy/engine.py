"""The policy engine: the questions the gateway asks Cedar, the answers, and the decision cache.

Three questions: may this person enter this portal; which level of assurance must this sign-in
reach first; which claims may leave for this portal. Each is one batch of Cedar requests
(:mod:`gateway.policy.entities`) against the active set (:mod:`gateway.policy.loader`), and
Cedar's answers become :class:`Decision` values: a forbid that applies denies, otherwise a
permit that applies allows, otherwise the default is deny (Cedar docs: How Cedar authorization
works, https://docs.cedarpolicy.com/auth/authorization.html).

Evaluation fails closed: if Cedar reports an error for a request (which a validated set should
never produce), the answer is "deny" and the error is logged.

Decisions are cached per loaded set (:class:`DecisionCache`): the same question about the same
facts is answered from memory, logged all the same, and a reload starts with an empty cache.

Log lines carry the policy ids, the subject id, the portal and claim *names*: never claim values
or identity numbers (none reach this package).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

import cedarpy

from gateway.clock import utc_now
from gateway.policy.entities import (
    LEVELS,
    PersonFacts,
    PortalFacts,
    cedar_entities,
    claim_request,
    enter_request,
    known_level,
    level_rank,
)
from gateway.policy.loader import (
    LoadedPolicySet,
    PolicyLoader,
    PolicySetInfo,
    default_policy_dir,
    one_line,
)
from gateway.policy.stored import (
    POLL_INTERVAL,
    PolicyFollower,
    StoredPolicySets,
    initial_policy_set,
)
from gateway.registry import Level
from gateway.store.contract import PolicySetStore

# The package's logger, one name for operators to filter on (as before the package was split).
log = logging.getLogger(__package__)


@dataclass(frozen=True)
class Decision:
    """Cedar's answer to one question, and why.

    ``policy_ids`` are the ``@id`` of the policies that decided it: the forbids that denied, or
    the permits that allowed; empty when nothing permitted (Cedar's default deny). ``reasons``
    are their ``@reason`` annotations, for operators. ``errors`` is non-empty only when Cedar
    could not evaluate the request; the decision is then a denial (fail closed).
    """

    allowed: bool
    policy_ids: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class EntryDecision(Decision):
    """A decision about entering a portal at the person's level.

    ``required_level`` is the lowest level at which the policies would let this person in
    (``None``: no level would). A denial with a ``required_level`` above the person's level is
    a reason to step up; a denial without one is final (``access_denied``).
    """

    required_level: Level | None = None


DECISION_CACHE_SIZE: Final = 4096
"""Questions remembered per loaded set; when full the cache is emptied and fills again."""

Question = Literal["enter", "release_claim"]

# (question, claim names asked about, the portal, the person: without subject unless the set
# names a Person; see DecisionCache)
DecisionKey = tuple[Question, tuple[str, ...], PortalFacts, PersonFacts]


def _cache_size() -> int:
    # Read at each store (not bound at import), so a test can lower it for one run.
    return DECISION_CACHE_SIZE


class DecisionCache:
    """One loaded policy set, and the decisions it has already made.

    Caching Cedar's answers is sound because an answer is a pure function of the policies, the
    schema, the entities and the requests (Cedar has no clock, no randomness and no I/O), and
    the first two are :attr:`policies` while the last two are built (by
    :mod:`gateway.policy.entities`) from nothing but the :class:`PersonFacts`, the
    :class:`PortalFacts` and the claim names, all of which are in the key. A cache serves one set
    only, so a reload, which brings a new set, brings an empty cache. Answers that carry errors
    are not cached: an error says nothing stable about the facts, and must not pin a denial.

    The person's ``subject`` reaches Cedar only as the principal's entity id, and the only way a
    policy can tell two principals apart by id is to compare them with a ``Tongxing::Person``
    entity literal (Cedar cannot read an entity id as a string, people have no parents, and no
    other entity or context value the gateway builds is a Person). So when no policy of the set
    contains such a literal (``names_a_person`` false), the subject is left out of the key and
    everyone with the same home region, level, amr and age band shares one answer; when one does,
    the subject is part of the key.

    No lock: the cache maps keys to immutable answers, a dict's ``get``, item assignment and
    ``clear`` are each atomic (under the GIL, and under a free-threaded build's per-object
    locks), and two threads racing on one key compute the same answer. The worst a race does is
    a needless miss, or the cache briefly holding a few entries more than the bound.
    """

    __slots__ = ("_decisions", "policies")

    def __init__(self, policies: LoadedPolicySet) -> None:
        self.policies = policies
        self._decisions: dict[DecisionKey, tuple[Decision, ...]] = {}

    def __len__(self) -> int:
        return len(self._decisions)

    def key(
        self,
        question: Question,
        claims: tuple[str, ...],
        portal: PortalFacts,
        person: PersonFacts,
    ) -> DecisionKey:
        """What an answer depends on; the subject only when a policy names a person."""
        # replace() keeps every other fact, so a fact added to PersonFacts joins the key by itself.
        who = person if self.policies.names_a_person else replace(person, subject="")
        return (question, claims, portal, who)

    def get(self, key: DecisionKey) -> tuple[Decision, ...] | None:
        return self._decisions.get(key)

    def put(self, key: DecisionKey, decisions: tuple[Decision, ...]) -> None:
        """Remember ``decisions`` unless one carries errors; a full cache is emptied first."""
        if any(decision.errors for decision in decisions):
            return
        if len(self._decisions) >= _cache_size():
            self._decisions.clear()
        self._decisions[key] = decisions


class PolicyEngine:
    """The active Cedar policy set and the three questions the gateway asks it.

    Thread-safe: a decision reads the active set once; :meth:`reload` swaps in a new one only
    after it has been validated completely (:class:`~gateway.policy.loader.PolicyLoader`).

    With a ``store`` the set is the store's (:mod:`gateway.policy.stored`): the engine starts on
    its newest generation (or records the files as the first), a reload writes a new generation,
    and :meth:`follow` activates what other processes wrote, so every worker and replica
    enforces one set (issue 14).
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        clock: Callable[[], datetime.datetime] | None = None,
        store: PolicySetStore | None = None,
    ) -> None:
        """Load and validate ``directory`` (default :func:`default_policy_dir`), or with a
        ``store`` its newest generation.

        Raises :class:`PolicySetError` if the set is invalid: a gateway never starts without one.
        """
        clock = clock or utc_now
        folder = (directory or default_policy_dir()).resolve()
        initial = initial_policy_set(store, folder, clock()) if store is not None else None
        self._loader = PolicyLoader(folder, clock=clock, initial=initial)
        self._cache = DecisionCache(self._loader.active)
        self._stored = StoredPolicySets(store, self._loader, clock) if store is not None else None
        self._follower: PolicyFollower | None = None

    @property
    def directory(self) -> Path:
        return self._loader.directory

    @property
    def info(self) -> PolicySetInfo:
        """The active set: digest, generation (``None`` without a store), files, policy ids.

        What metrics and ``GET /admin/v1/policies`` show; one attribute read, cheap enough for
        every scrape.
        """
        return self._loader.active.info

    @property
    def digest(self) -> str:
        """The active set's digest (:func:`~gateway.policy.loader.policy_digest`)."""
        return self.info.digest

    @property
    def generation(self) -> int | None:
        """The active set's generation in the store (``None`` without a store)."""
        return self.info.generation

    def reload(self, principal: str = "unknown") -> PolicySetInfo:
        """Load the directory again; on any problem keep the active set and raise.

        With a store the new set is written as the next generation, by ``principal``, and the
        other processes activate it at their next poll; a refused set writes nothing.
        Raises :class:`PolicySetError` naming each file and Cedar's message.
        """
        if self._stored is None:
            return self._loader.reload().info
        return self._stored.reload(principal).info

    def refresh(self) -> bool:
        """Activate the store's newest generation now if it is not the active one (what the
        follower does every few seconds); ``False`` without a store."""
        return self._stored.refresh() if self._stored is not None else False

    def follow(self, interval: float = POLL_INTERVAL) -> None:
        """Poll the store every ``interval`` seconds in a daemon thread until :meth:`stop`
        (nothing without a store; a second call changes nothing)."""
        if self._stored is None or self._follower is not None:
            return
        self._follower = PolicyFollower(self._stored, interval)
        self._follower.start()

    def stop(self) -> None:
        """Stop following the store (if :meth:`follow` started it)."""
        if self._follower is not None:
            self._follower.stop()

    def _active(self) -> DecisionCache:
        """The active set, with the decisions it has made; a new set starts a new cache."""
        active = self._loader.active
        cache = self._cache
        if cache.policies is not active:
            cache = DecisionCache(active)
            self._cache = cache
        return cache

    # questions

    def may_enter(self, person: PersonFacts, portal: PortalFacts) -> EntryDecision:
        """May ``person``, at the level of this sign-in, enter ``portal``?

        The answer also says the lowest level that would let them in, so a caller can tell
        "step up" from "denied" without asking again.
        """
        by_level = self._entry_at_each_level(self._active(), person, portal)
        return self._may_enter(person, portal, by_level)

    def required_level(
        self,
        person: PersonFacts,
        portal: PortalFacts,
        requested_acr_values: str | Sequence[str] | None = None,
    ) -> Level:
        """The level this sign-in must reach before ``portal`` gets a code.

        The highest of: the portal's registered minimum level; what the request asks for with
        ``acr_values`` (OIDC Core §3.1.2.1); and the lowest level at which the policies let this
        person in. ``acr_values`` lists acceptable values in order of preference, so it
        contributes its *lowest* known level (unknown values are ignored: the parameter is a
        voluntary request, and ``acr`` in the ID token will say what happened). If no level
        lets the person in, the policies add nothing here and :meth:`may_enter` denies.
        """
        by_level = self._entry_at_each_level(self._active(), person, portal)
        return self._required_level(person, portal, requested_acr_values, by_level)

    def admission(
        self,
        person: PersonFacts,
        portal: PortalFacts,
        requested_acr_values: str | Sequence[str] | None = None,
    ) -> tuple[Level, EntryDecision]:
        """:meth:`required_level` and :meth:`may_enter` together, from one evaluation.

        Both answers come from the same Cedar requests ("enter" at each level); an authorization
        request needs both, so this asks Cedar once instead of twice.
        """
        by_level = self._entry_at_each_level(self._active(), person, portal)
        required = self._required_level(person, portal, requested_acr_values, by_level)
        return required, self._may_enter(person, portal, by_level)

    def _may_enter(
        self, person: PersonFacts, portal: PortalFacts, by_level: dict[Level, Decision]
    ) -> EntryDecision:
        decision = by_level[person.level]
        required = next((level for level in LEVELS if by_level[level].allowed), None)
        entry = EntryDecision(
            decision.allowed, decision.policy_ids, decision.reasons, decision.errors, required
        )
        self._log(
            "enter",
            person,
            portal,
            entry,
            level=person.level,
            required_level=required,
        )
        return entry

    def _required_level(
        self,
        person: PersonFacts,
        portal: PortalFacts,
        requested_acr_values: str | Sequence[str] | None,
        by_level: dict[Level, Decision],
    ) -> Level:
        policy_level = next((level for level in LEVELS if by_level[level].allowed), None)
        requested = _requested_level(requested_acr_values)
        candidates = [portal.minimum_level]
        if requested is not None:
            candidates.append(requested)
        if policy_level is not None:
            candidates.append(policy_level)
        required = max(candidates, key=level_rank)
        # The forbids that keep this person out below the policies' level, if any.
        below = _level_below(policy_level) if policy_level is not None else None
        raised_by = by_level[below].policy_ids if below is not None else ()
        log.info(
            "policy required level %s for subject=%s portal=%s (registered %s, requested %s, "
            "policies %s)",
            required,
            person.subject,
            portal.client_id,
            portal.minimum_level,
            requested,
            policy_level,
            extra={
                "event": "policy.required_level",
                "subject": person.subject,
                "portal": portal.client_id,
                "required_level": required,
                "registered_level": portal.minimum_level,
                "requested_level": requested,
                "policy_level": policy_level,
                "policy_ids": list(raised_by),
            },
        )
        return required

    def released_claims(
        self, person: PersonFacts, portal: PortalFacts, candidate_claims: Iterable[str]
    ) -> set[str]:
        """Which of ``candidate_claims`` (claim names) may leave for ``portal``."""
        decisions = self.claim_decisions(person, portal, candidate_claims)
        return {claim for claim, decision in decisions.items() if decision.allowed}

    def claim_decisions(
        self, person: PersonFacts, portal: PortalFacts, candidate_claims: Iterable[str]
    ) -> dict[str, Decision]:
        """Each candidate claim's decision, with the policies that made it."""
        claims = sorted(set(candidate_claims))
        if not claims:
            return {}
        results = self._decide(self._active(), "release_claim", person, portal, tuple(claims))
        decisions = dict(zip(claims, results, strict=True))
        released = sorted(claim for claim, d in decisions.items() if d.allowed)
        withheld = {claim: list(d.policy_ids) for claim, d in decisions.items() if not d.allowed}
        errors = sorted({error for d in decisions.values() for error in d.errors})
        log.log(
            logging.ERROR if errors else logging.INFO,
            "policy release_claim subject=%s portal=%s released=%s withheld=%s",
            person.subject,
            portal.client_id,
            ",".join(released) or "-",
            ",".join(f"{c}({'|'.join(ids) or 'default-deny'})" for c, ids in withheld.items())
            or "-",
            extra={
                "event": "policy.decision",
                "action": "release_claim",
                "subject": person.subject,
                "portal": portal.client_id,
                "released": {c: list(decisions[c].policy_ids) for c in released},
                "withheld": withheld,
                "errors": errors,
            },
        )
        return decisions

    # evaluation

    def _entry_at_each_level(
        self, active: DecisionCache, person: PersonFacts, portal: PortalFacts
    ) -> dict[Level, Decision]:
        results = self._decide(active, "enter", person, portal, ())
        return dict(zip(LEVELS, results, strict=True))

    @classmethod
    def _decide(
        cls,
        active: DecisionCache,
        question: Question,
        person: PersonFacts,
        portal: PortalFacts,
        claims: tuple[str, ...],
    ) -> tuple[Decision, ...]:
        """Ask ``active`` one question, from its cache when it has answered it before.

        "enter" is asked at every level (``claims`` empty), "release_claim" for each of
        ``claims`` (sorted, no duplicates). Why caching is sound: :class:`DecisionCache`.
        Callers log every decision, cached or not.
        """
        key = active.key(question, claims, portal, person)
        cached = active.get(key)
        if cached is not None:
            return cached
        if question == "enter":
            requests = [enter_request(person, portal, level) for level in LEVELS]
        else:
            requests = [claim_request(person, portal, claim) for claim in claims]
        entities = cedar_entities(person, portal, claims)
        decisions = tuple(cls._evaluate(active.policies, requests, entities))
        active.put(key, decisions)
        return decisions

    @staticmethod
    def _evaluate(
        active: LoadedPolicySet, requests: list[dict[str, Any]], entities: list[dict[str, Any]]
    ) -> list[Decision]:
        results = cedarpy.is_authorized_batch(requests, active.policies, entities, active.schema)
        decisions = []
        for result in results:
            errors = tuple(one_line(error) for error in result.diagnostics.errors)
            ids = tuple(sorted(result.diagnostics.reasons))
            reasons = tuple(active.by_id[i].reason or i for i in ids if i in active.by_id)
            # Fail closed: an error means some policy could not be evaluated (and a forbid that
            # errors is skipped by Cedar), so the answer cannot be trusted to be an "allow".
            allowed = result.allowed and not errors
            decisions.append(Decision(allowed, ids, reasons, errors))
        return decisions

    @staticmethod
    def _log(
        action: str,
        person: PersonFacts,
        portal: PortalFacts,
        decision: Decision,
        **details: Any,
    ) -> None:
        log.log(
            logging.ERROR if decision.errors else logging.INFO,
            "policy %s %s subject=%s portal=%s by %s",
            action,
            "allow" if decision.allowed else "deny",
            person.subject,
            portal.client_id,
            ",".join(decision.policy_ids) or "default-deny",
            extra={
                "event": "policy.decision",
                "action": action,
                "allowed": decision.allowed,
                "subject": person.subject,
                "portal": portal.client_id,
                "policy_ids": list(decision.policy_ids),
                "errors": list(decision.errors),
                **details,
            },
        )


def _level_below(level: Level) -> Level | None:
    rank = level_rank(level)
    return LEVELS[rank - 2] if rank > 1 else None


def _requested_level(requested_acr_values: str | Sequence[str] | None) -> Level | None:
    if requested_acr_values is None:
        return None
    values = (
        requested_acr_values.split()
        if isinstance(requested_acr_values, str)
        else list(requested_acr_values)
    )
    known: list[Level] = []
    for value in values:
        level = known_level(value)
        if level is not None:
            known.append(level)
    if not known:
        return None
    lowest: Level = min(known, key=level_rank)
    return lowest
