"""What the gateway keeps sealed at rest: TOTP secrets, resident identity numbers, and the
client secrets of regions.

Each is sealed by a :class:`SecretCipher`, AES-256-GCM (NIST SP 800-38D), and bound to what it
belongs to through the associated data: a TOTP secret to its subject, an identity number to
``id_number:<subject>`` (see :class:`IdentitySealer`), a region's client secret to
``region_client_secret:<code>`` (see :class:`RegionSecretSealer`). A sealed value copied to
another row does not open. TOTP secrets and identity numbers are sealed under keys derived from
the configured MFA secret; region client secrets under the sealing keys
(``TONGXING_SEALING_KEYS``), which can be rotated (docs/security/secrets.md).

The byte-level format, the HKDF ``info`` and the binding prefix are the ones the TOTP secrets
were first stored with (hence ``mfa``/``totp`` in them): changing any of them would make every
sealed value in every deployed store unreadable, so they stay as they are.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from gateway.identity import ResidentIdentityNumber

__all__ = [
    "IdentitySealer",
    "RegionSecretSealer",
    "SecretCipher",
    "SecretUnreadableError",
    "derive_key",
]

_FORMAT_VERSION: Final = b"\x01"
_KEY_ID_LENGTH: Final = 8
_NONCE_LENGTH: Final = 12
_HKDF_INFO: Final = b"tongxing/mfa/totp-secret/v1"
#: A key of its own for region client secrets, also when it is derived from the MFA secret.
_REGION_SECRET_INFO: Final = b"tongxing/registry/region-client-secret/v1"


class SecretUnreadableError(Exception):
    """A sealed value does not open: wrong key, another subject's row, or tampering."""


class SecretCipher:
    """AES-256-GCM for values kept sealed at rest, bound to their subject (associated data).

    Stored form: ``version (1) | key id (8) | nonce (12) | ciphertext + tag``. The first key
    seals; every key opens what it sealed, so a key can be rotated by putting the new one first
    and keeping the old one until nothing sealed under it is left.
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        for key in keys:
            if len(key) != 32:
                raise ValueError("keys must be 32 bytes (AES-256)")
        self._keys = {_key_id(key): AESGCM(key) for key in keys}
        self._current = _key_id(keys[0])

    @classmethod
    def from_secrets(cls, current: SecretStr | str, *previous: SecretStr | str) -> SecretCipher:
        """Keys derived with HKDF-SHA-256 (RFC 5869) from configuration secrets."""
        return cls([derive_key(secret) for secret in (current, *previous)])

    def encrypt(self, plaintext: bytes, subject: str) -> bytes:
        header = _FORMAT_VERSION + self._current
        nonce = os.urandom(_NONCE_LENGTH)
        sealed = self._keys[self._current].encrypt(nonce, plaintext, header + _bind(subject))
        return header + nonce + sealed

    def sealed_with_current_key(self, stored: bytes) -> bool:
        """Whether ``stored`` was sealed under the first key (a reseal would not change it)."""
        return stored[:1] == _FORMAT_VERSION and stored[1 : 1 + _KEY_ID_LENGTH] == self._current

    def decrypt(self, stored: bytes, subject: str) -> bytes:
        head = 1 + _KEY_ID_LENGTH
        if len(stored) < head + _NONCE_LENGTH + 16 or stored[:1] != _FORMAT_VERSION:
            raise SecretUnreadableError("not a stored secret of a known format")
        key = self._keys.get(stored[1:head])
        if key is None:
            raise SecretUnreadableError("encrypted with a key that is not configured")
        nonce, sealed = stored[head : head + _NONCE_LENGTH], stored[head + _NONCE_LENGTH :]
        try:
            return key.decrypt(nonce, sealed, stored[:head] + _bind(subject))
        except InvalidTag:
            raise SecretUnreadableError("does not decrypt for this subject with this key") from None


def derive_key(secret: SecretStr | str, info: bytes = _HKDF_INFO) -> bytes:
    """A 32-byte AES key from a configuration secret (HKDF-SHA-256, RFC 5869); ``info`` keeps
    the keys of different uses apart (RFC 5869 §3.2)."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if len(value) < 32:
        raise ValueError("a secret to derive keys from must be at least 32 characters")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
    return hkdf.derive(value.encode("utf-8"))


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"tongxing key id\0" + key).digest()[:_KEY_ID_LENGTH]


def _bind(subject: str) -> bytes:
    return b"tongxing:totp:" + subject.encode("utf-8")


class IdentitySealer:
    """Seals identity numbers for the session store; opens them only for release."""

    def __init__(self, cipher: SecretCipher) -> None:
        self.cipher = cipher

    def seal_identity_number(self, number: ResidentIdentityNumber, subject: str) -> str:
        sealed = self.cipher.encrypt(number.value.encode(), f"id_number:{subject}")
        return base64.b64encode(sealed).decode()

    def open_identity_number(self, sealed: str, subject: str) -> str:
        return self.cipher.decrypt(base64.b64decode(sealed), f"id_number:{subject}").decode()


class RegionSecretSealer:
    """Seals the client secret a region gave the gateway, for the registry document.

    Stored form: base64 of :class:`SecretCipher`'s, bound to ``region_client_secret:<code>``.
    Keys: HKDF-SHA-256 of each configured sealing key (``TONGXING_SEALING_KEYS``, a JSON list;
    the first seals, every one opens), or, when none is configured, of the MFA secret under an
    ``info`` of its own (``derived`` is then true, and the gateway says so at start). Rotation:
    put a new key first, run ``tongxing secrets reseal``, then drop the old key
    (docs/security/secrets.md).
    """

    def __init__(self, cipher: SecretCipher, *, derived: bool = False) -> None:
        self.cipher = cipher
        self.derived = derived

    @classmethod
    def from_keys(
        cls, keys: Sequence[SecretStr | str], fallback: SecretStr | str
    ) -> RegionSecretSealer:
        """Sealing keys ``keys`` (first seals), or keys derived from ``fallback`` when empty."""
        if keys:
            return cls(SecretCipher([derive_key(key, _REGION_SECRET_INFO) for key in keys]))
        return cls(SecretCipher([derive_key(fallback, _REGION_SECRET_INFO)]), derived=True)

    def seal(self, code: str, secret: str) -> str:
        sealed = self.cipher.encrypt(secret.encode("utf-8"), _region_binding(code))
        return base64.b64encode(sealed).decode("ascii")

    def open(self, code: str, sealed: str) -> str:
        """The clear secret; :class:`SecretUnreadableError` under an unknown key, for another
        region, or tampered with."""
        try:
            stored = base64.b64decode(sealed.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            raise SecretUnreadableError("not a sealed region secret") from None
        return self.cipher.decrypt(stored, _region_binding(code)).decode("utf-8")

    def is_current(self, sealed: str) -> bool:
        """Whether ``sealed`` is sealed under the first key (nothing for a reseal to do)."""
        try:
            stored = base64.b64decode(sealed.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            return False
        return self.cipher.sealed_with_current_key(stored)


def _region_binding(code: str) -> str:
    return f"region_client_secret:{code}"
