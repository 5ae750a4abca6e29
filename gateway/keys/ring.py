"""The signing key ring: the keys that sign and verify the gateway's tokens, and the JWK Set.

Every token the gateway issues is a JWS (RFC 7515) signed with the active key of its algorithm,
and the public halves of the published keys are served as a JWK Set (RFC 7517 §5) at the
``jwks_uri``. Which key signs and which are published follow the rotation rules of
:mod:`gateway.keys.rotation` (OIDC Core §10.1); :meth:`KeyRing.rotate` applies one step of them.

A ring may follow a source of newer keys (:meth:`KeyRing.follow`): a running gateway's ring
follows its key file (:mod:`gateway.keys.watch`). The ring itself knows nothing of files, HTTP
or Flask.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from joserfc import jws, jwt
from joserfc.errors import ExceededSizeError, JoseError

from gateway.clock import utc_now
from gateway.keys.errors import InvalidKeyRingError, KeyRingError, TokenRejectedError
from gateway.keys.history import HistoricalKey, merged
from gateway.keys.rotation import check_rules, ordered, rotate_keys, signing_keys
from gateway.keys.signing_key import (
    MANDATORY_ALGORITHM,
    SIGNING_ALGORITHMS,
    PublicJWK,
    SigningKey,
    describe_keys,
    require_aware,
)

# The package's logger, one name for operators to filter on (as before the package was split).
logger = logging.getLogger(__package__)

JWKSet = dict[str, list[PublicJWK]]

#: Header parameters that carry or point to a verification key (RFC 7515 §4.1.2-§4.1.6). A token
#: must never choose its own key: the ring verifies with the keys it published, selected by kid.
_KEY_CARRYING_HEADERS: Final = frozenset({"jwk", "jku", "x5u", "x5c"})
_ACCEPTED_HEADERS: Final = frozenset({"alg", "kid", "typ"})

# One registry per algorithm, built once: it restricts joserfc to exactly that algorithm.
_REGISTRIES: Final = {alg: jws.JWSRegistry(algorithms=[alg]) for alg in SIGNING_ALGORITHMS}


class KeyRingFollower(Protocol):
    """A source of newer keys that a ring follows (see :meth:`KeyRing.follow`)."""

    def is_due(self) -> bool:
        """Whether it is time to look for newer keys; called on every use of the ring, so it
        must be cheap."""
        ...

    def look(self, keys: tuple[SigningKey, ...]) -> KeyRing | None:
        """Look for newer keys; ``keys`` are the ring's now. Return a ring whose keys replace
        them, or ``None`` to keep them. Called by one thread at a time, while the others go on
        using the current keys."""
        ...


@dataclass(frozen=True)
class _Snapshot:
    """An immutable view of the ring: rotation and reloading swap the whole snapshot in one
    assignment, so a concurrent ``sign`` sees either the old ring or the new one, never a mix."""

    keys: tuple[SigningKey, ...]
    by_kid: Mapping[str, SigningKey]
    active: Mapping[str, SigningKey]
    history: tuple[HistoricalKey, ...] = ()

    @classmethod
    def of(cls, keys: Iterable[SigningKey], history: Iterable[HistoricalKey] = ()) -> _Snapshot:
        ordered_keys = ordered(keys)
        check_rules(ordered_keys)
        held = {key.kid for key in ordered_keys}
        kept = tuple(history)
        if any(entry.kid in held for entry in kept):
            raise InvalidKeyRingError("a key of the history is still held by the ring")
        return cls(
            keys=ordered_keys,
            by_kid={key.kid: key for key in ordered_keys},
            active=signing_keys(ordered_keys),
            history=kept,
        )


class KeyRing:
    """The gateway's signing keys, with publish-before-sign rotation (OIDC Core §10.1).

    A ring is safe to share between threads: ``sign``/``verify``/``jwks`` read one immutable
    snapshot, and ``rotate`` builds the next snapshot under a lock and swaps it in.

    A ring that follows a source of keys (``load_key_ring(path, watch_every=...)`` makes it
    follow its file) lets the source look for newer keys when a use of the ring finds it due,
    and swaps their snapshot in the same way (see :meth:`_let_follow`).
    """

    def __init__(self, keys: Iterable[SigningKey], history: Iterable[HistoricalKey] = ()) -> None:
        self._snapshot = _Snapshot.of(keys, history)
        # Held to build and swap in a new snapshot, by rotate (waiting) or a follower (not waiting).
        self._swap_lock = threading.Lock()
        self._follower: KeyRingFollower | None = None

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

    def follow(self, follower: KeyRingFollower) -> None:
        """From now on, let ``follower`` replace the ring's keys whenever it is due."""
        self._follower = follower

    def _current(self) -> _Snapshot:
        """The snapshot to use. On a followed ring whose follower is due, let it look first;
        when it is not due this costs one cheap call (it runs for every signature)."""
        follower = self._follower
        if follower is not None and follower.is_due():
            self._let_follow(follower)
        return self._snapshot

    def _let_follow(self, follower: KeyRingFollower) -> None:
        """Let ``follower`` look for newer keys and swap them in.

        One thread looks at a time; the others do not wait, they keep using the current
        snapshot. A ring the follower returns was validated when it was built (the rules of
        :func:`~gateway.keys.rotation.check_rules`), so its snapshot is swapped in as it is.
        """
        if not self._swap_lock.acquire(blocking=False):
            return
        try:
            replacement = follower.look(self._snapshot.keys)
            if replacement is not None:
                self._snapshot = replacement._snapshot
        finally:
            self._swap_lock.release()

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """Every key held, published or not, ordered by algorithm then state."""
        return self._current().keys

    @property
    def history(self) -> tuple[HistoricalKey, ...]:
        """The public halves of the keys rotations dropped (:mod:`gateway.keys.history`),
        newest first."""
        return self._current().history

    def historical_keys(self) -> list[dict[str, Any]]:
        """The keys no longer in use, as OpenID Federation 1.0 §8.7.2 lists them: the retired
        keys still held (``exp``: the end of their retention), then the history (with
        ``revoked`` when known); each with ``kid``, ``iat`` and ``exp``."""
        snapshot = self._current()
        retired = [
            HistoricalKey.of(key, key.retire_until)
            for key in snapshot.keys
            if key.state == "retired" and key.retire_until is not None
        ]
        return [entry.historical_jwk() for entry in merged(retired, snapshot.history)]

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms the ring can sign with, ``RS256`` first."""
        return tuple(self._current().active)

    def active_key(self, alg: str = MANDATORY_ALGORITHM) -> SigningKey:
        return _active_key(self._current(), alg)

    def describe(self) -> str:
        """One line naming every key by kid, algorithm and state; safe for logs."""
        return describe_keys(self._current().keys)

    def __repr__(self) -> str:
        return f"KeyRing({describe_keys(self._snapshot.keys)})"

    def jwks(self, now: datetime | None = None) -> JWKSet:
        """The JWK Set to publish (RFC 7517 §5): the public key of every next, active and
        not yet expired retired key, each with ``use``, ``alg`` and ``kid``."""
        moment = utc_now() if now is None else require_aware(now, "now")
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
        moment = utc_now() if now is None else require_aware(now, "now")
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
        """One step of signing key rotation (OIDC Core §10.1) for every algorithm, as
        :func:`~gateway.keys.rotation.rotate_keys` describes it: retired keys past
        ``retire_until`` leave, the active key retires, the published next key signs, and a
        fresh next key is published.

        On a followed ring this changes the ring in memory only, until the file changes: rotate
        the file (``tongxing keys rotate``) to rotate the keys of every replica.
        """
        with self._swap_lock:
            before = self._snapshot
            rotated = rotate_keys(before.keys, now, max_token_lifetime)
            kept = {key.kid for key in rotated}
            # §8.7 (OpenID Federation 1.0): a dropped key's public half stays in the history.
            dropped = [
                HistoricalKey.of(key, key.retire_until)
                for key in before.keys
                if key.kid not in kept and key.retire_until is not None
            ]
            self._snapshot = _Snapshot.of(rotated, merged(dropped, before.history))
        logger.info("rotated signing keys: %s", describe_keys(self._snapshot.keys))

    def revoke(self, kid: str, now: datetime, reason: str | None = None) -> HistoricalKey:
        """Revoke the key ``kid`` (OpenID Federation 1.0 §8.7.2, ``revoked``; ``reason`` one of
        §8.7.3): a retired key leaves the ring at once (no longer published, no longer
        verifying) for the history; a historical key is marked. An active or next key is
        refused (:class:`KeyRingError`): rotate it out first."""
        moment = require_aware(now, "now")
        with self._swap_lock:
            snapshot = self._snapshot
            held = snapshot.by_kid.get(kid)
            if held is not None and (held.state != "retired" or held.retire_until is None):
                raise KeyRingError(f"key {kid} is {held.state}: rotate it out before revoking it")
            history = list(snapshot.history)
            if held is not None and held.retire_until is not None:
                history.insert(0, HistoricalKey.of(held, min(held.retire_until, moment)))
            index = next((i for i, entry in enumerate(history) if entry.kid == kid), None)
            if index is None:
                raise KeyRingError(f"no retired or historical key {kid[:64]}")
            entry = history[index]
            # Revoked once, revoked for good: a second revocation keeps the first moment.
            revoked = replace(
                entry,
                revoked_at=entry.revoked_at or moment,
                reason=reason or entry.reason,
            )
            history[index] = revoked
            self._snapshot = _Snapshot.of([key for key in snapshot.keys if key.kid != kid], history)
        logger.info("revoked key %s (%s)", kid, reason or "no reason given")
        return revoked


def _active_key(snapshot: _Snapshot, alg: str) -> SigningKey:
    try:
        return snapshot.active[alg]
    except KeyError:
        raise KeyRingError(f"the key ring has no active {alg} key") from None
