"""A region's Logout Token, validated as OpenID Connect Back-Channel Logout 1.0 §2.6 says.

The gateway is the region's relying party; when the person's session at the region ends, the
region POSTs a Logout Token (§2.4) to the gateway's receiver for that region (§2.5). The checks,
in §2.6's order:

1. an encrypted token is refused: the gateway never registers for encryption;
2. the signature verifies with a key of the region's JWK Set, found exactly as for its ID tokens
   (:mod:`gateway.broker.id_token`, :class:`~gateway.broker.metadata.MetadataCache`): only the
   allow-listed ``alg`` values, never ``none`` nor an HMAC (step 3), no key carried in the header,
   no ``crit``; ``typ``, when present, is ``logout+jwt`` (§2.4 recommends it; Keycloak sends it)
   or plain ``JWT``, never another token type (RFC 8725 §3.11);
3. ``iss`` is the region's issuer, ``aud`` contains the gateway's client id at the region (with
   ``azp`` as for an ID token), ``iat`` is neither in the future nor older than
   ``max_token_age``, ``exp`` when present has not passed, each with ``leeway`` (step 4);
4. ``sub``, ``sid`` or both are present (step 5);
5. ``events`` is a JSON object with the member
   ``http://schemas.openid.net/event/backchannel-logout`` whose value is a JSON object (step 6);
6. there is no ``nonce`` (step 7): an ID token can never pass for a logout token;
7. ``jti`` is present (§2.4 requires it); that it is used once (step 8) is the caller's part,
   with the store's replay record, until :attr:`RegionLogout.remember_until`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.broker.id_token import KeyResolver, verified_json
from gateway.errors import LogoutTokenInvalid

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "LogoutTokenExpectations",
    "RegionLogout",
    "validate_logout_token",
]

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
MAX_CLAIM_LENGTH = 255  # sub (OIDC Core §2), sid and jti: what the store keeps
_TYPES = frozenset({"logout+jwt", "jwt"})

Fail = Callable[[str], LogoutTokenInvalid]


@dataclass(frozen=True)
class LogoutTokenExpectations:
    """Who must have issued the logout token, for whom, and when (seconds since the epoch)."""

    issuer: str
    client_id: str
    now: float
    leeway: float = 60
    max_token_age: float = 600


@dataclass(frozen=True)
class RegionLogout:
    """What a valid logout token asks: end the region's session ``sid``, or every session of
    the person the region knows as ``sub`` when there is no ``sid`` (§2.7).

    ``remember_until`` is when the token could no longer be accepted anyway (its ``iat`` past
    ``max_token_age``, or its ``exp``, plus leeway): its ``jti`` must be kept that long.
    """

    jti: str
    sid: str | None
    sub: str | None
    remember_until: float


def validate_logout_token(
    token: str, *, region: str, expected: LogoutTokenExpectations, resolve_key: KeyResolver
) -> RegionLogout:
    """Validate ``token`` (Back-Channel Logout 1.0 §2.6) and say what it asks.

    Raises :class:`LogoutTokenInvalid` naming (in its ``detail``) the first check that failed.
    Key lookup errors of ``resolve_key`` (an unknown ``kid``, a region that is down) pass
    through.
    """

    def fail(reason: str) -> LogoutTokenInvalid:
        return LogoutTokenInvalid(f"region {region}: {reason}")

    claims, _ = verified_json(
        token, what="logout token", types=_TYPES, resolve_key=resolve_key, fail=fail
    )
    return _check_claims(claims, expected, fail)


def _check_claims(
    claims: Mapping[str, Any], expected: LogoutTokenExpectations, fail: Fail
) -> RegionLogout:
    if claims.get("iss") != expected.issuer:
        raise fail("iss is not the region's issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise fail("aud is missing or malformed")
    if expected.client_id not in audiences:
        raise fail("aud does not contain the gateway's client id at the region")
    azp = claims.get("azp")
    if azp is not None and azp != expected.client_id:
        raise fail("azp is not the gateway's client id at the region")

    now, leeway = expected.now, expected.leeway
    iat = _number(claims, "iat", fail)
    if iat is None:
        raise fail("iat is missing")
    if iat > now + leeway:
        raise fail("the logout token was issued in the future (iat)")
    if now - iat > expected.max_token_age + leeway:
        raise fail("the logout token was issued too long ago (iat)")
    exp = _number(claims, "exp", fail)
    if exp is not None and now >= exp + leeway:
        raise fail("the logout token has expired")

    sub = _identifier(claims, "sub", fail)
    sid = _identifier(claims, "sid", fail)
    if sub is None and sid is None:
        raise fail("neither sub nor sid is present (§2.6 step 5)")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise fail("events lacks the back-channel logout event as a JSON object (§2.6 step 6)")
    if "nonce" in claims:
        raise fail("the logout token carries a nonce (§2.6 step 7)")
    jti = _identifier(claims, "jti", fail)
    if jti is None:
        raise fail("jti is missing (§2.4)")

    remember_until = iat + expected.max_token_age + leeway
    if exp is not None:
        remember_until = max(remember_until, min(exp, iat + 24 * 3600) + leeway)
    return RegionLogout(jti=jti, sid=sid, sub=sub, remember_until=remember_until)


def _identifier(claims: Mapping[str, Any], name: str, fail: Fail) -> str | None:
    """A string claim of 1-255 characters, or ``None`` when absent."""
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CLAIM_LENGTH:
        raise fail(f"{name} is not a string of 1-{MAX_CLAIM_LENGTH} characters")
    return value


def _number(claims: Mapping[str, Any], name: str, fail: Fail) -> float | None:
    """A NumericDate claim (RFC 7519 §2), or ``None`` when absent."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise fail(f"{name} is not a number")
    return float(value)
