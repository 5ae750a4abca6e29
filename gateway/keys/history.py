"""The keys a ring no longer holds: their public halves, kept for the historical keys endpoint.

OpenID Federation 1.0 §8.7 lets an entity publish the federation keys it used before a rotation,
each with its ``iat``, ``exp`` and, when it was revoked, ``revoked`` (``revoked_at``, ``reason``,
§8.7.3), so that statements signed before the rotation stay verifiable (§8.7.4). When a rotation
drops a retired key (:func:`~gateway.keys.rotation.rotate_keys`), :meth:`KeyRing.rotate
<gateway.keys.ring.KeyRing.rotate>` keeps its PUBLIC JWK here, and the key file stores the list
under ``history`` (:mod:`gateway.keys.files`): no private member is ever kept. Older files without
``history`` load as an empty history; older readers ignore the member.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from gateway.keys.errors import InvalidKeyRingError
from gateway.keys.signing_key import SIGNING_ALGORITHMS, PublicJWK, SigningKey, require_aware

#: §8.7.3: the revocation reasons the Final defines (a federation MAY add others).
REVOCATION_REASONS: Final = ("unspecified", "compromised", "superseded")
#: The newest entries kept: a monthly rotation of two algorithms fills it in about four years.
MAX_HISTORY: Final = 100
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclass(frozen=True, kw_only=True)
class HistoricalKey:
    """A public federation key no longer held by the ring (§8.7.2): ``created_at`` is its
    ``iat``, ``expires_at`` its ``exp`` (when it stopped being valid: the end of its retention),
    ``revoked_at``/``reason`` its ``revoked`` object when it was revoked."""

    jwk: PublicJWK
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    reason: str | None = None

    @property
    def kid(self) -> str:
        return self.jwk["kid"]

    @classmethod
    def of(cls, key: SigningKey, expires_at: datetime) -> HistoricalKey:
        """The public half of ``key``, valid until ``expires_at``."""
        return cls(
            jwk=key.public_jwk(),
            created_at=key.created_at,
            expires_at=require_aware(expires_at, "expires_at"),
        )

    def historical_jwk(self) -> dict[str, Any]:
        """The JWK as §8.7.2 lists it: the public key with ``kid``, ``iat``, ``exp`` and, when
        revoked, ``revoked`` (``revoked_at``, ``reason`` when known)."""
        entry: dict[str, Any] = {
            **self.jwk,
            "iat": int(self.created_at.timestamp()),
            "exp": int(self.expires_at.timestamp()),
        }
        if self.revoked_at is not None:
            revoked: dict[str, Any] = {"revoked_at": int(self.revoked_at.timestamp())}
            if self.reason is not None:
                revoked["reason"] = self.reason
            entry["revoked"] = revoked
        return entry

    def document(self) -> dict[str, Any]:
        """The entry as the key file stores it."""
        entry: dict[str, Any] = {
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "jwk": dict(self.jwk),
        }
        if self.revoked_at is not None:
            entry["revoked"] = {"revoked_at": self.revoked_at.isoformat(), "reason": self.reason}
        return entry


def parse_history(value: object) -> tuple[HistoricalKey, ...]:
    """The ``history`` member of a key file (absent: empty); :class:`InvalidKeyRingError` says
    what is wrong, never quoting key material."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_HISTORY:
        raise InvalidKeyRingError(f"'history' must be a list of at most {MAX_HISTORY} entries")
    return tuple(_parse_entry(f"history[{index}]", entry) for index, entry in enumerate(value))


def _parse_entry(where: str, entry: object) -> HistoricalKey:
    if not isinstance(entry, Mapping):
        raise InvalidKeyRingError(f"{where} is not an object")
    jwk = entry.get("jwk")
    if not isinstance(jwk, Mapping) or _PRIVATE_MEMBERS & jwk.keys():
        raise InvalidKeyRingError(f"{where}: 'jwk' must be a public JWK")
    alg = jwk.get("alg")
    if alg not in SIGNING_ALGORITHMS:
        raise InvalidKeyRingError(f"{where}: jwk alg {str(alg)[:16]!r} is not accepted")
    members = {name: value for name, value in jwk.items() if name not in ("kid", "alg", "use")}
    try:
        key = RSAKey.import_key(members) if alg == "RS256" else ECKey.import_key(members)
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidKeyRingError(f"{where}: not a valid public JWK") from None
    if jwk.get("kid") != key.thumbprint():
        raise InvalidKeyRingError(f"{where}: kid is not the RFC 7638 thumbprint")
    revoked = entry.get("revoked")
    revoked_at: datetime | None = None
    reason: str | None = None
    if revoked is not None:
        if not isinstance(revoked, Mapping):
            raise InvalidKeyRingError(f"{where}: 'revoked' must be an object")
        revoked_at = _time(where, "revoked.revoked_at", revoked.get("revoked_at"))
        reason = revoked.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise InvalidKeyRingError(f"{where}: revoked.reason must be a string")
    return HistoricalKey(
        jwk={str(name): str(value) for name, value in jwk.items()},
        created_at=_time(where, "created_at", entry.get("created_at")),
        expires_at=_time(where, "expires_at", entry.get("expires_at")),
        revoked_at=revoked_at,
        reason=reason,
    )


def _time(where: str, name: str, value: object) -> datetime:
    if not isinstance(value, str):
        raise InvalidKeyRingError(f"{where}: {name} must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidKeyRingError(f"{where}: {name} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise InvalidKeyRingError(f"{where}: {name} has no UTC offset")
    return parsed.astimezone(UTC)


def merged(
    dropped: Iterable[HistoricalKey], history: Iterable[HistoricalKey]
) -> tuple[HistoricalKey, ...]:
    """``dropped`` (newly retired out of the ring) before ``history``, one entry per kid, the
    newest :data:`MAX_HISTORY` kept."""
    seen: set[str] = set()
    entries: list[HistoricalKey] = []
    for entry in [*dropped, *history]:
        if entry.kid not in seen:
            seen.add(entry.kid)
            entries.append(entry)
    return tuple(entries[:MAX_HISTORY])


__all__ = [
    "MAX_HISTORY",
    "REVOCATION_REASONS",
    "HistoricalKey",
    "merged",
    "parse_history",
]
