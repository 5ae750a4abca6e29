"""ID Token validation, OpenID Connect Core 1.0 §3.1.3.7, done strictly.

The checks, in order (the step numbers are §3.1.3.7's):

* the token is a JWS in compact serialization; an encrypted ID token (step 1) is refused, the
  gateway never registers for encryption;
* the header's ``alg`` is on the allow-list (RS256, PS256, ES256; step 7 via the client's
  registered ``id_token_signed_response_alg``): never ``none``, never an HMAC;
* the header carries no key of its own (``jwk``, ``jku``, ``x5u``, ``x5c``, RFC 7515 §4.1.2-6):
  the only keys trusted are the region's published JWK Set; and no ``crit`` extension;
* the signature verifies with the region's key for the header's ``kid`` (step 6, §10.1.1);
* ``iss`` equals the region's issuer exactly (step 2);
* ``aud`` contains the client id; with several audiences ``azp`` must be present, and ``azp``
  when present must be the client id (steps 3-5);
* ``exp`` is in the future (step 9), ``iat`` not in the future and not older than
  ``max_token_age`` (step 10), ``nbf`` when present has passed, each with ``leeway`` for clock
  skew;
* ``nonce`` equals the transaction's (step 11, constant-time comparison);
* with ``max_age`` requested, ``auth_time`` is present and recent enough (step 13);
* ``at_hash``, when present, matches the access token (§3.1.3.8, §3.3.2.11).
"""

from __future__ import annotations

import base64
import hmac
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError

from gateway.broker.errors import InvalidUpstreamToken, StaleAuthentication
from gateway.broker.metadata import SIGNING_ALGORITHMS, SigningKey
from gateway.keys import half_hash

__all__ = [
    "ALLOWED_ALGORITHMS",
    "EMBEDDED_KEY_HEADERS",
    "IdTokenExpectations",
    "KeyResolver",
    "validate_id_token",
]

ALLOWED_ALGORITHMS = frozenset(SIGNING_ALGORITHMS)
EMBEDDED_KEY_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c"})
MAX_TOKEN_BYTES = 16 * 1024

# (kid, alg) -> the region's key; raises InvalidUpstreamToken or RegionUnavailable.
KeyResolver = Callable[[str | None, str], SigningKey]
E = TypeVar("E", bound=Exception)


@dataclass(frozen=True)
class IdTokenExpectations:
    """What the ID token must say: who issued it, for whom, for which request, and when."""

    issuer: str
    client_id: str
    nonce: str
    now: float
    leeway: float = 60
    max_token_age: float = 600
    max_age: int | None = None
    access_token: str | None = None


def validate_id_token(
    token: str, *, region: str, expected: IdTokenExpectations, resolve_key: KeyResolver
) -> dict[str, Any]:
    """Validate ``token`` (OIDC Core §3.1.3.7) and return its claims.

    Raises :class:`InvalidUpstreamToken` naming the first check that failed. Key lookup errors
    from ``resolve_key`` (an unknown ``kid``, a region that is down) pass through.
    """

    def fail(reason: str) -> InvalidUpstreamToken:
        return InvalidUpstreamToken(region, reason)

    claims, alg = verified_json(
        token, what="ID token", types=_ID_TOKEN_TYPES, resolve_key=resolve_key, fail=fail
    )
    _check_claims(claims, expected, alg, fail)
    return claims


_ID_TOKEN_TYPES = frozenset({"jwt"})


def verified_json(
    token: object,
    *,
    what: str,
    types: frozenset[str],
    resolve_key: KeyResolver,
    fail: Callable[[str], E],
) -> tuple[dict[str, Any], str]:
    """A region's JWS (compact serialization) checked and verified: the JSON object it signs
    and its ``alg``. Shared by the ID token and the logout token (Back-Channel Logout 1.0 §2.6
    steps 1-3): no encryption, an allow-listed ``alg`` (never ``none`` nor an HMAC), no key in
    the header, no ``crit``, a ``typ`` (when present, any case, ``application/`` optional)
    among ``types`` (RFC 8725 §3.11), a string ``kid``, the key from ``resolve_key``. Each
    refusal is ``fail(reason)``, naming the ``what``; key lookup errors pass through.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES:
        raise fail(f"the {what} is not a string of reasonable size")
    if token.count(".") != 2:
        raise fail(f"the {what} is not a JWS in compact serialization (encrypted or malformed)")
    try:
        header = _json(_b64decode(token.split(".", 1)[0]))
    except (ValueError, UnicodeError):
        raise fail(f"the {what} header cannot be decoded") from None
    if not isinstance(header, dict):
        raise fail(f"the {what} header is not a JSON object")

    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise fail(f"algorithm {str(alg)[:20]!r} is not allowed")
    embedded = EMBEDDED_KEY_HEADERS.intersection(header)
    if embedded:
        raise fail(f"the header carries its own key ({', '.join(sorted(embedded))})")
    if "crit" in header:
        raise fail("the header has critical extensions")
    typ = header.get("typ")
    if typ is not None and (
        not isinstance(typ, str) or typ.lower().removeprefix("application/") not in types
    ):
        raise fail(f"the header type {str(typ)[:40]!r} is not the {what}'s")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise fail("the header kid is not a string")

    key = resolve_key(kid, alg)
    try:
        verified = jws.deserialize_compact(token, key, algorithms=[alg])
    except BadSignatureError:
        raise fail("the signature does not verify") from None
    except (JoseError, ValueError):
        raise fail("the signature cannot be checked with the region's key") from None
    try:
        claims = _json(verified.payload)
    except ValueError:
        raise fail("the payload is not JSON") from None
    if not isinstance(claims, dict):
        raise fail("the payload is not a JSON object")
    return claims, alg


def _check_claims(
    claims: Mapping[str, Any],
    expected: IdTokenExpectations,
    alg: str,
    fail: Callable[[str], InvalidUpstreamToken],
) -> None:
    if claims.get("iss") != expected.issuer:
        raise fail(f"iss {claims.get('iss')!r} is not the region's issuer")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 0 < len(sub) <= 255:
        raise fail("sub is missing or not a string of 1-255 characters (OIDC Core §2)")

    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise fail("aud is missing or malformed")
    if expected.client_id not in audiences:
        raise fail("aud does not contain the gateway's client id")
    azp = claims.get("azp")
    if len(audiences) > 1 and azp is None:
        raise fail("several audiences but no azp")
    if azp is not None and azp != expected.client_id:
        raise fail("azp is not the gateway's client id")

    now, leeway = expected.now, expected.leeway
    exp = _required_number(claims, "exp", fail)
    iat = _required_number(claims, "iat", fail)
    nbf = _number(claims, "nbf", fail)
    if now >= exp + leeway:
        raise fail("the ID token has expired")
    if iat > now + leeway:
        raise fail("the ID token was issued in the future (iat)")
    if now - iat > expected.max_token_age + leeway:
        raise fail("the ID token was issued too long ago (iat)")
    if nbf is not None and nbf > now + leeway:
        raise fail("the ID token is not valid yet (nbf)")

    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(
        nonce.encode(), expected.nonce.encode()
    ):
        raise fail("nonce does not match the sign-in request")

    if expected.max_age is not None:
        auth_time = _required_number(claims, "auth_time", fail)
        if now - auth_time > expected.max_age + leeway:
            stale = fail("auth_time is older than the max_age requested")
            raise StaleAuthentication(stale.region, stale.reason)
    else:
        _number(claims, "auth_time", fail)

    if "acr" in claims and not isinstance(claims["acr"], str):
        raise fail("acr is not a string")
    amr = claims.get("amr")
    if amr is not None and (not isinstance(amr, list) or not all(isinstance(a, str) for a in amr)):
        raise fail("amr is not an array of strings")

    at_hash = claims.get("at_hash")
    if (
        at_hash is not None
        and expected.access_token is not None
        and (
            not isinstance(at_hash, str)
            or not hmac.compare_digest(
                at_hash.encode(), half_hash(expected.access_token, alg).encode()
            )
        )
    ):
        raise fail("at_hash does not match the access token")


def _required_number(
    claims: Mapping[str, Any], name: str, fail: Callable[[str], InvalidUpstreamToken]
) -> float:
    value = _number(claims, name, fail)
    if value is None:
        raise fail(f"{name} is missing")
    return value


def _number(
    claims: Mapping[str, Any], name: str, fail: Callable[[str], InvalidUpstreamToken]
) -> float | None:
    """A NumericDate claim (RFC 7519 §2), or ``None`` when absent."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise fail(f"{name} is not a number")
    return float(value)


def _json(data: bytes) -> Any:
    """JSON with unique member names (RFC 7515 §5.2 step 4, RFC 7519 §4: we reject duplicates)."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            raise ValueError("duplicate member name")
        return result

    return json.loads(data, object_pairs_hook=unique)


def _b64decode(segment: str) -> bytes:
    """Base64url without padding (RFC 7515 §2); anything else is refused."""
    if not segment or not all(c.isalnum() or c in "-_" for c in segment) or not segment.isascii():
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
