"""Verified claims kept with an SSO session.

Identity proofing (:mod:`gateway.proofing`) ends with ``verified_claims`` (OpenID Connect for
Identity Assurance 1.0 §5; the Identity Assurance Schema Definition 1.0) that a proofing
provider the platform trusts asserted for the person of one SSO session. They are kept with
that session, sealed (they name the person: THREAT_MODEL row 8), and go when the session goes:
the row is deleted with its session (foreign key, ``ON DELETE CASCADE``).

Keeping them and raising the session to ``loa3`` are ONE operation
(:meth:`VerifiedClaimsStore.attach_verified_claims`): a session never says ``loa3`` without the
verified claims that make it so.

The ``claims`` request parameter (OIDC Core §5.5) that asks for them is not kept here: it
belongs to one authorization, and is kept with the grant that authorization makes
(:attr:`~gateway.store.contract.tokens.Grant.claims_request`), read with it by the token and
userinfo statements.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Protocol

from gateway.store.contract.common import require_aware
from gateway.store.contract.sessions import SsoSession
from gateway.store.contract.tokens import MAX_CLAIMS_REQUEST_BYTES

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
    """Verified claims per SSO session."""

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


__all__ = [
    "MAX_CLAIMS_REQUEST_BYTES",
    "MAX_SEALED_BYTES",
    "VerifiedClaimsRecord",
    "VerifiedClaimsStore",
]
