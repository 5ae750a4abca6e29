"""Verified claims kept with an SSO session, and the ``claims`` request each portal made in it.

Identity proofing (:mod:`gateway.proofing`) ends with ``verified_claims`` (OpenID Connect for
Identity Assurance 1.0 §5; the Identity Assurance Schema Definition 1.0) that a proofing
provider the platform trusts asserted for the person of one SSO session. They are kept with
that session, sealed (they name the person: THREAT_MODEL row 8), and go when the session goes:
the row is deleted with its session (foreign key, ``ON DELETE CASCADE``).

Keeping them and raising the session to ``loa3`` are ONE operation
(:meth:`VerifiedClaimsStore.attach_verified_claims`): a session never says ``loa3`` without the
verified claims that make it so.

The ``claims`` request parameter (OIDC Core §5.5) a portal sent at ``/authorize`` is kept per
session and portal (:meth:`VerifiedClaimsStore.save_claims_request`), so that the ID token and
every later userinfo answer of that portal in that session honour it (§5.5: the request applies
to the ID token and to the UserInfo Endpoint). A later authorization of the same portal in the
same session replaces it; one without the parameter removes it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Protocol

from gateway.store.contract.common import require_aware
from gateway.store.contract.sessions import SsoSession

MAX_CLAIMS_REQUEST_BYTES = 4096
"""The longest ``claims`` request kept (UTF-8 JSON): the provider refuses a longer parameter
first (THREAT_MODEL row 7: bad input costs a refusal, never an unbounded row)."""
MAX_SEALED_BYTES = 64 * 1024
"""The largest sealed verified-claims document kept."""


@dataclass(frozen=True)
class VerifiedClaimsRecord:
    """The verified claims of one SSO session: who vouched (``provider``), for which national
    ``subject``, when, and the ``verified_claims`` themselves, sealed (never in clear)."""

    session_hash: str
    subject: str
    provider: str
    sealed: str = field(repr=False)
    verified_at: datetime.datetime

    def __post_init__(self) -> None:
        require_aware(self, verified_at=self.verified_at)


class VerifiedClaimsStore(Protocol):
    """Verified claims per SSO session, and the portals' ``claims`` requests in it."""

    def attach_verified_claims(
        self, record: VerifiedClaimsRecord, acr: str, amr: tuple[str, ...], now: datetime.datetime
    ) -> SsoSession:
        """Keep ``record`` (replacing the session's earlier one) and set the live session's
        ``acr`` and ``amr``, in one transaction; the raised session is returned.

        :class:`~gateway.store.contract.SessionNotFoundError` when the session is unknown,
        ended or expired (nothing is kept); ``ValueError`` when the record is larger than
        :data:`MAX_SEALED_BYTES` or names another subject than the session's.
        """
        ...

    def get_verified_claims(self, session_hash: str) -> VerifiedClaimsRecord | None:
        """The session's verified claims, or ``None``."""
        ...

    def save_claims_request(
        self, session_hash: str, client_id: str, request: str | None, now: datetime.datetime
    ) -> None:
        """Keep the portal's ``claims`` request (normalised JSON) for this session, replacing
        an earlier one; ``None`` removes it. ``ValueError`` when longer than
        :data:`MAX_CLAIMS_REQUEST_BYTES`; an unknown session keeps nothing (no error: the
        grant made in it cannot be redeemed either)."""
        ...

    def get_claims_request(self, session_hash: str, client_id: str) -> str | None:
        """The portal's ``claims`` request kept for this session, or ``None``."""
        ...


__all__ = [
    "MAX_CLAIMS_REQUEST_BYTES",
    "MAX_SEALED_BYTES",
    "VerifiedClaimsRecord",
    "VerifiedClaimsStore",
]
