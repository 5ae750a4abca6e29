"""Loading a policy set: every file checked, all or nothing, and the last good set kept.

The rules are Cedar policies (``policies/*.cedar``), validated against the Cedar schema
``policies/schema.cedarschema`` (Cedar docs: Policy validation against schema,
https://docs.cedarpolicy.com/policies/validation.html). Every policy must carry a unique ``@id``
annotation (Cedar docs: Grammar, ``Annotation``,
https://docs.cedarpolicy.com/policies/syntax-grammar.html): decisions are logged with it, and
Cedar's own positional ids change whenever a file is edited. Annotations and entity literals are
read from Cedar's JSON form of the policies (Cedar docs: JSON policy format,
https://docs.cedarpolicy.com/policies/json-format.html). The gateway's own requests are tried on
the new set to prove the schema still fits them.

A set that fails any of this is refused as a whole with a message naming the file and Cedar's
error; :class:`PolicyLoader` keeps the set that was active.

A set is its *documents*: file names (``schema.cedarschema``, ``*.cedar``) and their text, read
from a directory (:func:`read_policy_documents`) or from the store (one generation of
:class:`~gateway.store.contract.PolicySetRecord`, see :mod:`gateway.policy.stored`); both are
compiled by :func:`compile_policy_set`. Its digest (:func:`policy_digest`) is SHA-256 over a
canonical form of the documents, so every process that holds the same set shows the same digest.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import cedarpy

from gateway.policy.entities import (
    PERSON,
    PersonFacts,
    PortalFacts,
    cedar_entities,
    claim_request,
    enter_request,
)

# The package's logger, one name for operators to filter on (as before the package was split).
log = logging.getLogger(__package__)

SCHEMA_FILE: Final = "schema.cedarschema"


def default_policy_dir() -> Path:
    """The policies shipped with the gateway.

    Installed from a wheel they are package data in ``gateway/policies`` (see the pyproject
    proposal in the issue); in a source checkout or an editable install they are the
    repository's ``policies/`` folder next to the ``gateway`` package.
    """
    package = Path(__file__).resolve().parents[1]  # gateway/, above gateway/policy/
    packaged = package / "policies"
    if (packaged / SCHEMA_FILE).is_file():
        return packaged
    return package.parent / "policies"


class PolicySetError(Exception):
    """A policy set that cannot be used; ``problems`` are ``(file, message)`` pairs.

    ``directory`` says where the set came from (a directory, or the store's generation);
    ``digest`` is the refused set's :func:`policy_digest` when its documents could be read.
    """

    def __init__(
        self,
        directory: Path | str,
        problems: Sequence[tuple[str, str]],
        *,
        digest: str | None = None,
    ) -> None:
        self.directory = directory
        self.problems = tuple(problems)
        self.digest = digest
        lines = "\n".join(f"  {file}: {message}" for file, message in self.problems)
        super().__init__(f"policy set in {directory} refused:\n{lines}")


@dataclass(frozen=True)
class PolicyRule:
    """One policy of a set, as decisions name it: its ``@id``, file, effect and ``@reason``."""

    id: str
    file: str
    effect: str
    reason: str | None


@dataclass(frozen=True)
class PolicySetInfo:
    """What is active: where it came from, a digest of its text, and its policies' ids.

    ``generation``, ``activated_by`` and ``activated_at`` are the store's record of the set
    (:class:`~gateway.store.contract.PolicySetRecord`): which generation it is, which principal
    reloaded it and when. ``None`` for a set that is not in a store (a gateway without one, or a
    set just read from files and not yet written). ``loaded_at`` is when this process activated
    it.
    """

    directory: Path
    files: tuple[str, ...]
    policy_ids: tuple[str, ...]
    digest: str
    loaded_at: datetime.datetime
    generation: int | None = None
    activated_by: str | None = None
    activated_at: datetime.datetime | None = None


@dataclass(frozen=True)
class LoadedPolicySet:
    """One validated policy set, re-keyed by ``@id``, ready for Cedar.

    ``names_a_person`` says whether any policy contains a ``Tongxing::Person`` entity literal
    (see :func:`_names_a_person`): only then can two people with the same facts get different
    answers, which the decision cache must know.
    """

    info: PolicySetInfo
    schema: cedarpy.Schema
    policies: cedarpy.PolicySet
    by_id: Mapping[str, PolicyRule] = field(hash=False)
    names_a_person: bool
    documents: Mapping[str, str] = field(default_factory=dict, hash=False, repr=False)

    def recorded(
        self, generation: int, activated_by: str, activated_at: datetime.datetime
    ) -> LoadedPolicySet:
        """This set, as the store recorded it (its generation, who and when)."""
        info = replace(
            self.info,
            generation=generation,
            activated_by=activated_by,
            activated_at=activated_at,
        )
        return replace(self, info=info)


def policy_digest(documents: Mapping[str, str]) -> str:
    """SHA-256 (lower-case hex) of the canonical form of a set's documents.

    The canonical form is the JSON object of file names to texts with keys sorted, no
    insignificant whitespace and non-ASCII characters as themselves, encoded in UTF-8 (the
    subset of RFC 8785 that an object of strings needs): the same files give the same digest in
    every process, whether read from a directory or from the store.
    """
    canonical = json.dumps(
        dict(documents), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def read_policy_documents(directory: Path) -> dict[str, str]:
    """The schema and every ``*.cedar`` file of ``directory``, text by file name.

    Raises :class:`PolicySetError` when the schema or a policy file cannot be read as UTF-8, or
    when there is no policy file.
    """
    problems: list[tuple[str, str]] = []
    documents: dict[str, str] = {}
    for path in [directory / SCHEMA_FILE, *sorted(directory.glob("*.cedar"))]:
        try:
            documents[path.name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            problems.append((path.name, one_line(error)))
    if problems:
        raise PolicySetError(directory, problems)
    if len(documents) < 2:
        raise PolicySetError(directory, [("*.cedar", "no policy files found")])
    return documents


def load_policy_set(directory: Path, now: datetime.datetime) -> LoadedPolicySet:
    """Parse and validate every file of ``directory``; raise :class:`PolicySetError` if any fail."""
    return compile_policy_set(read_policy_documents(directory), directory, now)


def compile_policy_set(
    documents: Mapping[str, str],
    directory: Path,
    now: datetime.datetime,
    *,
    source: str | None = None,
) -> LoadedPolicySet:
    """Parse and validate a set's documents; raise :class:`PolicySetError` if any fail.

    ``directory`` is the one the set's info names (the engine's); ``source`` says in errors
    where the documents came from when that is not the directory (the store's generation).
    """
    where: Path | str = source or directory
    digest = policy_digest(documents)
    problems: list[tuple[str, str]] = [
        (name, "not a schema or policy file name")
        for name in documents
        if name != SCHEMA_FILE and not _POLICY_FILE.fullmatch(name)
    ]
    if problems:
        raise PolicySetError(where, problems, digest=digest)
    try:
        schema_text = documents[SCHEMA_FILE]
        schema = cedarpy.Schema.from_str(schema_text)
    except (KeyError, ValueError) as error:
        raise PolicySetError(where, [(SCHEMA_FILE, one_line(error))], digest=digest) from None

    files = sorted(name for name in documents if name != SCHEMA_FILE)
    if not files:
        raise PolicySetError(where, [("*.cedar", "no policy files found")], digest=digest)
    static: dict[str, Any] = {}
    by_id: dict[str, PolicyRule] = {}
    for name in files:
        text = documents[name]
        try:
            parsed = json.loads(cedarpy.policies_to_json_str(text))
        except ValueError as error:
            problems.append((name, one_line(error)))
            continue
        if parsed.get("templates"):
            problems.append((name, "policy templates are not supported"))
        names = _policy_names(parsed)
        result = cedarpy.validate_policies(text, schema)
        for invalid in result.errors:
            policy = names.get(invalid.policy_id, invalid.policy_id)
            message = _CEDAR_POLICY_PREFIX.sub("", invalid.error)
            problems.append((name, f"{policy}: {message}" if policy else message))
        for positional, body in parsed.get("staticPolicies", {}).items():
            annotations = body.get("annotations") or {}
            policy_id = annotations.get("id")
            if not policy_id:
                number = int(positional.removeprefix("policy")) + 1
                problems.append((name, f"policy #{number} has no @id annotation"))
                continue
            if policy_id in by_id:
                first = by_id[policy_id].file
                problems.append((name, f"@id {policy_id!r} is also used in {first}"))
                continue
            by_id[policy_id] = PolicyRule(
                policy_id, name, str(body.get("effect")), annotations.get("reason")
            )
            static[policy_id] = body
    if problems:
        raise PolicySetError(where, problems, digest=digest)

    try:
        # Re-keyed by @id, so that Cedar's "reasons" are the ids we log.
        policies = cedarpy.PolicySet.from_json_str(
            json.dumps({"staticPolicies": static, "templates": {}, "templateLinks": []})
        )
    except ValueError as error:  # pragma: no cover - each file parsed on its own above
        raise PolicySetError(where, [("*.cedar", one_line(error))], digest=digest) from None
    loaded = LoadedPolicySet(
        PolicySetInfo(
            directory=directory,
            files=tuple(files),
            policy_ids=tuple(sorted(by_id)),
            digest=digest,
            loaded_at=now,
        ),
        schema,
        policies,
        by_id,
        names_a_person=any(_names_a_person(body) for body in static.values()),
        documents=dict(documents),
    )
    _prove_schema_fits(loaded, where)
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


def _prove_schema_fits(loaded: LoadedPolicySet, directory: Path | str) -> None:
    """Ask the new set one plain question of each kind before it goes live.

    A schema edited so that it no longer accepts the gateway's requests would make every
    decision an error (a denial); a policy that fails even on a plain request is a bug. Both
    refuse the set.
    """
    person = PersonFacts("schema-probe", "zz", "loa1")
    portal = PortalFacts("schema-probe", "zz", requested_claims=frozenset({"name"}))
    requests = [enter_request(person, portal, "loa1"), claim_request(person, portal, "name")]
    entities = cedar_entities(person, portal, ["name"])
    results = cedarpy.is_authorized_batch(requests, loaded.policies, entities, loaded.schema)
    problems: list[tuple[str, str]] = []
    for result in results:
        for error in result.diagnostics.errors:
            failing = _FAILING_POLICY.search(error)
            policy = loaded.by_id.get(failing.group(1)) if failing else None
            if policy is not None:
                problems.append((policy.file, f"policy {policy.id!r} fails: {one_line(error)}"))
            else:
                message = "does not fit the gateway's requests: " + one_line(error)
                problems.append((SCHEMA_FILE, message))
    if problems:
        raise PolicySetError(directory, sorted(set(problems)), digest=loaded.info.digest)


_POLICY_FILE = re.compile(r"[^/\\\0]{1,200}\.cedar")
_FAILING_POLICY = re.compile(r"error while evaluating policy `([^`]+)`")
_CEDAR_POLICY_PREFIX = re.compile(r"^for policy `[^`]+`, ")


def one_line(error: object) -> str:
    """Cedar's message on one line, at most 500 characters: fit for a log line or a page."""
    text = " ".join(str(error).split())
    return text if len(text) <= 500 else text[:497] + "..."


class PolicyLoader:
    """A directory of policies and the last good set loaded from it.

    Thread-safe: :attr:`active` is one attribute read; :meth:`reload` swaps in a new set only
    after it has been validated completely, and one reload (or :meth:`activate` by whoever holds
    :attr:`lock`) runs at a time.
    """

    def __init__(
        self,
        directory: Path,
        *,
        clock: Callable[[], datetime.datetime],
        initial: LoadedPolicySet | None = None,
    ) -> None:
        """Load and validate ``directory``, unless ``initial`` is the set to start with;
        :class:`PolicySetError` if the set is invalid."""
        self._directory = directory.resolve()
        self._clock = clock
        self._reload_lock = threading.RLock()
        self._active = initial or load_policy_set(self._directory, self._clock())
        _log_loaded("loaded", self._active)

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def lock(self) -> threading.RLock:
        """Held by :meth:`reload`; hold it to read, write and :meth:`activate` as one step."""
        return self._reload_lock

    @property
    def active(self) -> LoadedPolicySet:
        """The set in force: the last one that loaded completely."""
        return self._active

    def load(self) -> LoadedPolicySet:
        """Read and validate the directory without activating it; on any problem log and raise
        :class:`PolicySetError` naming each file and Cedar's message."""
        try:
            return load_policy_set(self._directory, self._clock())
        except PolicySetError as error:
            self.refused(error)
            raise

    def refused(self, error: PolicySetError) -> None:
        """Log a refused set, and that the active one stays."""
        log.error(
            "policy set refused, keeping %s: %s",
            self._active.info.digest[:12],
            "; ".join(f"{file}: {message}" for file, message in error.problems),
            extra={
                "event": "policy.refused",
                "problems": [list(p) for p in error.problems],
            },
        )

    def activate(self, loaded: LoadedPolicySet) -> LoadedPolicySet:
        """Make ``loaded`` (validated by :func:`compile_policy_set`) the set in force."""
        with self._reload_lock:
            self._active = loaded
        _log_loaded("activated", loaded)
        return loaded

    def reload(self) -> LoadedPolicySet:
        """Load the directory again; on any problem keep the active set and raise.

        Raises :class:`PolicySetError` naming each file and Cedar's message.
        """
        with self._reload_lock:
            return self.activate(self.load())


def _log_loaded(what: str, loaded: LoadedPolicySet) -> None:
    info = loaded.info
    log.info(
        "policy set %s from %s: %d policies, digest %s, generation %s",
        what,
        "the store" if info.generation is not None else info.directory,
        len(info.policy_ids),
        info.digest[:12],
        info.generation if info.generation is not None else "-",
        extra={
            "event": "policy.loaded",
            "policy_ids": list(info.policy_ids),
            "digest": info.digest,
            "generation": info.generation,
        },
    )
