"""Pushed authorization requests (RFC 9126): a portal's request, pushed to ``/par``, kept until
the browser brings its ``request_uri`` to ``/authorize``.

One record per push: the hash of the ``request_uri`` (the browser's URL holds the reference,
the store only its hash, like every other bearer value; see
:func:`~gateway.store.contract.common.token_hash`), the portal that pushed it, its validated
parameters and ``expires_at`` (RFC 9126 §2.2: short-lived). A record is taken once, atomically,
by the portal that pushed it (RFC 9126 §4: one-time use; §7.3: bound to the client), and is gone
for every operation once its time has passed; housekeeping purges it then.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

MAX_PUSHED_BYTES = 32 * 1024
"""The largest set of pushed parameters the store keeps (its JSON, UTF-8): bad input costs a
refusal, never an unbounded row (THREAT_MODEL row 7)."""


@dataclass(frozen=True)
class PushedRequest:
    """One pushed authorization request (RFC 9126 §2): ``parameters`` are the authorization
    request's, as the portal pushed them (after its request object was verified, for a portal
    of automatic registration), never logged (``state``, ``nonce``, hints)."""

    reference_hash: str
    client_id: str
    parameters: Mapping[str, str] = field(repr=False)
    expires_at: datetime.datetime


class PushedRequestTooLargeError(ValueError):
    """The pushed parameters are larger than :data:`MAX_PUSHED_BYTES`."""


class PushedRequestStore(Protocol):
    """Pushed authorization requests (RFC 9126), one use each."""

    def save_pushed_request(self, pushed: PushedRequest) -> None:
        """Keep ``pushed`` until its ``expires_at``. Raises
        :class:`PushedRequestTooLargeError` when its parameters are too large, and
        :class:`~gateway.store.contract.common.DuplicateRecordError` on a reference already kept."""
        ...

    def take_pushed_request(
        self, reference_hash: str, client_id: str, now: datetime.datetime
    ) -> PushedRequest | None:
        """The live request ``reference_hash`` names, pushed by ``client_id``, deleted as it is
        returned (RFC 9126 §4: one-time use): of concurrent takes, across replicas too, exactly
        one gets it. ``None`` when it is unknown, expired, already taken or another portal's
        (another portal's is left in place: it cannot spend it)."""
        ...


__all__ = ["MAX_PUSHED_BYTES", "PushedRequest", "PushedRequestStore", "PushedRequestTooLargeError"]
