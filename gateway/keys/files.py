"""The key file: the ring's private keys and their states, read, written atomically, created once.

The file is a JSON document::

    {"version": 1,
     "keys": [{"state": "active", "created_at": "...", "retire_until": null, "jwk": {...}}, ...],
     "history": [{"created_at": "...", "expires_at": "...", "jwk": {...},
                  "revoked": {"revoked_at": "...", "reason": "compromised"}}, ...]}

where each ``jwk`` is a private JWK (RFC 7517 §4; RSA members RFC 7518 §6.3.2, EC members
§6.2.2) with ``alg``, ``use`` ``sig`` and, if present, a ``kid`` that must be its RFC 7638
thumbprint, and the dates are ISO 8601 with a UTC offset. The optional ``history`` holds the
PUBLIC JWKs of keys rotations dropped (:mod:`gateway.keys.history`, OpenID Federation 1.0 §8.7);
a file without it is a ring without history, and readers before it ignore it. In production
the file is a read-only Kubernetes Secret mounted into the pod; the embedded demo may create it
on first start. Problems are reported without quoting key material.

A ring loaded with ``watch_every`` follows its file (:mod:`gateway.keys.watch`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, cast

from joserfc.jwk import ECKey, RSAKey
from joserfc.util import urlsafe_b64decode

from gateway.keys.errors import (
    InvalidKeyRingError,
    KeyFileError,
    KeyFileMissingError,
    key_file_error,
)
from gateway.keys.history import parse_history
from gateway.keys.ring import KeyRing
from gateway.keys.signing_key import (
    EC_CURVE,
    KEY_STATES,
    RSA_KEY_SIZES,
    SIGNING_ALGORITHMS,
    JoseKey,
    KeyState,
    SigningKey,
)
from gateway.keys.watch import FileVersion, KeyFileFollower, file_version

# The package's logger, one name for operators to filter on (as before the package was split).
logger = logging.getLogger(__package__)

FILE_FORMAT_VERSION: Final = 1


# --- the format --------------------------------------------------------------------------------


def dumps_key_ring(ring: KeyRing) -> str:
    """The ring as JSON, PRIVATE keys included: write it only to a 0600 file or a Secret."""
    document: dict[str, Any] = {
        "version": FILE_FORMAT_VERSION,
        "keys": [
            {
                "state": key.state,
                "created_at": key.created_at.isoformat(),
                "retire_until": None if key.retire_until is None else key.retire_until.isoformat(),
                "jwk": key.private_jwk(),
            }
            for key in ring.keys
        ],
    }
    if ring.history:  # written only when there is one: older readers see the same document
        document["history"] = [entry.document() for entry in ring.history]
    return json.dumps(document, indent=2) + "\n"


def loads_key_ring(text: str | bytes) -> KeyRing:
    """Parse and validate a key ring document; :class:`InvalidKeyRingError` says what is wrong
    (never quoting key material)."""
    try:
        document = json.loads(text)
    except ValueError as error:
        # JSONDecodeError's message gives a position, never the content.
        raise InvalidKeyRingError(f"not JSON ({error})") from None
    if not isinstance(document, dict):
        raise InvalidKeyRingError("expected a JSON object with 'version' and 'keys'")
    if document.get("version") != FILE_FORMAT_VERSION:
        raise InvalidKeyRingError(
            f"unsupported format version {str(document.get('version'))[:16]!r} "
            f"(expected {FILE_FORMAT_VERSION})"
        )
    entries = document.get("keys")
    if not isinstance(entries, list) or not entries:
        raise InvalidKeyRingError("'keys' must be a non-empty list")
    return KeyRing(
        (_parse_entry(index, entry) for index, entry in enumerate(entries)),
        parse_history(document.get("history")),
    )


def _parse_entry(index: int, entry: object) -> SigningKey:
    where = f"keys[{index}]"
    if not isinstance(entry, dict):
        raise InvalidKeyRingError(f"{where} is not an object")
    state = entry.get("state")
    if state not in KEY_STATES:
        raise InvalidKeyRingError(
            f"{where}: unknown state {str(state)[:16]!r} (expected one of {', '.join(KEY_STATES)})"
        )
    created_at = _parse_time(where, "created_at", entry.get("created_at"))
    raw_retire_until = entry.get("retire_until")
    retire_until = (
        None if raw_retire_until is None else _parse_time(where, "retire_until", raw_retire_until)
    )
    jwk = entry.get("jwk")
    if not isinstance(jwk, dict):
        raise InvalidKeyRingError(f"{where}: 'jwk' must be a JSON object")
    alg = jwk.get("alg")
    if alg not in SIGNING_ALGORITHMS:
        raise InvalidKeyRingError(
            f"{where}: jwk alg {str(alg)[:16]!r} is not one of {', '.join(SIGNING_ALGORITHMS)}"
        )
    jose_key = _import_private_jwk(where, alg, jwk)
    key = SigningKey.from_jose_key(
        jose_key,
        alg=alg,
        state=cast(KeyState, state),
        created_at=created_at,
        retire_until=retire_until,
    )
    stated_kid = jwk.get("kid")
    if stated_kid is not None and stated_kid != key.kid:
        raise InvalidKeyRingError(
            f"{where}: kid {str(stated_kid)[:64]!r} is not the RFC 7638 thumbprint {key.kid}"
        )
    return key


def _parse_time(where: str, name: str, value: object) -> datetime:
    if not isinstance(value, str):
        raise InvalidKeyRingError(f"{where}: {name} must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidKeyRingError(f"{where}: {name} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise InvalidKeyRingError(f"{where}: {name} has no UTC offset")
    return parsed.astimezone(UTC)


def _import_private_jwk(where: str, alg: str, jwk: dict[str, Any]) -> JoseKey:
    expected_kty = "RSA" if alg == "RS256" else "EC"
    if jwk.get("kty") != expected_kty:
        raise InvalidKeyRingError(f"{where}: an {alg} key must have kty {expected_kty}")
    if "d" not in jwk:
        raise InvalidKeyRingError(f"{where}: the jwk is not a private key (no 'd')")
    if jwk.get("use", "sig") != "sig":
        raise InvalidKeyRingError(f"{where}: the jwk 'use' must be 'sig'")
    if alg == "RS256":
        # Checked before parsing: joserfc warns (SecurityWarning) about short keys while parsing.
        size = _modulus_bits(jwk.get("n"))
        if size not in RSA_KEY_SIZES:
            raise InvalidKeyRingError(f"{where}: the RSA modulus must have 2048 or 3072 bits")
    # joserfc would keep 'kid', 'alg' and 'use' in its dict; the ring owns those members.
    members = {name: value for name, value in jwk.items() if name not in ("kid", "alg", "use")}
    jose_key: JoseKey
    try:
        jose_key = RSAKey.import_key(members) if alg == "RS256" else ECKey.import_key(members)
    except Exception as error:  # any parse failure; the message never echoes the members
        raise InvalidKeyRingError(
            f"{where}: not a valid {expected_kty} private JWK ({type(error).__name__})"
        ) from None
    if isinstance(jose_key, ECKey) and jose_key.curve_name != EC_CURVE:
        raise InvalidKeyRingError(f"{where}: ES256 needs curve {EC_CURVE}")
    return jose_key


def _modulus_bits(value: object) -> int:
    if not isinstance(value, str):
        return 0
    try:
        return int.from_bytes(urlsafe_b64decode(value.encode("ascii")), "big").bit_length()
    except (ValueError, UnicodeError):
        return 0


# --- the file ----------------------------------------------------------------------------------


def save_key_ring(ring: KeyRing, path: Path, *, overwrite: bool = True) -> None:
    """Write the ring to ``path`` atomically with mode 0600.

    The document goes to a temporary file in the same directory, is fsynced, and then replaces
    ``path`` (``os.replace``), so a reader sees the old file or the new one, never half of one.
    With ``overwrite=False`` the file is linked into place only if nothing is there yet
    (``FileExistsError`` otherwise): two processes creating the ring at once cannot both win.
    """
    path = Path(path)
    data = dumps_key_ring(ring).encode("utf-8")
    # mkstemp creates the file 0600, so the private keys are never readable by others.
    descriptor, temporary_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    temporary = Path(temporary_name)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            os.fchmod(stream.fileno(), 0o600)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if overwrite:
            temporary.replace(path)
        else:
            os.link(temporary, path)
            temporary.unlink()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    _fsync_directory(path.parent)
    logger.info("saved signing key ring to %s: %s", path, ring.describe())


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable (POSIX); some filesystems refuse to open a directory.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def read_key_file(path: Path) -> tuple[bytes, FileVersion]:
    """The file's content and the version it was read from (one open file: no race)."""
    try:
        with path.open("rb") as stream:
            version = file_version(os.fstat(stream.fileno()))
            return stream.read(), version
    except OSError as error:
        raise key_file_error(path, error) from None


def parse_key_file(path: Path, data: bytes) -> KeyRing:
    """The ring a key file holds; :class:`KeyFileError` names the file and what is wrong."""
    try:
        return loads_key_ring(data)
    except InvalidKeyRingError as error:
        raise KeyFileError(path, f"is invalid: {error}") from None


def load_key_ring(
    path: Path,
    *,
    watch_every: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> KeyRing:
    """Read and validate the key file; every problem is a :class:`KeyFileError` naming it.

    With ``watch_every`` (seconds, e.g. :data:`~gateway.keys.watch.KEY_FILE_CHECK_INTERVAL`) the
    ring follows the file: the first use of the ring after each interval (``clock``, monotonic)
    stats the file, and a changed file is loaded and swapped in when it is valid (see
    :class:`~gateway.keys.watch.KeyFileFollower`).
    """
    path = Path(path)
    data, version = read_key_file(path)
    ring = parse_key_file(path, data)
    if watch_every is not None:
        ring.follow(
            KeyFileFollower(
                path, version, watch_every, clock, read=read_key_file, parse=parse_key_file
            )
        )
    logger.info("loaded signing key ring from %s: %s", path, ring.describe())
    return ring


def load_or_create(
    path: Path,
    *,
    create: bool,
    now: datetime,
    algorithms: Iterable[str] = SIGNING_ALGORITHMS,
    rsa_key_size: int = RSA_KEY_SIZES[0],
    watch_every: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> KeyRing:
    """The ring stored at ``path``, following the file when ``watch_every`` is given (see
    :func:`load_key_ring`).

    A missing file is generated and saved when ``create`` is true (the embedded demo) and is an
    error otherwise (production: the keys come from a mounted Kubernetes Secret). A file that
    exists but is invalid or unreadable is always an error and is never overwritten.
    """
    path = Path(path)
    try:
        return load_key_ring(path, watch_every=watch_every, clock=clock)
    except KeyFileMissingError:
        if not create:
            raise KeyFileMissingError(
                path,
                "does not exist; mount the signing key Secret at this path "
                "(or allow creating a new key ring, for the embedded demo only)",
            ) from None
    ring = KeyRing.generate(now=now, algorithms=algorithms, rsa_key_size=rsa_key_size)
    try:
        save_key_ring(ring, path, overwrite=False)
    except FileExistsError:
        # Another process created it first: use theirs, so every process signs with one ring.
        return load_key_ring(path, watch_every=watch_every, clock=clock)
    except OSError as error:
        raise KeyFileError(path, f"cannot be created ({error.strerror})") from None
    if watch_every is not None:
        # Follow the file as saved: the ring and the version it is compared with come from one
        # read, so a change made after that read cannot be missed.
        return load_key_ring(path, watch_every=watch_every, clock=clock)
    return ring
