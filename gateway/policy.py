"""Policies: who may enter which portal, at which level of assurance, with which claims.

The rules are Cedar policies (``policies/*.cedar``), validated against the Cedar schema
``policies/schema.cedarschema`` and evaluated with :mod:`cedarpy`. This module turns the gateway's
facts about a person, a portal and a sign-in into Cedar entities and requests, and Cedar's
answers into :class:`Decision` values. Protocol-free: no Flask, no HTTP.

Loading is all or nothing. Every file is parsed and validated against the schema; every policy
must carry a unique ``@id`` annotation (decisions are logged with it, and Cedar's own positional
ids change whenever a file is edited); and the gateway's own requests are tried on the new set
to prove the schema still fits them. A set that fails any of this is refused as a whole with a
message naming the file and Cedar's error, and the set that was active stays active.

Evaluation fails closed: if Cedar reports an error for a request (which a validated set should
never produce), the answer is "deny" and the error is logged.

Decisions are cached per loaded set (see :class:`_LoadedSet`): the same question about the same
facts is answered from memory, logged all the same, and a reload starts with an empty cache.

Log lines carry the policy ids, the subject id, the portal and claim *names*: never claim values
or identity numbers (none reach this module).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal, get_args

import cedarpy

from gateway.registry import Level, Portal

log = logging.getLogger(__name__)

LEVELS: Final[tuple[Level, ...]] = get_args(Level)
"""National levels of assurance, weakest first: loa1 one factor, loa2 two, loa3 two + real name."""

SCHEMA_FILE: Final = "schema.cedarschema"
NAMESPACE: Final = "Tongxing"
PERSON: Final = f"{NAMESPACE}::Person"
PORTAL: Final = f"{NAMESPACE}::Portal"
CLAIM: Final = f"{NAMESPACE}::Claim"
ACTION: Final = f"{NAMESPACE}::Action"

ID_NUMBER_CLAIM: Final = "id_number"

# OIDC Core §5.4 style: the personal claims each scope stands for (the provider releases from
# this table too, so the two cannot drift).
SCOPE_CLAIMS: Final[Mapping[str, tuple[str, ...]]] = {
    "profile": ("name", "home_region"),
    "phone": ("phone_number",),
    "id_number": (ID_NUMBER_CLAIM,),
}

AgeBand = Literal["minor", "adult", "senior"]


_RANKS: Final[Mapping[str, int]] = {level: rank for rank, level in enumerate(LEVELS, start=1)}


def level_rank(level: str) -> int:
    """1 for loa1, 2 for loa2, 3 for loa3; :class:`ValueError` for anything else."""
    try:
        return _RANKS[level]
    except KeyError:
        raise ValueError(f"unknown level of assurance {level!r}") from None


def known_level(value: str) -> Level | None:
    """``value`` if it is a national level, else ``None``."""
    for level in LEVELS:
        if value == level:
            return level
    return None


def age_band(birth_date: datetime.date, today: datetime.date) -> AgeBand:
    """The age band policies may use: under 18 a minor, 60 and over a senior."""
    years = (
        today.year
        - birth_date.year
        - ((today.month, today.day) < (birth_date.month, birth_date.day))
    )
    if years < 18:
        return "minor"
    return "senior" if years >= 60 else "adult"


def default_policy_dir() -> Path:
    """The policies shipped with the gateway.

    Installed from a wheel they are package data in ``gateway/policies`` (see the pyproject
    proposal in the issue); in a source checkout or an editable install they are the
    repository's ``policies/`` folder next to the ``gateway`` package.
    """
    package = Path(__file__).resolve().parent
    packaged = package / "policies"
    if (packaged / SCHEMA_FILE).is_file():
        return packaged
    return package.parent / "policies"


# --- facts in, decisions out --------------------------------------------------------------------


@dataclass(frozen=True)
class PersonFacts:
    """What policies may know about the person signing in (no claim values, no id number).

    ``level`` and ``amr`` describe this sign-in (the session's ``acr``/``amr``); they reach Cedar
    in the request context. ``home_region`` is the region that vouched for the person.
    """

    subject: str
    home_region: str
    level: Level
    amr: tuple[str, ...] = ()
    age_band: AgeBand | None = None

    def __post_init__(self) -> None:
        level_rank(self.level)


@dataclass(frozen=True)
class PortalFacts:
    """What policies may know about a portal: its registration, as entity attributes."""

    client_id: str
    owner: str
    sector: str = "general"
    minimum_level: Level = "loa1"
    requested_claims: frozenset[str] = frozenset()
    may_receive_id_number: bool = False
    allowed_home_regions: frozenset[str] | None = None

    def __post_init__(self) -> None:
        level_rank(self.minimum_level)

    @classmethod
    def from_portal(cls, portal: Portal) -> PortalFacts:
        """Facts from a registered portal; it requests the claims of its registered scopes."""
        return cls(
            client_id=portal.client_id,
            owner=portal.owner,
            sector=portal.sector,
            minimum_level=portal.minimum_level,
            requested_claims=claims_for_scopes(portal.scopes),
            may_receive_id_number=portal.may_receive_id_number,
            allowed_home_regions=(
                None
                if portal.allowed_home_regions is None
                else frozenset(portal.allowed_home_regions)
            ),
        )


def claims_for_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The personal claims the given scopes stand for (unknown scopes stand for none)."""
    return frozenset(claim for scope in scopes for claim in SCOPE_CLAIMS.get(scope, ()))


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


# --- loading ------------------------------------------------------------------------------------


class PolicySetError(Exception):
    """A policy set that cannot be used; ``problems`` are ``(file, message)`` pairs."""

    def __init__(self, directory: Path, problems: Sequence[tuple[str, str]]) -> None:
        self.directory = directory
        self.problems = tuple(problems)
        lines = "\n".join(f"  {file}: {message}" for file, message in self.problems)
        super().__init__(f"policy set in {directory} refused:\n{lines}")


@dataclass(frozen=True)
class _Policy:
    id: str
    file: str
    effect: str
    reason: str | None


@dataclass(frozen=True)
class PolicySetInfo:
    """What is active: where it came from, a digest of its text, and its policies' ids."""

    directory: Path
    files: tuple[str, ...]
    policy_ids: tuple[str, ...]
    digest: str
    loaded_at: datetime.datetime


DECISION_CACHE_SIZE: Final = 4096
"""Questions remembered per loaded set; when full the cache is emptied and fills again."""

_Question = Literal["enter", "release_claim"]

# (question, claim names asked about, the portal, the person: without subject unless the set
# names a Person; see _LoadedSet)
_DecisionKey = tuple[_Question, tuple[str, ...], PortalFacts, PersonFacts]


@dataclass(frozen=True)
class _LoadedSet:
    """One validated policy set, and the decisions it has already made.

    ``decisions`` caches Cedar's answers. That is sound because an answer is a pure function of
    the policies, the schema, the entities and the requests (Cedar has no clock, no randomness
    and no I/O), and the first two are this set while the last two are built (in
    :func:`_entities`, :func:`_enter_request`, :func:`_claim_request`) from nothing but the
    :class:`PersonFacts`, the :class:`PortalFacts` and the claim names, all of which are in the
    key. The cache lives and dies with the set, so :meth:`PolicyEngine.reload` drops it by
    swapping the set. Answers that carry errors are not cached: an error says nothing stable
    about the facts, and must not pin a denial.

    The person's ``subject`` reaches Cedar only as the principal's entity id, and the only way a
    policy can tell two principals apart by id is to compare them with a ``Tongxing::Person``
    entity literal (Cedar cannot read an entity id as a string, people have no parents, and no
    other entity or context value the gateway builds is a Person). So when no policy of the set
    contains such a literal (``names_a_person`` false), the subject is left out of the key and
    everyone with the same home region, level, amr and age band shares one answer; when one does,
    the subject is part of the key.

    No lock on the cache: it maps keys to immutable answers, a dict's ``get``, item assignment
    and ``clear`` are each atomic (under the GIL, and under a free-threaded build's per-object
    locks), and two threads racing on one key compute the same answer. The worst a race does is
    a needless miss, or the cache briefly holding a few entries more than the bound.
    """

    info: PolicySetInfo
    schema: cedarpy.Schema
    policies: cedarpy.PolicySet
    by_id: Mapping[str, _Policy] = field(hash=False)
    names_a_person: bool
    decisions: dict[_DecisionKey, tuple[Decision, ...]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )


def _load(directory: Path, now: datetime.datetime) -> _LoadedSet:
    """Parse and validate every file of ``directory``; raise :class:`PolicySetError` if any fail."""
    problems: list[tuple[str, str]] = []
    schema_path = directory / SCHEMA_FILE
    try:
        schema_text = schema_path.read_text(encoding="utf-8")
        schema = cedarpy.Schema.from_str(schema_text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise PolicySetError(directory, [(SCHEMA_FILE, _one_line(error))]) from None

    files = sorted(directory.glob("*.cedar"))
    if not files:
        raise PolicySetError(directory, [("*.cedar", "no policy files found")])
    digest = hashlib.sha256(schema_text.encode())
    static: dict[str, Any] = {}
    by_id: dict[str, _Policy] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
            parsed = json.loads(cedarpy.policies_to_json_str(text))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            problems.append((path.name, _one_line(error)))
            continue
        digest.update(path.name.encode() + b"\0" + text.encode())
        if parsed.get("templates"):
            problems.append((path.name, "policy templates are not supported"))
        names = _policy_names(parsed)
        result = cedarpy.validate_policies(text, schema)
        for invalid in result.errors:
            where = names.get(invalid.policy_id, invalid.policy_id)
            message = _CEDAR_POLICY_PREFIX.sub("", invalid.error)
            problems.append((path.name, f"{where}: {message}" if where else message))
        for positional, body in parsed.get("staticPolicies", {}).items():
            annotations = body.get("annotations") or {}
            policy_id = annotations.get("id")
            if not policy_id:
                number = int(positional.removeprefix("policy")) + 1
                problems.append((path.name, f"policy #{number} has no @id annotation"))
                continue
            if policy_id in by_id:
                first = by_id[policy_id].file
                problems.append((path.name, f"@id {policy_id!r} is also used in {first}"))
                continue
            by_id[policy_id] = _Policy(
                policy_id, path.name, str(body.get("effect")), annotations.get("reason")
            )
            static[policy_id] = body
    if problems:
        raise PolicySetError(directory, problems)

    try:
        # Re-keyed by @id, so that Cedar's "reasons" are the ids we log.
        policies = cedarpy.PolicySet.from_json_str(
            json.dumps({"staticPolicies": static, "templates": {}, "templateLinks": []})
        )
    except ValueError as error:  # pragma: no cover - each file parsed on its own above
        raise PolicySetError(directory, [("*.cedar", _one_line(error))]) from None
    loaded = _LoadedSet(
        PolicySetInfo(
            directory=directory,
            files=tuple(path.name for path in files),
            policy_ids=tuple(sorted(by_id)),
            digest=digest.hexdigest(),
            loaded_at=now,
        ),
        schema,
        policies,
        by_id,
        names_a_person=any(_names_a_person(body) for body in static.values()),
    )
    _prove_schema_fits(loaded, directory)
    return loaded


def _names_a_person(policy: object) -> bool:
    """Whether a policy in Cedar's JSON format contains a ``Tongxing::Person`` entity literal.

    Literals appear as ``{"type": ..., "id": ...}``: in the scope (``{"op": "==", "entity":
    ...}``, ``"in": {"entity": ...}``) and in expressions (``{"Value": {"__entity": ...}}``). Any
    dict shaped like a Person uid counts, wherever it is, so the walk errs towards keeping the
    subject in the cache key. Iterative: a long condition must not hit the recursion limit.
    """
    pending = [policy]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("type") == PERSON and "id" in node:
                return True
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return False


def _policy_names(parsed: Mapping[str, Any]) -> dict[str, str]:
    """Cedar's positional ids (``policy0``...) to ``@id`` values, for error messages."""
    names: dict[str, str] = {}
    for positional, body in parsed.get("staticPolicies", {}).items():
        policy_id = (body.get("annotations") or {}).get("id")
        names[positional] = f"policy {policy_id!r}" if policy_id else positional
    return names


def _prove_schema_fits(loaded: _LoadedSet, directory: Path) -> None:
    """Ask the new set one plain question of each kind before it goes live.

    A schema edited so that it no longer accepts the gateway's requests would make every
    decision an error (a denial); a policy that fails even on a plain request is a bug. Both
    refuse the set.
    """
    person = PersonFacts("schema-probe", "zz", "loa1")
    portal = PortalFacts("schema-probe", "zz", requested_claims=frozenset({"name"}))
    requests = [_enter_request(person, portal, "loa1"), _claim_request(person, portal, "name")]
    entities = _entities(person, portal, ["name"])
    results = cedarpy.is_authorized_batch(requests, loaded.policies, entities, loaded.schema)
    problems: list[tuple[str, str]] = []
    for result in results:
        for error in result.diagnostics.errors:
            failing = _FAILING_POLICY.search(error)
            policy = loaded.by_id.get(failing.group(1)) if failing else None
            if policy is not None:
                problems.append((policy.file, f"policy {policy.id!r} fails: {_one_line(error)}"))
            else:
                message = "does not fit the gateway's requests: " + _one_line(error)
                problems.append((SCHEMA_FILE, message))
    if problems:
        raise PolicySetError(directory, sorted(set(problems)))


_FAILING_POLICY = re.compile(r"error while evaluating policy `([^`]+)`")
_CEDAR_POLICY_PREFIX = re.compile(r"^for policy `[^`]+`, ")


def _one_line(error: object) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 500 else text[:497] + "..."


# --- entities and requests ----------------------------------------------------------------------


def _uid(kind: str, key: str) -> dict[str, str]:
    return {"type": kind, "id": key}


def _ref(kind: str, key: str) -> dict[str, dict[str, str]]:
    return {"__entity": _uid(kind, key)}


def _authentication(person: PersonFacts, level: Level) -> dict[str, Any]:
    return {"level": level, "rank": level_rank(level), "amr": sorted(set(person.amr))}


def _entities(
    person: PersonFacts, portal: PortalFacts, claims: Iterable[str]
) -> list[dict[str, Any]]:
    person_attrs: dict[str, Any] = {"home_region": person.home_region}
    if person.age_band is not None:
        person_attrs["age_band"] = person.age_band
    portal_attrs: dict[str, Any] = {
        "owner": portal.owner,
        "sector": portal.sector,
        "minimum_level": portal.minimum_level,
        "minimum_rank": level_rank(portal.minimum_level),
        "requested_claims": [_ref(CLAIM, claim) for claim in sorted(portal.requested_claims)],
        "may_receive_id_number": portal.may_receive_id_number,
    }
    if portal.allowed_home_regions is not None:
        portal_attrs["allowed_home_regions"] = sorted(portal.allowed_home_regions)
    entities: list[dict[str, Any]] = [
        {"uid": _uid(PERSON, person.subject), "attrs": person_attrs, "parents": []},
        {"uid": _uid(PORTAL, portal.client_id), "attrs": portal_attrs, "parents": []},
    ]
    for claim in sorted(set(claims) | portal.requested_claims):
        entities.append({"uid": _uid(CLAIM, claim), "attrs": {}, "parents": []})
    return entities


def _enter_request(person: PersonFacts, portal: PortalFacts, level: Level) -> dict[str, Any]:
    return {
        "principal": _uid(PERSON, person.subject),
        "action": _uid(ACTION, "enter"),
        "resource": _uid(PORTAL, portal.client_id),
        "context": {"authentication": _authentication(person, level)},
    }


def _claim_request(person: PersonFacts, portal: PortalFacts, claim: str) -> dict[str, Any]:
    return {
        "principal": _uid(PERSON, person.subject),
        "action": _uid(ACTION, "release_claim"),
        "resource": _uid(CLAIM, claim),
        "context": {
            "portal": _ref(PORTAL, portal.client_id),
            "authentication": _authentication(person, person.level),
        },
    }


# --- the engine ---------------------------------------------------------------------------------


class PolicyEngine:
    """The active Cedar policy set and the three questions the gateway asks it.

    Thread-safe: a decision reads the active set once; :meth:`reload` swaps in a new one only
    after it has been validated completely.
    """

    def __init__(
        self,
        directory: Path | None = None,
        *,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        """Load and validate ``directory`` (default :func:`default_policy_dir`).

        Raises :class:`PolicySetError` if the set is invalid: a gateway never starts without one.
        """
        self._directory = (directory or default_policy_dir()).resolve()
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._reload_lock = threading.Lock()
        self._active = _load(self._directory, self._clock())
        log.info(
            "policy set loaded from %s: %d policies, digest %s",
            self._directory,
            len(self._active.info.policy_ids),
            self._active.info.digest[:12],
            extra={"event": "policy.loaded", "policy_ids": list(self._active.info.policy_ids)},
        )

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def info(self) -> PolicySetInfo:
        return self._active.info

    def reload(self) -> PolicySetInfo:
        """Load the directory again; on any problem keep the active set and raise.

        Raises :class:`PolicySetError` naming each file and Cedar's message.
        """
        with self._reload_lock:
            try:
                loaded = _load(self._directory, self._clock())
            except PolicySetError as error:
                log.error(
                    "policy set refused, keeping %s: %s",
                    self._active.info.digest[:12],
                    "; ".join(f"{file}: {message}" for file, message in error.problems),
                    extra={
                        "event": "policy.refused",
                        "problems": [list(p) for p in error.problems],
                    },
                )
                raise
            self._active = loaded
        log.info(
            "policy set reloaded from %s: %d policies, digest %s",
            self._directory,
            len(loaded.info.policy_ids),
            loaded.info.digest[:12],
            extra={"event": "policy.loaded", "policy_ids": list(loaded.info.policy_ids)},
        )
        return loaded.info

    # questions

    def may_enter(self, person: PersonFacts, portal: PortalFacts) -> EntryDecision:
        """May ``person``, at the level of this sign-in, enter ``portal``?

        The answer also says the lowest level that would let them in, so a caller can tell
        "step up" from "denied" without asking again.
        """
        by_level = self._entry_at_each_level(self._active, person, portal)
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
        by_level = self._entry_at_each_level(self._active, person, portal)
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
        by_level = self._entry_at_each_level(self._active, person, portal)
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
        results = self._decide(self._active, "release_claim", person, portal, tuple(claims))
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
        self, active: _LoadedSet, person: PersonFacts, portal: PortalFacts
    ) -> dict[Level, Decision]:
        results = self._decide(active, "enter", person, portal, ())
        return dict(zip(LEVELS, results, strict=True))

    @classmethod
    def _decide(
        cls,
        active: _LoadedSet,
        question: _Question,
        person: PersonFacts,
        portal: PortalFacts,
        claims: tuple[str, ...],
    ) -> tuple[Decision, ...]:
        """Ask ``active`` one question, from its cache when it has answered it before.

        "enter" is asked at every level (``claims`` empty), "release_claim" for each of
        ``claims`` (sorted, no duplicates). Why caching is sound: :class:`_LoadedSet`. Callers
        log every decision, cached or not.
        """
        # replace() keeps every other fact, so a fact added to PersonFacts joins the key by itself.
        who = person if active.names_a_person else replace(person, subject="")
        key: _DecisionKey = (question, claims, portal, who)
        cached = active.decisions.get(key)
        if cached is not None:
            return cached
        if question == "enter":
            requests = [_enter_request(person, portal, level) for level in LEVELS]
        else:
            requests = [_claim_request(person, portal, claim) for claim in claims]
        decisions = tuple(cls._evaluate(active, requests, _entities(person, portal, claims)))
        if not any(decision.errors for decision in decisions):
            if len(active.decisions) >= DECISION_CACHE_SIZE:
                active.decisions.clear()
            active.decisions[key] = decisions
        return decisions

    @staticmethod
    def _evaluate(
        active: _LoadedSet, requests: list[dict[str, Any]], entities: list[dict[str, Any]]
    ) -> list[Decision]:
        results = cedarpy.is_authorized_batch(requests, active.policies, entities, active.schema)
        decisions = []
        for result in results:
            errors = tuple(_one_line(error) for error in result.diagnostics.errors)
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


__all__ = [
    "LEVELS",
    "SCOPE_CLAIMS",
    "Decision",
    "EntryDecision",
    "PersonFacts",
    "PolicyEngine",
    "PolicySetError",
    "PolicySetInfo",
    "PortalFacts",
    "age_band",
    "claims_for_scopes",
    "default_policy_dir",
    "known_level",
    "level_rank",
]
