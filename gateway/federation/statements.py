"""Entity statements (OpenID Federation 1.0 §3): signed JWTs of type ``entity-statement+jwt``.

The gateway signs its own statements with its federation :class:`~gateway.keys.KeyRing`; this
module verifies statements other entities sign, with the keys a statement the gateway trusts
names (§10.2: each statement of a chain is verified with the ``jwks`` of the one above it).
Header parameters that carry their own key (``jwk``, ``x5c``, ``jku``, ``x5u``) are refused
(RFC 8725 §3.1): a statement never chooses the key it is checked with. Protocol-free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

ENTITY_STATEMENT_TYP: Final = "entity-statement+jwt"  # §3
ENTITY_STATEMENT_MEDIA_TYPE: Final = "application/entity-statement+jwt"  # §3, §15.1
RESOLVE_RESPONSE_TYP: Final = "resolve-response+jwt"  # §8.3.2
RESOLVE_RESPONSE_MEDIA_TYPE: Final = "application/resolve-response+jwt"  # §15.3
#: A signed JWK Set: the historical keys (§8.7.2) and a ``signed_jwks_uri`` (§5.2.1).
JWK_SET_TYP: Final = "jwk-set+jwt"
JWK_SET_MEDIA_TYPE: Final = "application/jwk-set+jwt"  # §15.6
WELL_KNOWN_PATH: Final = "/.well-known/openid-federation"  # §9
#: Signature algorithms accepted on statements the gateway verifies (RFC 7518 §3.1); never
#: ``none`` or an HMAC (RFC 8725 §3.1).
VERIFY_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
_KEY_CARRYING: Final = frozenset({"jwk", "jku", "x5u", "x5c"})
#: Clock skew allowed on ``iat`` (§3: a statement issued "in the future" is not yet valid).
SKEW: Final = timedelta(seconds=60)
MAX_KEYS: Final = 16


class StatementError(ValueError):
    """A statement does not verify; the message says why (never key material)."""


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS, before its signature is checked (to find its own keys)."""
    try:
        compact = jws.extract_compact(token.encode("ascii"))
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError):
        raise StatementError("not a compact JWS with a JSON payload") from None
    if not isinstance(claims, dict):
        raise StatementError("the payload is not a JSON object")
    return claims


def verify_statement(
    token: str, jwks: Mapping[str, Any], *, typ: str, now: datetime
) -> dict[str, Any]:
    """The claims of ``token`` once its signature verifies with a key of ``jwks`` chosen by
    ``kid``, its ``typ`` is ``typ`` and ``iat``/``exp`` hold at ``now`` (§3, §10.2)."""
    try:
        compact = jws.extract_compact(token.encode("ascii"))
    except (JoseError, ValueError, UnicodeError):
        raise StatementError("not a compact JWS") from None
    header = compact.headers()
    if header.get("typ") != typ:
        raise StatementError(f"typ is not {typ}")
    alg = header.get("alg")
    if alg not in VERIFY_ALGORITHMS:
        raise StatementError(f"algorithm {str(alg)[:16]!r} is not accepted")
    if _KEY_CARRYING & header.keys():
        raise StatementError("the header carries its own key")
    kid = header.get("kid")
    candidates = [
        key for key in jwks.get("keys", []) if isinstance(key, dict) and key.get("kid") == kid
    ]
    if not isinstance(kid, str) or len(candidates) != 1:
        raise StatementError("the kid is not one of the keys the superior's statement lists")
    try:
        key = JWKRegistry.import_key(candidates[0])
        valid = jws.validate_compact(compact, key, registry=jws.JWSRegistry(algorithms=[alg]))
    except (JoseError, ValueError, TypeError):
        valid = False
    if not valid:
        raise StatementError("bad signature")
    claims = unverified_claims(token)
    _check_times(claims, now)
    return claims


def _check_times(claims: Mapping[str, Any], now: datetime) -> None:
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise StatementError("iat and exp are required numbers")
    moment = now.timestamp()
    if iat > moment + SKEW.total_seconds():
        raise StatementError("issued in the future")
    if exp <= moment:
        raise StatementError("expired")


def check_public_jwks(value: object) -> dict[str, Any]:
    """A federation JWK Set as the admin API takes it (RFC 7517 §5): public keys only, each with
    a ``kid``, importable, at most :data:`MAX_KEYS`; :class:`ValueError` says what is wrong."""
    if not isinstance(value, Mapping) or not isinstance(value.get("keys"), list):
        raise ValueError("must be a JWK Set: an object with a 'keys' array")
    keys = value["keys"]
    if not 0 < len(keys) <= MAX_KEYS:
        raise ValueError(f"needs between 1 and {MAX_KEYS} keys")
    kids: set[str] = set()
    for index, key in enumerate(keys):
        if not isinstance(key, Mapping) or not isinstance(key.get("kid"), str) or not key["kid"]:
            raise ValueError(f"keys[{index}] needs a kid")
        if "d" in key or "p" in key or "k" in key:
            raise ValueError(f"keys[{index}] is private or symmetric: publish public keys only")
        if key["kid"] in kids:
            raise ValueError(f"keys[{index}]: kid appears twice")
        kids.add(key["kid"])
        try:
            JWKRegistry.import_key(dict(key))
        except (JoseError, ValueError, TypeError):
            raise ValueError(f"keys[{index}] is not a valid public JWK") from None
    return {"keys": [dict(key) for key in keys]}


__all__ = [
    "ENTITY_STATEMENT_MEDIA_TYPE",
    "ENTITY_STATEMENT_TYP",
    "JWK_SET_MEDIA_TYPE",
    "JWK_SET_TYP",
    "RESOLVE_RESPONSE_MEDIA_TYPE",
    "RESOLVE_RESPONSE_TYP",
    "WELL_KNOWN_PATH",
    "StatementError",
    "check_public_jwks",
    "unverified_claims",
    "verify_statement",
]
