"""One signing key: a private JWK, its RFC 7638 thumbprint and its place in the rotation.

A key is a JWK (RFC 7517 §4) of type ``RSA`` (RFC 7518 §6.3) or ``EC`` on P-256 (RFC 7518
§6.2), held for exactly one JWS algorithm (RFC 7518 §3.1): ``RS256``, which OpenID Connect makes
mandatory (OIDC Core §15.1), or ``ES256``. Its ``kid`` is its RFC 7638 JWK thumbprint (SHA-256),
so two replicas that load the same file agree on it. Its ``state`` is its place in the rotation
(``next``, ``active``, ``retired``); what the states mean and how a key moves between them is in
:mod:`gateway.keys.rotation`.

No private key member ever reaches a ``repr``, an exception message or a log line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Final, Literal, cast, get_args

from joserfc.jwk import ECKey, RSAKey

from gateway.keys.errors import InvalidKeyRingError

KeyState = Literal["next", "active", "retired"]
KEY_STATES: Final = cast(tuple[KeyState, ...], get_args(KeyState))

#: The algorithms the ring signs with and the only ones :meth:`KeyRing.verify` accepts
#: (RFC 7518 §3.1). ``none`` and the HMAC family are never accepted: a public key must not be
#: usable as an HMAC secret (RFC 8725 §2.1, §3.1).
SIGNING_ALGORITHMS: Final = ("RS256", "ES256")
MANDATORY_ALGORITHM: Final = "RS256"  # OIDC Core §15.1
#: RSA modulus sizes the ring generates and loads (RFC 7518 §3.3 requires at least 2048).
RSA_KEY_SIZES: Final = (2048, 3072)
EC_CURVE: Final = "P-256"  # RFC 7518 §3.4: ES256 uses P-256 and SHA-256

JoseKey = RSAKey | ECKey
PublicJWK = dict[str, str]


def require_aware(value: datetime, name: str) -> datetime:
    """``value`` in UTC; :class:`ValueError` for a naive datetime (a rotation date must be a
    moment, not a wall-clock reading)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime (UTC)")
    return value.astimezone(UTC)


@dataclass(frozen=True, eq=False, kw_only=True)
class SigningKey:
    """One key of the ring: a private JWK (kept out of ``repr``) and its place in the rotation.

    ``kid`` is the RFC 7638 thumbprint of the public key. The joserfc key object is parsed once
    and reused for every signature; ``jose_key`` holds the private key, so hand it to nothing
    but a signer.
    """

    kid: str
    alg: str
    state: KeyState
    created_at: datetime
    retire_until: datetime | None = None
    jose_key: JoseKey = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        expected_type = RSAKey if self.alg == "RS256" else ECKey
        if self.alg not in SIGNING_ALGORITHMS or not isinstance(self.jose_key, expected_type):
            raise InvalidKeyRingError(f"key {self.kid}: not a {self.alg} key")
        if not self.jose_key.is_private:
            raise InvalidKeyRingError(f"key {self.kid}: the private key is missing")
        if self.kid != self.jose_key.thumbprint():
            raise InvalidKeyRingError(f"key {self.kid}: kid is not the RFC 7638 thumbprint")
        if self.state not in KEY_STATES:
            raise InvalidKeyRingError(f"key {self.kid}: unknown state {self.state!r}")
        if (self.state == "retired") != (self.retire_until is not None):
            raise InvalidKeyRingError(
                f"key {self.kid}: retire_until is required for retired keys and only for them"
            )

    def __str__(self) -> str:
        return f"{self.alg} key {self.kid} ({self.state})"

    @classmethod
    def generate(
        cls,
        alg: str,
        *,
        now: datetime,
        state: KeyState = "next",
        rsa_key_size: int = 2048,
    ) -> SigningKey:
        """A fresh key for ``alg`` (RSA for RS256, P-256 for ES256; RFC 7518 §3.3, §3.4)."""
        jose_key: JoseKey
        if alg == "RS256":
            if rsa_key_size not in RSA_KEY_SIZES:
                raise ValueError(f"RSA key size must be one of {RSA_KEY_SIZES}, not {rsa_key_size}")
            jose_key = RSAKey.generate_key(rsa_key_size)
        elif alg == "ES256":
            jose_key = ECKey.generate_key(EC_CURVE)
        else:
            raise ValueError(
                f"unsupported signing algorithm {alg!r}; use one of {SIGNING_ALGORITHMS}"
            )
        return cls.from_jose_key(jose_key, alg=alg, state=state, created_at=now)

    @classmethod
    def from_jose_key(
        cls,
        jose_key: JoseKey,
        *,
        alg: str,
        state: KeyState,
        created_at: datetime,
        retire_until: datetime | None = None,
    ) -> SigningKey:
        """A key around a parsed joserfc key; the kid is computed, never taken on trust."""
        return cls(
            kid=jose_key.thumbprint(),
            alg=alg,
            state=state,
            created_at=require_aware(created_at, "created_at"),
            retire_until=None
            if retire_until is None
            else require_aware(retire_until, "retire_until"),
            jose_key=jose_key,
        )

    @cached_property
    def _public_jwk(self) -> PublicJWK:
        members = self.jose_key.as_dict(private=False)
        public = {"kty": str(members["kty"])}
        public.update((name, str(value)) for name, value in members.items() if name != "kid")
        public.update({"use": "sig", "alg": self.alg, "kid": self.kid})
        return public

    def public_jwk(self) -> PublicJWK:
        """The public JWK as published (RFC 7517 §4: ``kty``, key members, ``use``, ``alg``,
        ``kid``); never a private member."""
        return dict(self._public_jwk)

    def is_published(self, now: datetime) -> bool:
        """Next and active keys always; retired ones until ``retire_until`` (OIDC Core §10.1)."""
        return self.retire_until is None or now < self.retire_until

    def private_jwk(self) -> dict[str, Any]:
        """The PRIVATE JWK (RFC 7518 §6.3.2, §6.2.2 members) with ``kid``, ``alg`` and ``use``:
        for the key file (:func:`gateway.keys.files.dumps_key_ring`) and nothing else."""
        members = dict(self.jose_key.as_dict(private=True))
        members.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return members


def describe_keys(keys: Iterable[SigningKey]) -> str:
    """One line naming every key by algorithm, kid and state; safe for logs."""
    return ", ".join(str(key) for key in keys)
