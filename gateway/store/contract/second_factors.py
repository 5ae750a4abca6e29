"""A subject's second factor: a TOTP credential (RFC 6238) and its recovery codes."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.store.contract.common import require_aware


@dataclass(frozen=True)
class TotpCredential:
    """A subject's TOTP factor (RFC 6238): pending until confirmed with a first code.

    ``secret`` is ciphertext made by :mod:`gateway.mfa` (the store never holds the key).
    ``last_accepted_step`` is the newest time step ever accepted: a code of that step or an
    older one is never accepted again (RFC 6238 §5.2).
    """

    subject: str
    secret: bytes = field(repr=False)
    created_at: datetime.datetime
    confirmed_at: datetime.datetime | None = None
    last_accepted_step: int | None = None
    last_used_at: datetime.datetime | None = None

    def __post_init__(self) -> None:
        require_aware(
            self,
            created_at=self.created_at,
            confirmed_at=self.confirmed_at,
            last_used_at=self.last_used_at,
        )

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None


@dataclass(frozen=True)
class RecoveryCode:
    """One recovery code of a subject, as a slow salted hash (the code is shown once)."""

    subject: str
    code_id: int
    code_hash: str = field(repr=False)
    created_at: datetime.datetime
    used_at: datetime.datetime | None = None

    def __post_init__(self) -> None:
        require_aware(self, created_at=self.created_at, used_at=self.used_at)


class SecondFactorStore(Protocol):
    """TOTP credentials and recovery codes."""

    def save_totp_credential(self, credential: TotpCredential) -> None:
        """Store a pending (unconfirmed) credential, replacing a pending one (enrolment restarted).

        Raises :class:`DuplicateRecordError` if the subject already has a confirmed credential
        (it must be deleted first) and :class:`SubjectNotFoundError` if the subject is unknown.
        """
        ...

    def get_totp_credential(self, subject: str) -> TotpCredential | None: ...

    def confirm_totp_credential(
        self,
        subject: str,
        secret: bytes,
        step: int,
        recovery_codes: Sequence[RecoveryCode],
        now: datetime.datetime,
    ) -> bool:
        """Confirm the pending credential that holds exactly ``secret``; accept ``step``.

        Atomic, with the subject's recovery codes replaced by ``recovery_codes``. ``False`` (and
        nothing written) if there is no such pending credential: it was confirmed by a
        concurrent call, restarted with another secret, or deleted.
        """
        ...

    def delete_totp_credential(self, subject: str) -> bool:
        """Remove the credential and its recovery codes; ``False`` if there was none."""
        ...

    def accept_totp_step(self, subject: str, step: int, now: datetime.datetime) -> bool:
        """Accept a time step of a confirmed credential, once (RFC 6238 §5.2).

        One conditional update: ``True`` only if ``step`` is newer than every step accepted
        before. Of concurrent callers with the same step exactly one gets ``True``.
        """
        ...

    def list_recovery_codes(self, subject: str) -> list[RecoveryCode]:
        """The subject's recovery codes, used or not, by ``code_id``."""
        ...

    def replace_recovery_codes(self, subject: str, recovery_codes: Sequence[RecoveryCode]) -> None:
        """Replace every recovery code of a confirmed credential.

        Raises :class:`RecordNotFoundError` if the subject has no confirmed credential.
        """
        ...

    def use_recovery_code(self, subject: str, code_id: int, now: datetime.datetime) -> bool:
        """Spend a recovery code, once: ``False`` if it is unknown or was used before."""
        ...


__all__ = ["RecoveryCode", "SecondFactorStore", "TotpCredential"]
