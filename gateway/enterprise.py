"""Unified social credit codes (GB 32100-2015) and the enterprise subject derived from them.

Every legal person and other organisation in China carries one 18-character code, printed on its
business licence and asserted by the electronic business-licence system (an ``enterprise``
region). The gateway validates it here and keys the enterprise subject by a keyed hash of it
(HMAC-SHA-256 with the national secret), as it keys a citizen by the hash of their identity
number (:func:`gateway.identity.identity_key`), with its own domain separation, so that an
enterprise key can never equal a citizen's. Nothing here knows about HTTP, storage or Flask.

The code (GB 32100-2015 §4):

=========  ===========================================================================
position   meaning
=========  ===========================================================================
1          registration authority (``9`` market regulation, ``5`` civil affairs, ...)
2          entity category within that authority (``1`` enterprise, ...)
3-8        the registering authority's administrative division code (GB/T 2260)
9-17       the organisation code (GB 11714), the entity's own identifier
18         the check character (GB 32100-2015 §4.3, below)
=========  ===========================================================================

Every character is one of 31 symbols: the digits and the capital letters without I, O, Z, S
and V (too easily read as 1, 0, 2, 5 and U). The check character: each of the first 17
characters has the value of its place in that alphabet (0-30), position ``i`` weighs
``3**(i-1) mod 31``, and the check value is ``31 - (sum mod 31)``, 31 written as 0.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

#: GB 32100-2015 §4.1, table 1: the 31 symbols, in value order.
ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
#: GB 32100-2015 §4.3, table 2: the weight of positions 1-17, 3**(i-1) mod 31.
WEIGHTS: Final = tuple(pow(3, i, 31) for i in range(17))
_VALUES: Final = {symbol: value for value, symbol in enumerate(ALPHABET)}
_SHAPE: Final = re.compile(rf"[{ALPHABET}]{{2}}[0-9]{{6}}[{ALPHABET}]{{10}}")
_FORBIDDEN: Final = frozenset("IOZSV")


class EnterpriseRole(StrEnum):
    """How the natural person at the e-business-licence system stands to the enterprise."""

    LEGAL_REPRESENTATIVE = "legal_representative"  # 法定代表人
    AGENT = "agent"  # 经办人


class CreditCodeError(ValueError):
    """The text is not a well-formed GB 32100-2015 unified social credit code."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid unified social credit code: {reason}")


@dataclass(frozen=True)
class UnifiedSocialCreditCode:
    """A validated 18-character unified social credit code (GB 32100-2015)."""

    value: str

    @property
    def registration_authority(self) -> str:
        """Position 1: the registration authority (``9``: market regulation)."""
        return self.value[0]

    @property
    def entity_category(self) -> str:
        """Position 2: the category of the entity within its authority."""
        return self.value[1]

    @property
    def division_code(self) -> str:
        """Positions 3-8: the registering authority's administrative division (GB/T 2260)."""
        return self.value[2:8]

    @property
    def organisation_code(self) -> str:
        """Positions 9-17: the organisation code (GB 11714)."""
        return self.value[8:17]


def check_character(first17: str) -> str:
    """The check character for the first 17 characters (GB 32100-2015 §4.3)."""
    total = sum(_VALUES[c] * weight for c, weight in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def parse_credit_code(text: str) -> UnifiedSocialCreditCode:
    """Validate ``text`` as a unified social credit code; surrounding blanks are ignored.

    Unlike the ``x`` of an identity number, lower-case letters are refused: GB 32100-2015 §4.1
    writes the code in capitals, and an upstream that sends anything else is not asserting a
    code of the standard (the e-business-licence system never does).
    """
    candidate = text.strip()
    if len(candidate) != 18:
        raise CreditCodeError(f"must have 18 characters, has {len(candidate)}")
    if candidate != candidate.upper():
        raise CreditCodeError("letters must be capitals")
    forbidden = sorted(_FORBIDDEN & set(candidate))
    if forbidden:
        raise CreditCodeError(f"the letters {', '.join(forbidden)} are not in the code's alphabet")
    if _SHAPE.fullmatch(candidate) is None:
        raise CreditCodeError("positions 3-8 must be digits, the rest of the 31-symbol alphabet")
    if check_character(candidate[:17]) != candidate[17]:
        raise CreditCodeError("check character does not match (GB 32100-2015 §4.3)")
    return UnifiedSocialCreditCode(candidate)


def enterprise_key(code: UnifiedSocialCreditCode, national_secret: bytes) -> str:
    """The keyed hash under which the enterprise subject is stored and found again.

    Domain-separated from :func:`gateway.identity.identity_key` (``gb32100:`` against
    ``gb11643:``): the two kinds of key never collide, whatever the texts.
    """
    mac = hmac.new(national_secret, b"gb32100:" + code.value.encode(), hashlib.sha256)
    return mac.hexdigest()


__all__ = [
    "ALPHABET",
    "WEIGHTS",
    "CreditCodeError",
    "EnterpriseRole",
    "UnifiedSocialCreditCode",
    "check_character",
    "enterprise_key",
    "parse_credit_code",
]
