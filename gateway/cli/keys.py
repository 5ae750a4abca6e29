"""``tongxing keys show|generate|rotate|revoke``: the signing key ring file (kids and states
only). ``revoke`` marks a retired or historical key revoked (OpenID Federation 1.0 §8.7.2)."""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from gateway.cli.base import (
    EXIT_USAGE,
    CliError,
    Commands,
    env_name,
    positive_seconds,
    print_table,
)
from gateway.clock import utc_now
from gateway.keys import (
    KEY_FILE_CHECK_INTERVAL,
    REVOCATION_REASONS,
    RSA_KEY_SIZES,
    KeyFileError,
    KeyRing,
    KeyRingError,
    SigningKey,
    load_key_ring,
    save_key_ring,
)

#: Long enough for every token the ring signs (ID and access tokens: minutes) and for an ID token
#: that comes back as ``id_token_hint`` at logout during the default 8-hour SSO session.
DEFAULT_MAX_TOKEN_LIFETIME = 8 * 3600


def _keys_file(args: argparse.Namespace) -> Path:
    value = args.file or os.environ.get(env_name("keys_file"))
    if not value:
        raise CliError(f"give the key file with --file (or {env_name('keys_file')})", EXIT_USAGE)
    return Path(value)


def _load_ring(path: Path) -> KeyRing:
    try:
        return load_key_ring(path)
    except KeyFileError as error:
        raise CliError(str(error)) from None


def _key_rows(ring: KeyRing) -> list[dict[str, str | None]]:
    def when(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat(timespec="seconds")

    rows = [_key_row(key, when) for key in ring.keys]
    # §8.7: the keys rotations dropped, public halves only; "retire until" is their exp.
    rows.extend(
        {
            "alg": entry.jwk.get("alg", ""),
            "kid": entry.kid,
            "state": "revoked" if entry.revoked_at is not None else "history",
            "created_at": when(entry.created_at),
            "retire_until": when(entry.expires_at),
        }
        for entry in ring.history
    )
    return rows


def _key_row(
    key: SigningKey, when: Callable[[datetime | None], str | None]
) -> dict[str, str | None]:
    return {
        "alg": key.alg,
        "kid": key.kid,
        "state": key.state,
        "created_at": when(key.created_at),
        "retire_until": when(key.retire_until),
    }


def _print_ring(ring: KeyRing, as_json: bool) -> None:
    rows = _key_rows(ring)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    columns = ("alg", "state", "kid", "created_at", "retire_until")
    print_table([c.upper().replace("_", " ") for c in columns], rows, columns)


def _warn_if_readable_by_others(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(
            f"warning: {path} holds private keys but is readable by others "
            f"(mode {stat.S_IMODE(mode):o}); chmod 600 it",
            file=sys.stderr,
        )


def command_keys_show(args: argparse.Namespace) -> int:
    path = _keys_file(args)
    ring = _load_ring(path)
    _warn_if_readable_by_others(path)
    _print_ring(ring, args.json)
    return 0


def command_keys_generate(args: argparse.Namespace) -> int:
    path = _keys_file(args)
    ring = KeyRing.generate(now=utc_now(), rsa_key_size=args.rsa_key_size)
    try:
        save_key_ring(ring, path, overwrite=False)
    except FileExistsError:
        raise CliError(f"{path} exists already; rotate it with `tongxing keys rotate`") from None
    except OSError as error:
        raise CliError(f"cannot write {path}: {error.strerror}") from None
    print(f"wrote a new key ring to {path} (mode 600)")
    _print_ring(ring, as_json=False)
    return 0


def command_keys_rotate(args: argparse.Namespace) -> int:
    """One publish-before-sign step (OIDC Core §10.1), saved atomically.

    The key that was ``next`` (published since the previous rotation) becomes ``active``; the
    active key retires but stays published until every token it signed has expired; a fresh
    ``next`` key is published now and will sign only after the following rotation.
    """
    path = _keys_file(args)
    ring = _load_ring(path)
    ring.rotate(utc_now(), timedelta(seconds=args.max_token_lifetime))
    try:
        save_key_ring(ring, path)
    except OSError as error:
        raise CliError(
            f"cannot write {path}: {error.strerror} (a mounted Secret is read-only: rotate a "
            "copy and update the Secret with it)"
        ) from None
    print(
        f"rotated {path}. Running gateways notice a changed key file within about "
        f"{KEY_FILE_CHECK_INTERVAL:g} s and then sign with the new active keys; for a mounted "
        "Secret, update the Secret with this file: the kubelet takes up to about a minute more "
        "to refresh it in the pods."
    )
    _print_ring(ring, as_json=False)
    return 0


def command_keys_revoke(args: argparse.Namespace) -> int:
    """Mark a retired or historical key revoked (OpenID Federation 1.0 §8.7.2, reason §8.7.3):
    a retired key stops being published and verifying at once; the federation historical keys
    endpoint lists it with ``revoked``."""
    path = _keys_file(args)
    ring = _load_ring(path)
    try:
        ring.revoke(args.kid, utc_now(), args.reason)
    except KeyRingError as error:
        raise CliError(str(error)) from None
    try:
        save_key_ring(ring, path)
    except OSError as error:
        raise CliError(f"cannot write {path}: {error.strerror}") from None
    print(f"revoked {args.kid} in {path}")
    _print_ring(ring, as_json=False)
    return 0


def add_parser(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="the signing key ring file")
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--file", help=f"the key ring file (or {env_name('keys_file')})", metavar="PATH"
    )

    show = actions.add_parser(
        "show", parents=[common], help="list kids, algorithms and states (no key material)"
    )
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=command_keys_show)

    generate = actions.add_parser(
        "generate", parents=[common], help="create a new key ring file (refuses to overwrite)"
    )
    generate.add_argument(
        "--rsa-key-size", type=int, choices=RSA_KEY_SIZES, default=RSA_KEY_SIZES[0]
    )
    generate.set_defaults(handler=command_keys_generate)

    rotate = actions.add_parser(
        "rotate",
        parents=[common],
        help="publish a new next key, activate the published one, retire the active one; "
        "running gateways pick up the changed file by themselves",
    )
    rotate.add_argument(
        "--max-token-lifetime",
        type=positive_seconds,
        default=DEFAULT_MAX_TOKEN_LIFETIME,
        metavar="SECONDS",
        help="how long the retired key stays published: the longest lifetime of a token it "
        f"signed, id_token_hint at logout included [{DEFAULT_MAX_TOKEN_LIFETIME}]",
    )
    rotate.set_defaults(handler=command_keys_rotate)

    revoke = actions.add_parser(
        "revoke",
        parents=[common],
        help="revoke a retired or historical key (it leaves the published set at once)",
    )
    revoke.add_argument("kid", help="the key's kid (see `tongxing keys show`)")
    revoke.add_argument("--reason", choices=REVOCATION_REASONS, default=None)
    revoke.set_defaults(handler=command_keys_revoke)
