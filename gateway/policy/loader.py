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
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
    """A policy set that cannot be used; ``problems`` are ``(file, message)`` pairs."""

    def __init__(self, directory: Path, problems: Sequence[tuple[str, str]]) -> None:
        self.directory = directory
        self.problems = tuple(problems)
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
    """What is active: where it came from, a digest of its text, and its policies' ids."""

    directory: Path
    files: tuple[str, ...]
    policy_ids: tuple[str, ...]
    digest: str
    loaded_at: datetime.datetime


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


def load_policy_set(directory: Path, now: datetime.datetime) -> LoadedPolicySet:
    """Parse and validate every file of ``directory``; raise :class:`PolicySetError` if any fail."""
    problems: list[tuple[str, str]] = []
    schema_path = directory / SCHEMA_FILE
    try:
        schema_text = schema_path.read_text(encoding="utf-8")
        schema = cedarpy.Schema.from_str(schema_text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise PolicySetError(directory, [(SCHEMA_FILE, one_line(error))]) from None

    files = sorted(directory.glob("*.cedar"))
    if not files:
        raise PolicySetError(directory, [("*.cedar", "no policy files found")])
    digest = hashlib.sha256(schema_text.encode())
    static: dict[str, Any] = {}
    by_id: dict[str, PolicyRule] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
            parsed = json.loads(cedarpy.policies_to_json_str(text))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            problems.append((path.name, one_line(error)))
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
            by_id[policy_id] = PolicyRule(
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
        raise PolicySetError(directory, [("*.cedar", one_line(error))]) from None
    loaded = LoadedPolicySet(
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


def _prove_schema_fits(loaded: LoadedPolicySet, directory: Path) -> None:
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
        raise PolicySetError(directory, sorted(set(problems)))


_FAILING_POLICY = re.compile(r"error while evaluating policy `([^`]+)`")
_CEDAR_POLICY_PREFIX = re.compile(r"^for policy `[^`]+`, ")


def one_line(error: object) -> str:
    """Cedar's message on one line, at most 500 characters: fit for a log line or a page."""
    text = " ".join(str(error).split())
    return text if len(text) <= 500 else text[:497] + "..."


class PolicyLoader:
    """A directory of policies and the last good set loaded from it.

    Thread-safe: :attr:`active` is one attribute read; :meth:`reload` swaps in a new set only
    after it has been validated completely, and one reload runs at a time.
    """

    def __init__(self, directory: Path, *, clock: Callable[[], datetime.datetime]) -> None:
        """Load and validate ``directory``; :class:`PolicySetError` if the set is invalid."""
        self._directory = directory.resolve()
        self._clock = clock
        self._reload_lock = threading.Lock()
        self._active = load_policy_set(self._directory, self._clock())
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
    def active(self) -> LoadedPolicySet:
        """The set in force: the last one that loaded completely."""
        return self._active

    def reload(self) -> LoadedPolicySet:
        """Load the directory again; on any problem keep the active set and raise.

        Raises :class:`PolicySetError` naming each file and Cedar's message.
        """
        with self._reload_lock:
            try:
                loaded = load_policy_set(self._directory, self._clock())
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
        return loaded
