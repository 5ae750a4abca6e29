"""Registry documents: upstream regions and client portals, as validated JSON."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from gateway.store.contract.common import JsonObject, StoreError


class RegistryKind(StrEnum):
    """The two kinds of registry document: upstream regions and client portals."""

    REGION = "region"
    PORTAL = "portal"


@dataclass(frozen=True)
class RegistryDocument:
    """A region (key: its code) or a portal (key: its client_id), as validated JSON.

    ``revision`` starts at 1 and grows by one on every replacement: callers can use it for
    optimistic concurrency (``expected_revision``) and to notice change.
    """

    kind: RegistryKind
    key: str
    document: JsonObject = field(hash=False)
    revision: int
    created_at: datetime.datetime
    updated_at: datetime.datetime


@dataclass(frozen=True)
class RegistryPage:
    """One page of a keyset listing: documents ordered by key, and the key to continue after.

    ``next_after`` is the key of the last document when more follow, ``None`` on the last page.
    A key is stable and unique, so paging ``after`` it neither skips nor repeats a document that
    is neither created nor deleted meanwhile (keyset pagination; no offsets to drift).
    """

    documents: list[RegistryDocument]
    next_after: str | None


class RevisionConflictError(StoreError):
    """A registry document is not at the revision the caller expected."""

    def __init__(self, kind: RegistryKind, key: str, expected: int, actual: int | None) -> None:
        self.kind = kind
        self.key = key
        self.expected = expected
        self.actual = actual
        super().__init__(f"{kind} {key!r} is at revision {actual}, not {expected}")


class RegistryStore(Protocol):
    """Regions and portals, with revisions for optimistic concurrency."""

    def put_document(
        self,
        kind: RegistryKind,
        key: str,
        document: Mapping[str, Any],
        now: datetime.datetime,
        *,
        expected_revision: int | None = None,
    ) -> RegistryDocument:
        """Create or replace a document; return it with its new revision.

        ``expected_revision``: ``None`` writes unconditionally; ``0`` creates only (the key must
        not exist); ``n > 0`` replaces only revision ``n``. A mismatch raises
        :class:`RevisionConflictError`.
        """
        ...

    def get_document(self, kind: RegistryKind, key: str) -> RegistryDocument | None: ...

    def list_documents(self, kind: RegistryKind) -> list[RegistryDocument]:
        """All documents of a kind, ordered by key."""
        ...

    def list_page(
        self,
        kind: RegistryKind,
        *,
        after: str | None = None,
        limit: int,
        principal: str | None = None,
    ) -> RegistryPage:
        """At most ``limit`` (≥ 1) documents of a kind whose key sorts after ``after``, by key.

        ``principal``: only documents whose ``managed_by.principal`` is that name, filtered in
        the query (an operator's listing never reads what others own). Keys are compared and
        ordered alike, in the engine's order of text (the order of :meth:`list_documents`), so
        the pages together are exactly that listing.
        """
        ...

    def delete_document(
        self, kind: RegistryKind, key: str, *, expected_revision: int | None = None
    ) -> bool:
        """Delete a document; ``False`` if there was none (deleting twice is not an error).

        ``expected_revision``: ``None`` deletes whatever is there; ``n > 0`` deletes only
        revision ``n``, so a caller can decide on what it read and delete exactly that. A
        mismatch (another revision, or no document at all) raises
        :class:`RevisionConflictError` and deletes nothing.
        """
        ...


__all__ = [
    "RegistryDocument",
    "RegistryKind",
    "RegistryPage",
    "RegistryStore",
    "RevisionConflictError",
]
