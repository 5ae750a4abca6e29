"""The signing key ring: the gateway's part of the national trust root.

Every token the gateway issues is a JWS (RFC 7515) signed with one of the keys held here, and the
public halves are published as a JWK Set (RFC 7517 §5) at the ``jwks_uri``. The ring holds, per
algorithm (RFC 7518 §3.1: ``RS256`` is mandatory, ``ES256`` is offered), keys in three states:

``next``
    published, never signs: relying parties cache the JWK Set, so a key must be in it for a while
    before the first token signed with it reaches them (OIDC Core §10.1, "signing key rotation").
``active``
    the one key that signs for its algorithm.
``retired``
    no longer signs, stays published until ``retire_until``, when every token it signed has
    expired, and is then dropped.

:meth:`KeyRing.rotate` moves every algorithm one step along that cycle. A key's ``kid`` is its
RFC 7638 JWK thumbprint (SHA-256), so two replicas that load the same file agree on it.

Persistence is a JSON file of private JWKs (RFC 7517 §4, RFC 7518 §6) plus state metadata. In
production it is a read-only Kubernetes Secret mounted into the pod; the embedded demo may create
it on first start. Nothing here knows about HTTP or Flask, and no private key member ever reaches
a ``repr``, an exception message or a log line.

A running gateway follows its key file (``load_key_ring(path, watch_every=...)``): at most once
per interval, on the next use of the ring, it stats the file and, only when the file changed,
loads and validates it and swaps the new ring in. A file that is unreadable or invalid is logged
and the ring in use stays. Rotation is still publish-before-sign while the replicas pick up a
rotated file one by one: the file's new active key was published as ``next`` by the previous file
(so every replica and every relying party's cache already has it), and the old active key stays
published as ``retired``, so a replica that has not reloaded yet signs with a key the reloaded
ones still publish and verify.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

from joserfc import jws, jwt
from joserfc.errors import ExceededSizeError, JoseError
from joserfc.jwk import ECKey, RSAKey
from joserfc.util import urlsafe_b64decode

logger = logging.getLogger(__name__)

KeyState = Literal["next", "active", "retired"]
KEY_STATES: Final = cast(tuple[KeyState, ...], get_args(KeyState))

#: The algorithms the ring signs with and the only ones :meth:`KeyRing.verify` accepts
#: (RFC 7518 §3.1). ``none`` and the HMAC family are never accepted: a public key must not be
#: usable as an HMAC secret (RFC 8725 §2.1, §3.1).
SIGNING_ALGORITHMS: Final = ("RS256", "ES256")
MANDATORY_ALGORITHM: Final = "RS256"  # OIDC Core §15.1
#: RSA modulus sizes the ring generates and loads (RFC 7518 §3.3 requires at least 2048).
RSA_KEY_SIZES: Final = (2048, 3072)
_EC_CURVE: Final = "P-256"  # RFC 7518 §3.4: ES256 uses P-256 and SHA-256

#: Header parameters that carry or point to a verification key (RFC 7515 §4.1.2-§4.1.6). A token
#: must never choose its own key: the ring verifies with the keys it published, selected by kid.
_KEY_CARRYING_HEADERS: Final = frozenset({"jwk", "jku", "x5u", "x5c"})
_ACCEPTED_HEADERS: Final = frozenset({"alg", "kid", "typ"})

FILE_FORMAT_VERSION: Final = 1
#: How often, in seconds, a gateway looks at its key file for a new version. A mounted Secret is
#: refreshed in the pod by the kubelet, which adds up to about a minute after the Secret changes.
KEY_FILE_CHECK_INTERVAL: Final = 10.0

JoseKey = RSAKey | ECKey
PublicJWK = dict[str, str]
JWKSet = dict[str, list[PublicJWK]]


class KeyRingError(Exception):
    """Base class: the key ring cannot do what was asked."""


class InvalidKeyRingError(KeyRingError, ValueError):
    """A key ring document (or a set of keys) breaks the ring's rules."""


class KeyFileError(KeyRingError):
    """The key file is missing, unreadable or invalid. The message names the file."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"signing key file {path}: {reason}")


class KeyFileMissingError(KeyFileError):
    """There is no key file at the path."""


class TokenRejectedError(KeyRingError):
    """:meth:`KeyRing.verify` refused a token; ``reason`` says why (safe to log)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"token rejected: {reason}")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _require_aware(value: datetime, name: str) -> datetime:
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
            jose_key = ECKey.generate_key(_EC_CURVE)
        else:
            raise ValueError(
                f"unsupported signing algorithm {alg!r}; use one of {SIGNING_ALGORITHMS}"
            )
        return cls._from_jose_key(jose_key, alg=alg, state=state, created_at=now)

    @classmethod
    def _from_jose_key(
        cls,
        jose_key: JoseKey,
        *,
        alg: str,
        state: KeyState,
        created_at: datetime,
        retire_until: datetime | None = None,
    ) -> SigningKey:
        return cls(
            kid=jose_key.thumbprint(),
            alg=alg,
            state=state,
            created_at=_require_aware(created_at, "created_at"),
            retire_until=None
            if retire_until is None
            else _require_aware(retire_until, "retire_until"),
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

    def _private_jwk(self) -> dict[str, Any]:
        members = dict(self.jose_key.as_dict(private=True))
        members.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return members


_STATE_ORDER: Final = {"active": 0, "next": 1, "retired": 2}


def _sort_key(key: SigningKey) -> tuple[int, int, float]:
    alg_rank = SIGNING_ALGORITHMS.index(key.alg)
    return (alg_rank, _STATE_ORDER[key.state], -key.created_at.timestamp())


@dataclass(frozen=True)
class _Snapshot:
    """An immutable view of the ring: rotation and reloading swap the whole snapshot in one
    assignment, so a concurrent ``sign`` sees either the old ring or the new one, never a mix."""

    keys: tuple[SigningKey, ...]
    by_kid: Mapping[str, SigningKey]
    active: Mapping[str, SigningKey]

    @classmethod
    def of(cls, keys: Iterable[SigningKey]) -> _Snapshot:
        ordered = tuple(sorted(keys, key=_sort_key))
        _check_rules(ordered)
        return cls(
            keys=ordered,
            by_kid={key.kid: key for key in ordered},
            active={key.alg: key for key in ordered if key.state == "active"},
        )


def _check_rules(keys: tuple[SigningKey, ...]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key.kid in seen:
            raise InvalidKeyRingError(f"key {key.kid} appears more than once")
        seen.add(key.kid)
    algorithms = {key.alg for key in keys}
    if MANDATORY_ALGORITHM not in algorithms:
        raise InvalidKeyRingError(f"the ring has no {MANDATORY_ALGORITHM} key (it is mandatory)")
    for alg in sorted(algorithms):
        states = [key.state for key in keys if key.alg == alg]
        if states.count("active") != 1:
            raise InvalidKeyRingError(
                f"{alg} needs exactly one active key, found {states.count('active')}"
            )
        if states.count("next") > 1:
            raise InvalidKeyRingError(f"{alg} has {states.count('next')} next keys, at most 1")


def _describe(snapshot: _Snapshot) -> str:
    return ", ".join(str(key) for key in snapshot.keys)


#: What identifies one version of the key file: (st_dev, st_ino, st_mtime_ns, st_size,
#: st_ctime_ns) of the file the path resolves to. Kubernetes updates a mounted Secret by pointing
#: its ``..data`` symlink at a new directory, so a new version is a new inode even when the size
#: and mtime are the same; ctime also catches a ``chmod`` that makes an unreadable file readable.
_FileVersion = tuple[int, int, int, int, int]


def _file_version(status: os.stat_result) -> _FileVersion:
    return (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size, status.st_ctime_ns)


class _KeyFileWatch:
    """The file a ring was loaded from and what the ring knows about it. Changed only by the
    thread holding the ring's swap lock; ``due`` is also read without it (one float)."""

    __slots__ = ("clock", "due", "every", "loaded", "path", "problem", "refused")

    def __init__(
        self, path: Path, loaded: _FileVersion, every: float, clock: Callable[[], float]
    ) -> None:
        if not (math.isfinite(every) and every > 0):
            raise ValueError(f"the key file check interval must be positive, not {every!r}")
        self.path = path
        self.every = every
        self.clock = clock
        self.due = clock() + every
        #: the version the ring's snapshot was loaded from
        self.loaded = loaded
        #: a version that was read and refused: not read again
        self.refused: _FileVersion | None = None
        #: the last "cannot stat or read" error logged, so that one problem is logged once
        self.problem: str | None = None


# One registry per algorithm, built once: it restricts joserfc to exactly that algorithm.
_REGISTRIES: Final = {alg: jws.JWSRegistry(algorithms=[alg]) for alg in SIGNING_ALGORITHMS}


class KeyRing:
    """The gateway's signing keys, with publish-before-sign rotation (OIDC Core §10.1).

    A ring is safe to share between threads: ``sign``/``verify``/``jwks`` read one immutable
    snapshot, and ``rotate`` builds the next snapshot under a lock and swaps it in.

    A ring loaded with ``load_key_ring(path, watch_every=...)`` also follows its file: when a use
    of the ring finds the interval elapsed, it stats the file and, if that changed, loads it and
    swaps the new snapshot in the same way (see :meth:`_look_at_file`).
    """

    def __init__(self, keys: Iterable[SigningKey]) -> None:
        self._snapshot = _Snapshot.of(keys)
        # Held to build and swap in a new snapshot, by rotate (waiting) or a reload (not waiting).
        self._swap_lock = threading.Lock()
        self._watch: _KeyFileWatch | None = None

    @classmethod
    def generate(
        cls,
        *,
        now: datetime,
        algorithms: Iterable[str] = SIGNING_ALGORITHMS,
        rsa_key_size: int = 2048,
    ) -> KeyRing:
        """A fresh ring: one active and one next key per algorithm."""
        keys: list[SigningKey] = []
        for alg in algorithms:
            for state in ("active", "next"):
                keys.append(
                    SigningKey.generate(alg, now=now, state=state, rsa_key_size=rsa_key_size)
                )
        ring = cls(keys)
        logger.info("generated signing key ring: %s", ring.describe())
        return ring

    def _current(self) -> _Snapshot:
        """The snapshot to use. On a watched ring whose check is due, look at the file first;
        when it is not due this costs one clock call and a comparison (it runs for every
        signature)."""
        watch = self._watch
        if watch is not None and watch.clock() >= watch.due:
            self._look_at_file(watch)
        return self._snapshot

    def _look_at_file(self, watch: _KeyFileWatch) -> None:
        """Reload the key file if it changed since the ring last looked.

        One thread looks at a time; the others do not wait, they keep using the current
        snapshot. The next check is scheduled before the file is touched, so a slow or failing
        file costs one look per interval, not one per request. A new version is validated like
        the file at start (:func:`loads_key_ring`, :func:`_check_rules`) and must keep an
        active key for every algorithm the ring signs with now; otherwise it is logged once at
        ERROR and the ring in use stays, until a later version of the file is valid.
        """
        if not self._swap_lock.acquire(blocking=False):
            return
        try:
            now = watch.clock()
            if now < watch.due:
                return  # another thread has just looked
            watch.due = now + watch.every
            self._reload_if_changed(watch)
        finally:
            self._swap_lock.release()

    def _reload_if_changed(self, watch: _KeyFileWatch) -> None:
        path = watch.path
        try:
            # stat follows symlinks: a mounted Secret's file is a symlink through ``..data``.
            version = _file_version(path.stat())
        except OSError as error:
            self._report_unreadable(watch, _key_file_error(path, error))
            return
        if version == watch.loaded:
            if watch.problem is not None:
                logger.info("signing key file %s is readable again and unchanged", path)
                watch.problem = None
            return
        if version == watch.refused:
            return
        try:
            data, version = _read_key_file(path)
        except KeyFileError as error:
            self._report_unreadable(watch, error)
            return
        if version == watch.loaded:
            return  # changed back between the stat and the read
        old = self._snapshot
        try:
            new = _parse_key_file(path, data)._snapshot
            _check_succession(path, old, new)
        except Exception as error:
            # Whatever a file holds, it must not fail the request that happened to look at it
            # (json.loads raises RecursionError on deep nesting). A KeyFileError says what is
            # wrong without quoting key material; any other message might, so only its type.
            if not isinstance(error, KeyFileError):
                error = KeyFileError(path, f"cannot be loaded ({type(error).__name__})")
            logger.error("%s; still signing with %s", error, _describe(old))
            watch.refused = version
            watch.problem = None
            return
        self._snapshot = new
        watch.loaded = version
        watch.refused = None
        watch.problem = None
        logger.info(
            "reloaded signing key ring from %s: %s (was: %s)", path, _describe(new), _describe(old)
        )

    @staticmethod
    def _report_unreadable(watch: _KeyFileWatch, error: KeyFileError) -> None:
        # Tried again at every check (it may pass), logged once while it stays the same.
        if str(error) != watch.problem:
            logger.error("%s; still signing with the keys loaded before", error)
            watch.problem = str(error)

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """Every key held, published or not, ordered by algorithm then state."""
        return self._current().keys

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms the ring can sign with, ``RS256`` first."""
        return tuple(self._current().active)

    def active_key(self, alg: str = MANDATORY_ALGORITHM) -> SigningKey:
        return _active_key(self._current(), alg)

    def describe(self) -> str:
        """One line naming every key by kid, algorithm and state; safe for logs."""
        return _describe(self._current())

    def __repr__(self) -> str:
        return f"KeyRing({_describe(self._snapshot)})"

    def jwks(self, now: datetime | None = None) -> JWKSet:
        """The JWK Set to publish (RFC 7517 §5): the public key of every next, active and
        not yet expired retired key, each with ``use``, ``alg`` and ``kid``."""
        moment = utc_now() if now is None else _require_aware(now, "now")
        snapshot = self._current()
        return {"keys": [key.public_jwk() for key in snapshot.keys if key.is_published(moment)]}

    def sign(
        self, claims: Mapping[str, Any], alg: str = MANDATORY_ALGORITHM, typ: str | None = None
    ) -> str:
        """A compact JWS over ``claims`` (a JWT, RFC 7519) signed by the active key of ``alg``,
        whose kid goes into the header (RFC 7515 §4.1.4). ``typ`` is set only when given
        (e.g. ``logout+jwt``)."""
        key = _active_key(self._current(), alg)
        header: dict[str, Any] = {"alg": alg, "kid": key.kid}
        if typ is not None:
            header["typ"] = typ
        return jwt.encode(
            header, dict(claims), key.jose_key, registry=_REGISTRIES[alg], default_type=None
        )

    def verify(
        self, token: str, *, now: datetime | None = None, typ: str | None = None
    ) -> dict[str, Any]:
        """Check the signature of a compact JWS made by this ring and return its claims.

        The key is chosen by ``kid`` among the keys published at ``now`` (RFC 7515 §4.1.4), and
        the header ``alg`` must be that key's algorithm, from the allow-list ``RS256``/``ES256``
        (RFC 8725 §3.1). ``none``, HMAC algorithms and headers that carry their own key (``jwk``,
        ``jku``, ``x5u``, ``x5c``) are refused. When ``typ`` is given the header must match it.

        Only the signature is checked: ``exp``, ``iss``, ``aud`` are the caller's business, since
        an ``id_token_hint`` may legitimately have expired (OIDC RP-Initiated Logout §2).
        """
        moment = utc_now() if now is None else _require_aware(now, "now")
        snapshot = self._current()
        try:
            # The default registry caps the header at 512 bytes, the payload and signature too.
            compact = jws.extract_compact(token.encode("ascii"))
        except ExceededSizeError:
            raise TokenRejectedError("header or token too large") from None
        except (JoseError, ValueError, UnicodeError):
            raise TokenRejectedError("not a compact JWS") from None
        header = compact.headers()
        alg = header.get("alg")
        if alg not in SIGNING_ALGORITHMS:
            raise TokenRejectedError(f"algorithm {str(alg)[:16]!r} is not accepted")
        carried = _KEY_CARRYING_HEADERS & header.keys()
        if carried:
            raise TokenRejectedError(f"header carries its own key ({', '.join(sorted(carried))})")
        unexpected = header.keys() - _ACCEPTED_HEADERS
        if unexpected:
            raise TokenRejectedError(f"unexpected header parameters {sorted(unexpected)[:4]}")
        if typ is not None and header.get("typ") != typ:
            raise TokenRejectedError(f"typ is not {typ!r}")
        kid = header.get("kid")
        key = snapshot.by_kid.get(kid) if isinstance(kid, str) else None
        if key is None or not key.is_published(moment):
            raise TokenRejectedError("unknown or withdrawn kid")
        if key.alg != alg:
            raise TokenRejectedError(f"kid {key.kid} is a {key.alg} key, not {alg}")
        try:
            valid = jws.validate_compact(compact, key.jose_key, registry=_REGISTRIES[alg])
        except (JoseError, ValueError):
            valid = False
        if not valid:
            raise TokenRejectedError("bad signature")
        try:
            claims = json.loads(compact.payload)
        except ValueError:
            raise TokenRejectedError("payload is not JSON") from None
        if not isinstance(claims, dict):
            raise TokenRejectedError("payload is not a JSON object")
        return claims

    def rotate(self, now: datetime, max_token_lifetime: timedelta) -> None:
        """One step of signing key rotation (OIDC Core §10.1), for every algorithm:

        - retired keys whose ``retire_until`` has passed are dropped;
        - the active key retires, published until ``now + max_token_lifetime`` (every token it
          signed has expired by then);
        - the next key, already published, becomes active;
        - a fresh next key is generated and published.

        An algorithm without a next key (a hand-made file) only gets one: a key is never made
        active before it has been published.

        On a watched ring this changes the ring in memory only, until the file changes: rotate
        the file (``tongxing keys rotate``) to rotate the keys of every replica.
        """
        moment = _require_aware(now, "now")
        if max_token_lifetime <= timedelta(0):
            raise ValueError("max_token_lifetime must be positive")
        retire_until = moment + max_token_lifetime
        with self._swap_lock:
            old = self._snapshot
            keys: list[SigningKey] = []
            for alg in old.active:
                own = [key for key in old.keys if key.alg == alg]
                upcoming = next((key for key in own if key.state == "next"), None)
                rsa_size = _rsa_key_size(old.active[alg])
                for key in own:
                    if key.state == "retired" and not key.is_published(moment):
                        logger.info("dropped %s (retired until %s)", key, key.retire_until)
                    elif key.state == "retired":
                        keys.append(key)
                    elif upcoming is None:
                        keys.append(key)  # active stays active; see the docstring
                    elif key.state == "active":
                        keys.append(replace(key, state="retired", retire_until=retire_until))
                    else:
                        keys.append(replace(key, state="active"))
                keys.append(
                    SigningKey.generate(alg, now=moment, state="next", rsa_key_size=rsa_size)
                )
            self._snapshot = _Snapshot.of(keys)
        logger.info("rotated signing keys: %s", _describe(self._snapshot))


def _active_key(snapshot: _Snapshot, alg: str) -> SigningKey:
    try:
        return snapshot.active[alg]
    except KeyError:
        raise KeyRingError(f"the key ring has no active {alg} key") from None


def _check_succession(path: Path, old: _Snapshot, new: _Snapshot) -> None:
    """Refuse a reloaded ring that cannot sign for an algorithm the running ring signs with
    (portals may have asked for it), and warn when the new file breaks publish-before-sign."""
    dropped = [alg for alg in old.active if alg not in new.active]
    if dropped:
        raise KeyFileError(
            path,
            f"is refused: it has no active {', '.join(dropped)} key, which the running ring "
            "signs with (to stop offering an algorithm, restart the gateway with the new file)",
        )
    for alg, key in new.active.items():
        if key.kid not in old.by_kid:
            # A replaced (say, compromised) key; relying parties fetch the JWK Set again when
            # they meet an unknown kid, but tokens may be refused until they do.
            logger.warning(
                "signing key file %s: %s signs without having been published first "
                "(OIDC Core §10.1)",
                path,
                key,
            )
        previous = old.active.get(alg)
        if previous is not None and previous.kid not in new.by_kid:
            logger.warning(
                "signing key file %s: %s, which signed until now, is no longer published; "
                "tokens it signed no longer verify",
                path,
                previous,
            )


def _rsa_key_size(key: SigningKey) -> int:
    # New RSA keys keep the size the operator chose for the ring (2048 or 3072).
    if isinstance(key.jose_key, RSAKey):
        return int(key.jose_key.public_key.key_size)
    return RSA_KEY_SIZES[0]


# --- Persistence -------------------------------------------------------------------------------


def dumps_key_ring(ring: KeyRing) -> str:
    """The ring as JSON, PRIVATE keys included: write it only to a 0600 file or a Secret."""
    document = {
        "version": FILE_FORMAT_VERSION,
        "keys": [
            {
                "state": key.state,
                "created_at": key.created_at.isoformat(),
                "retire_until": None if key.retire_until is None else key.retire_until.isoformat(),
                "jwk": key._private_jwk(),
            }
            for key in ring.keys
        ],
    }
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
    return KeyRing(_parse_entry(index, entry) for index, entry in enumerate(entries))


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
    key = SigningKey._from_jose_key(
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
    if isinstance(jose_key, ECKey) and jose_key.curve_name != _EC_CURVE:
        raise InvalidKeyRingError(f"{where}: ES256 needs curve {_EC_CURVE}")
    return jose_key


def _modulus_bits(value: object) -> int:
    if not isinstance(value, str):
        return 0
    try:
        return int.from_bytes(urlsafe_b64decode(value.encode("ascii")), "big").bit_length()
    except (ValueError, UnicodeError):
        return 0


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


def _read_key_file(path: Path) -> tuple[bytes, _FileVersion]:
    """The file's content and the version it was read from (one open file: no race)."""
    try:
        with path.open("rb") as stream:
            version = _file_version(os.fstat(stream.fileno()))
            return stream.read(), version
    except OSError as error:
        raise _key_file_error(path, error) from None


def _key_file_error(path: Path, error: OSError) -> KeyFileError:
    if isinstance(error, FileNotFoundError):
        return KeyFileMissingError(path, "does not exist")
    return KeyFileError(path, f"cannot be read ({error.strerror})")


def _parse_key_file(path: Path, data: bytes) -> KeyRing:
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

    With ``watch_every`` (seconds, e.g. :data:`KEY_FILE_CHECK_INTERVAL`) the ring follows the
    file: the first use of the ring after each interval (``clock``, monotonic) stats the file,
    and a changed file is loaded and swapped in when it is valid (see :class:`KeyRing`).
    """
    path = Path(path)
    data, version = _read_key_file(path)
    ring = _parse_key_file(path, data)
    if watch_every is not None:
        ring._watch = _KeyFileWatch(path, version, watch_every, clock)
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
