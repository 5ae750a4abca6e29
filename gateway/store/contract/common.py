"""What every part of the storage contract shares: secret hashing, JSON objects, base errors."""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

JsonObject = dict[str, Any]
"""A JSON object as the store keeps it: ``str`` keys, values that :mod:`json` can encode."""


def token_hash(value: str) -> str:
    """The lookup key for a secret: lower-case hex SHA-256 of its UTF-8 bytes.

    Codes, tokens, session ids and ``state`` values are high-entropy random strings, so one
    unsalted SHA-256 is enough to keep them useless to whoever reads the database (RFC 6749
    §10.5: codes must not be guessable; §10.3: tokens kept confidential in storage).
    """
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def require_aware(owner: object, **times: datetime.datetime | None) -> None:
    """Refuse a record whose times have no time zone (every ``now`` of the store is aware)."""
    for name, value in times.items():
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{type(owner).__name__}.{name} must be timezone-aware")


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or answered with an unexpected failure."""


class DuplicateRecordError(StoreError):
    """A record with the same key exists (or a family already has a live refresh token)."""


class RecordNotFoundError(StoreError):
    """A record the operation needs does not exist (or is no longer valid)."""


__all__ = [
    "DuplicateRecordError",
    "JsonObject",
    "RecordNotFoundError",
    "StoreError",
    "StoreUnavailableError",
    "require_aware",
    "token_hash",
]
