"""The left-half hashes an ID token carries of its companions: ``at_hash`` and ``c_hash``.

OIDC Core §3.1.3.6 (``at_hash``) and §3.3.2.11 (``c_hash``): hash the ASCII octets of the token
with the hash of the ID token's JWS ``alg`` (SHA-256 for RS256, PS256 and ES256: what the
national key ring signs with and the broker accepts; SHA-384 and SHA-512 for their siblings),
take the left-most half, base64url-encode it without padding. One implementation serves both
faces: the provider writes it into the portals' ID tokens, the broker checks it in the regions'.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

# The hash each JWS algorithm names (RFC 7518 §3.1): the digits are the SHA-2 variant.
HASHES: Final = {
    f"{family}{bits}": f"sha{bits}" for family in ("RS", "PS", "ES") for bits in (256, 384, 512)
}


def half_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash`` of ``value`` for an ID token signed with ``alg``."""
    name = HASHES.get(alg)
    if name is None:
        raise ValueError(f"no hash for {alg}")
    digest = hashlib.new(name, value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


__all__ = ["half_hash"]
