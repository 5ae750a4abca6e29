"""Resident identity numbers (GB 11643-1999) and the national subject derived from them.

The gateway never stores an identity number in clear: it keeps a keyed hash (HMAC-SHA-256 with
the national secret) and links every login that asserts the same number to one national subject.
Nothing here knows about HTTP, storage or Flask.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import re
from dataclasses import dataclass

# GB 11643-1999 §5.2 and ISO 7064 MOD 11-2: weights 2^(18-i) mod 11 for positions 1..17.
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK_CHARACTERS = "10X98765432"
_SHAPE = re.compile(r"[0-9]{17}[0-9X]")
# First digit of the address code: 1-6 are the mainland's large regions, 7 Taiwan, 8 the SARs
# (and the 83 code for residence permits); 0 and 9 are not assigned.
_ADDRESS_FIRST_DIGIT = set("12345678")


class IdentityNumberError(ValueError):
    """The text is not a well-formed GB 11643-1999 citizen identity number."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid resident identity number: {reason}")


@dataclass(frozen=True)
class ResidentIdentityNumber:
    """A validated 18-character identity number. Its ``repr`` hides the number."""

    value: str

    def __repr__(self) -> str:
        return "ResidentIdentityNumber(<redacted>)"

    @property
    def address_code(self) -> str:
        """The six-digit administrative division code of the place of first registration."""
        return self.value[:6]

    @property
    def birth_date(self) -> datetime.date:
        return datetime.date(int(self.value[6:10]), int(self.value[10:12]), int(self.value[12:14]))


def check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits (GB 11643-1999 §5.2)."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARACTERS[total % 11]


def parse_identity_number(
    text: str, *, today: datetime.date | None = None
) -> ResidentIdentityNumber:
    """Validate ``text`` as an 18-character identity number and return it normalised.

    A lower-case ``x`` check character is accepted and upper-cased. The birth date must be a real
    date, not in the future and not before 1900.
    """
    candidate = text.strip().upper()
    if len(candidate) != 18:
        raise IdentityNumberError(f"must have 18 characters, has {len(candidate)}")
    if _SHAPE.fullmatch(candidate) is None:
        raise IdentityNumberError("must be 17 digits followed by a digit or X")
    if candidate[0] not in _ADDRESS_FIRST_DIGIT:
        raise IdentityNumberError("address code is not an assigned region")
    try:
        born = datetime.date(int(candidate[6:10]), int(candidate[10:12]), int(candidate[12:14]))
    except ValueError:
        raise IdentityNumberError("birth date is not a real date") from None
    if born.year < 1900 or born > (today or datetime.date.today()):
        raise IdentityNumberError("birth date is out of range")
    if check_character(candidate[:17]) != candidate[17]:
        raise IdentityNumberError("check character does not match (ISO 7064 MOD 11-2)")
    return ResidentIdentityNumber(candidate)


def identity_key(number: ResidentIdentityNumber, national_secret: bytes) -> str:
    """The keyed hash under which the national subject is stored and found again."""
    mac = hmac.new(national_secret, b"gb11643:" + number.value.encode(), hashlib.sha256)
    return mac.hexdigest()


def pairwise_subject(subject: str, sector: str, pairwise_secret: bytes) -> str:
    """A pairwise ``sub`` for one sector identifier (OIDC Core §8.1).

    Deterministic for (subject, sector), unlinkable across sectors without the secret.
    """
    mac = hmac.new(pairwise_secret, f"{sector}\x00{subject}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
