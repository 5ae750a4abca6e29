"""Proof Key for Code Exchange, RFC 7636, with the S256 method only.

RFC 9700 §2.1.1: PKCE protects the gateway's code against injection and interception even
though the gateway is a confidential client; ``plain`` is never used.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

__all__ = ["CHALLENGE_METHOD", "code_challenge", "new_code_verifier"]

CHALLENGE_METHOD = "S256"
# RFC 7636 §4.1: 43 to 128 characters from the unreserved set.
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def new_code_verifier() -> str:
    """A fresh verifier: 64 base64url characters, 384 bits from the OS's CSPRNG (§4.1, §7.1)."""
    return secrets.token_urlsafe(48)


def code_challenge(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(code_verifier)))`` without padding (RFC 7636 §4.2)."""
    if _VERIFIER.fullmatch(verifier) is None:
        raise ValueError("a code verifier has 43-128 unreserved characters (RFC 7636 §4.1)")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
