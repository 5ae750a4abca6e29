"""The signing key ring: the gateway's part of the national trust root.

Every token the gateway issues is a JWS (RFC 7515) signed with a key of the ring, and the public
halves are published as a JWK Set (RFC 7517 §5). The package is split by job:

:mod:`~gateway.keys.signing_key`
    one key: a private JWK (RFC 7517 §4, RFC 7518 §6), its RFC 7638 kid and its state.
:mod:`~gateway.keys.rotation`
    the rules (OIDC Core §10.1): which key signs, which are published, pre-publication of the
    next key, retention of the retired one; one rotation step. Pure functions.
:mod:`~gateway.keys.ring`
    :class:`KeyRing`: signs, verifies (RFC 7515, RFC 8725), publishes the JWK Set, rotates.
    Protocol-free and without file I/O.
:mod:`~gateway.keys.files`
    the key file: its format, atomic save, load, create-once.
:mod:`~gateway.keys.watch`
    following the key file, so a rotated file reaches a running gateway.
:mod:`~gateway.keys.history`
    the public halves of keys rotations dropped (OpenID Federation 1.0 §8.7).
:mod:`~gateway.keys.hashes`
    ``at_hash`` and ``c_hash`` (OIDC Core §3.1.3.6), for the provider and the broker alike.
:mod:`~gateway.keys.errors`
    the exceptions.

Importers use the names below from ``gateway.keys``; which module holds them is the package's
business.
"""

from gateway.clock import utc_now
from gateway.keys.errors import (
    InvalidKeyRingError,
    KeyFileError,
    KeyFileMissingError,
    KeyRingError,
    TokenRejectedError,
)
from gateway.keys.files import (
    FILE_FORMAT_VERSION,
    dumps_key_ring,
    load_key_ring,
    load_or_create,
    loads_key_ring,
    save_key_ring,
)
from gateway.keys.hashes import half_hash
from gateway.keys.history import REVOCATION_REASONS, HistoricalKey
from gateway.keys.ring import JWKSet, KeyRing
from gateway.keys.signing_key import (
    KEY_STATES,
    MANDATORY_ALGORITHM,
    RSA_KEY_SIZES,
    SIGNING_ALGORITHMS,
    JoseKey,
    KeyState,
    PublicJWK,
    SigningKey,
)
from gateway.keys.watch import KEY_FILE_CHECK_INTERVAL

__all__ = [
    "FILE_FORMAT_VERSION",
    "KEY_FILE_CHECK_INTERVAL",
    "KEY_STATES",
    "MANDATORY_ALGORITHM",
    "REVOCATION_REASONS",
    "RSA_KEY_SIZES",
    "SIGNING_ALGORITHMS",
    "HistoricalKey",
    "InvalidKeyRingError",
    "JWKSet",
    "JoseKey",
    "KeyFileError",
    "KeyFileMissingError",
    "KeyRing",
    "KeyRingError",
    "KeyState",
    "PublicJWK",
    "SigningKey",
    "TokenRejectedError",
    "dumps_key_ring",
    "half_hash",
    "load_key_ring",
    "load_or_create",
    "loads_key_ring",
    "save_key_ring",
    "utc_now",
]
