"""The rotation rules: which key signs, which are published, and how a key moves between states.

Relying parties cache the gateway's JWK Set (RFC 7517 §5), so a key must be published for a while
before the first token signed with it reaches them, and must stay published until the last token
it signed has expired (OIDC Core §10.1, "Rotation of Asymmetric Signing Keys"). Per algorithm
(RFC 7518 §3.1: ``RS256`` is mandatory, ``ES256`` is offered) a ring therefore holds keys in
three states:

``next``
    published, never signs (pre-publication).
``active``
    the one key that signs for its algorithm.
``retired``
    no longer signs, stays published until ``retire_until``, when every token it signed has
    expired, and is then dropped (retention).

:func:`check_rules` says whether a set of keys is a ring at all, :func:`rotate_keys` moves every
algorithm one step along the cycle, and :func:`succession` says what changes when one set of keys
replaces another (a rotated key file). Pure functions over :class:`SigningKey` values: no lock,
no file, no clock of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from joserfc.jwk import RSAKey

from gateway.keys.errors import InvalidKeyRingError
from gateway.keys.signing_key import (
    MANDATORY_ALGORITHM,
    RSA_KEY_SIZES,
    SIGNING_ALGORITHMS,
    SigningKey,
    require_aware,
)

# The package's logger, one name for operators to filter on (as before the package was split).
logger = logging.getLogger(__package__)

_STATE_ORDER: Final = {"active": 0, "next": 1, "retired": 2}


def _sort_key(key: SigningKey) -> tuple[int, int, float]:
    alg_rank = SIGNING_ALGORITHMS.index(key.alg)
    return (alg_rank, _STATE_ORDER[key.state], -key.created_at.timestamp())


def ordered(keys: Iterable[SigningKey]) -> tuple[SigningKey, ...]:
    """The ring's order: by algorithm (``RS256`` first), then active, next, retired, newest
    first. The JWK Set and every log line list keys in this order."""
    return tuple(sorted(keys, key=_sort_key))


def signing_keys(keys: Iterable[SigningKey]) -> dict[str, SigningKey]:
    """The key that signs for each algorithm (its active key), in the order of ``keys``."""
    return {key.alg: key for key in keys if key.state == "active"}


def check_rules(keys: Sequence[SigningKey]) -> None:
    """Refuse a set of keys that is not a ring (:class:`InvalidKeyRingError` says why).

    Every kid once; an ``RS256`` key (OIDC Core §15.1); per algorithm exactly one active key, so
    which key signs is never a choice, and at most one next key.
    """
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


def rotate_keys(
    keys: Iterable[SigningKey], now: datetime, max_token_lifetime: timedelta
) -> tuple[SigningKey, ...]:
    """One step of signing key rotation (OIDC Core §10.1), for every algorithm:

    - retired keys whose ``retire_until`` has passed are dropped;
    - the active key retires, published until ``now + max_token_lifetime`` (every token it
      signed has expired by then);
    - the next key, already published, becomes active;
    - a fresh next key is generated and published.

    An algorithm without a next key (a hand-made file) only gets one: a key is never made
    active before it has been published. New RSA keys keep the size of the active one.
    """
    moment = require_aware(now, "now")
    if max_token_lifetime <= timedelta(0):
        raise ValueError("max_token_lifetime must be positive")
    retire_until = moment + max_token_lifetime
    current = ordered(keys)
    rotated: list[SigningKey] = []
    for alg, active in signing_keys(current).items():
        own = [key for key in current if key.alg == alg]
        upcoming = next((key for key in own if key.state == "next"), None)
        for key in own:
            if key.state == "retired" and not key.is_published(moment):
                logger.info("dropped %s (retired until %s)", key, key.retire_until)
            elif key.state == "retired":
                rotated.append(key)
            elif upcoming is None:
                rotated.append(key)  # active stays active; see the docstring
            elif key.state == "active":
                rotated.append(replace(key, state="retired", retire_until=retire_until))
            else:
                rotated.append(replace(key, state="active"))
        rotated.append(
            SigningKey.generate(alg, now=moment, state="next", rsa_key_size=_rsa_key_size(active))
        )
    return ordered(rotated)


def _rsa_key_size(key: SigningKey) -> int:
    # New RSA keys keep the size the operator chose for the ring (2048 or 3072).
    if isinstance(key.jose_key, RSAKey):
        return int(key.jose_key.public_key.key_size)
    return RSA_KEY_SIZES[0]


@dataclass(frozen=True)
class Succession:
    """What changes for relying parties when ``new`` keys replace ``old`` ones.

    ``dropped`` are the algorithms ``old`` signs with and ``new`` cannot sign with (portals may
    have asked for them). ``unannounced`` are keys that sign in ``new`` but were not published
    in ``old``, which breaks publish-before-sign: relying parties fetch the JWK Set again when
    they meet an unknown kid, but may refuse tokens until they do. ``withdrawn`` are keys that
    signed in ``old`` and are not published in ``new``: the tokens they signed stop verifying.
    """

    dropped: tuple[str, ...] = ()
    unannounced: tuple[SigningKey, ...] = ()
    withdrawn: tuple[SigningKey, ...] = ()


def succession(old: Sequence[SigningKey], new: Sequence[SigningKey]) -> Succession:
    """Compare two rings' keys (each as :func:`ordered` lists them), ``new`` taking over."""
    old_signers, new_signers = signing_keys(old), signing_keys(new)
    old_kids, new_kids = {key.kid for key in old}, {key.kid for key in new}
    return Succession(
        dropped=tuple(alg for alg in old_signers if alg not in new_signers),
        unannounced=tuple(key for key in new_signers.values() if key.kid not in old_kids),
        withdrawn=tuple(
            key
            for alg, key in old_signers.items()
            if alg in new_signers and key.kid not in new_kids
        ),
    )
