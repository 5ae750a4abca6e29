"""National subjects and the upstream accounts linked to them ("register once")."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Protocol

from gateway.store.contract.common import RecordNotFoundError, StoreError


@dataclass(frozen=True)
class Subject:
    """A national subject: one person, however many regions they signed in through.

    ``identity_key`` is the keyed hash of the resident identity number
    (:func:`gateway.identity.identity_key`); the number itself is never stored.
    """

    id: str
    identity_key: str
    created_at: datetime.datetime


@dataclass(frozen=True)
class SubjectLink:
    """One upstream account (``sub`` at one region) linked to a national subject."""

    region: str
    upstream_sub: str
    subject_id: str
    created_at: datetime.datetime


class SubjectNotFoundError(RecordNotFoundError):
    """No national subject has this id."""


class SubjectLinkConflictError(StoreError):
    """The upstream account is linked to a different national subject than the one asserted.

    A region re-used a ``sub`` for another person, or asserted another identity number for the
    same account: never re-link silently.
    """

    def __init__(self, region: str) -> None:
        self.region = region
        super().__init__(f"upstream account at region {region!r} is linked to another subject")


class SubjectStore(Protocol):
    """National subjects and their links to upstream accounts."""

    def link_subject(
        self, identity_key: str, region: str, upstream_sub: str, now: datetime.datetime
    ) -> Subject:
        """The national subject for ``identity_key``, created at the first login.

        Links (``region``, ``upstream_sub``) to it. Idempotent and race-safe: concurrent first
        logins with the same key yield one subject. Raises :class:`SubjectLinkConflictError` if
        the upstream account is already linked to another subject.
        """
        ...

    def get_subject(self, subject_id: str) -> Subject | None: ...

    def find_subject(self, region: str, upstream_sub: str) -> Subject | None:
        """The subject an upstream account is linked to, if any."""
        ...

    def list_subject_links(self, subject_id: str) -> list[SubjectLink]: ...


__all__ = [
    "Subject",
    "SubjectLink",
    "SubjectLinkConflictError",
    "SubjectNotFoundError",
    "SubjectStore",
]
