"""The active Cedar policy set, kept in the store so that every worker and replica enforces one.

A reload (``POST /admin/v1/policies/reload``) validates the files of the process that got the
request and writes them here as a new *generation*; every gateway process polls
:meth:`PolicySetStore.policy_set_generation` (one indexed lookup) and, when it changed, reads
:meth:`PolicySetStore.active_policy_set` and activates it (:mod:`gateway.policy.stored`). The
store keeps the documents as text and never parses them: validation is the policy package's.

Generations start at 1 and grow by one per write; the newest is the active set. Older ones stay
as the history of who activated what and when (a reload is rare and a set is a few kilobytes).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gateway.store.contract.common import StoreError, require_aware


@dataclass(frozen=True)
class PolicySetRecord:
    """One generation of the policy set.

    ``documents`` maps file names (``schema.cedarschema``, ``*.cedar``) to their text;
    ``digest`` is the lower-case hex SHA-256 the policy package computed over their canonical
    form (:func:`gateway.policy.loader.policy_digest`); ``activated_by`` names the admin API
    principal that reloaded it, or says that a gateway recorded its files at start.
    """

    generation: int
    documents: Mapping[str, str] = field(hash=False)
    digest: str
    activated_by: str
    activated_at: datetime.datetime

    def __post_init__(self) -> None:
        require_aware(self, activated_at=self.activated_at)


class PolicyGenerationConflictError(StoreError):
    """The newest generation is not the one the caller expected (another writer was first)."""

    def __init__(self, expected: int, actual: int | None) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"the policy set is at generation {actual}, not {expected}")


class PolicySetStore(Protocol):
    """Generations of the policy set; the newest is the active one."""

    def policy_set_generation(self) -> int | None:
        """The newest generation, or ``None`` when no set was ever stored.

        What every process asks every few seconds: one lookup on the primary key's index.
        """
        ...

    def active_policy_set(self) -> PolicySetRecord | None:
        """The newest generation with its documents, or ``None``."""
        ...

    def put_policy_set(
        self,
        documents: Mapping[str, str],
        digest: str,
        activated_by: str,
        now: datetime.datetime,
        *,
        expected_generation: int | None = None,
    ) -> PolicySetRecord:
        """Store ``documents`` as the next generation and return it.

        ``expected_generation``: ``None`` writes after whatever is there (concurrent writers
        each get their own generation, in some order); ``0`` writes only if no set was ever
        stored (the first gateway to start records its files, the others adopt them); ``n``
        writes only if ``n`` is the newest. A mismatch raises
        :class:`PolicyGenerationConflictError` and writes nothing.
        """
        ...


__all__ = ["PolicyGenerationConflictError", "PolicySetRecord", "PolicySetStore"]
