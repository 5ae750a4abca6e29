"""Following the key file: a running gateway picks up a rotated file without a restart.

A ring loaded with ``load_key_ring(path, watch_every=...)`` follows its file through a
:class:`KeyFileFollower`: at most once per interval, on the next use of the ring, it stats the
file and, only when the file changed, loads and validates it and swaps the new ring in. A file
that is unreadable or invalid is logged and the ring in use stays.

Rotation is still publish-before-sign (OIDC Core §10.1) while the replicas pick up a rotated file
one by one: the file's new active key was published as ``next`` by the previous file (so every
replica and every relying party's cache already has it), and the old active key stays published
as ``retired``, so a replica that has not reloaded yet signs with a key the reloaded ones still
publish and verify. A new file that breaks this is taken with a warning
(:func:`~gateway.keys.rotation.succession`); one that drops an algorithm the ring signs with is
refused.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from gateway.keys.errors import KeyFileError, key_file_error
from gateway.keys.rotation import succession
from gateway.keys.signing_key import SigningKey, describe_keys

if TYPE_CHECKING:
    from gateway.keys.ring import KeyRing

# The package's logger, one name for operators to filter on (as before the package was split).
logger = logging.getLogger(__package__)

#: How often, in seconds, a gateway looks at its key file for a new version. A mounted Secret is
#: refreshed in the pod by the kubelet, which adds up to about a minute after the Secret changes.
KEY_FILE_CHECK_INTERVAL: Final = 10.0

#: What identifies one version of the key file: (st_dev, st_ino, st_mtime_ns, st_size,
#: st_ctime_ns) of the file the path resolves to. Kubernetes updates a mounted Secret by pointing
#: its ``..data`` symlink at a new directory, so a new version is a new inode even when the size
#: and mtime are the same; ctime also catches a ``chmod`` that makes an unreadable file readable.
FileVersion = tuple[int, int, int, int, int]


def file_version(status: os.stat_result) -> FileVersion:
    return (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size, status.st_ctime_ns)


class KeyFileFollower:
    """The file a ring was loaded from, and when and how the ring looks at it again.

    ``read`` returns a file's content and the version it was read from, or raises
    :class:`KeyFileError`; ``parse`` turns that content into a validated ring (both from
    :mod:`gateway.keys.files`). The ring calls :meth:`look` from one thread at a time (holding
    its swap lock); :meth:`is_due` is also called without it (it reads one float).
    """

    __slots__ = (
        "_clock",
        "_due",
        "_every",
        "_loaded",
        "_parse",
        "_path",
        "_problem",
        "_read",
        "_refused",
    )

    def __init__(
        self,
        path: Path,
        loaded: FileVersion,
        every: float,
        clock: Callable[[], float],
        *,
        read: Callable[[Path], tuple[bytes, FileVersion]],
        parse: Callable[[Path, bytes], KeyRing],
    ) -> None:
        if not (math.isfinite(every) and every > 0):
            raise ValueError(f"the key file check interval must be positive, not {every!r}")
        self._path = path
        self._every = every
        self._clock = clock
        self._read = read
        self._parse = parse
        self._due = clock() + every
        #: the version the ring's keys were loaded from
        self._loaded = loaded
        #: a version that was read and refused: not read again
        self._refused: FileVersion | None = None
        #: the last "cannot stat or read" error logged, so that one problem is logged once
        self._problem: str | None = None

    def is_due(self) -> bool:
        return self._clock() >= self._due

    def look(self, keys: tuple[SigningKey, ...]) -> KeyRing | None:
        """The ring of the key file if it changed since the ring last looked and is valid.

        The next check is scheduled before the file is touched, so a slow or failing file costs
        one look per interval, not one per request. A new version is validated like the file at
        start (``parse``) and must keep an active key for every algorithm the ring signs with
        now; otherwise it is logged once at ERROR and the ring in use stays, until a later
        version of the file is valid.
        """
        now = self._clock()
        if now < self._due:
            return None  # another thread has just looked
        self._due = now + self._every
        return self._reload_if_changed(keys)

    def _reload_if_changed(self, old: tuple[SigningKey, ...]) -> KeyRing | None:
        path = self._path
        try:
            # stat follows symlinks: a mounted Secret's file is a symlink through ``..data``.
            version = file_version(path.stat())
        except OSError as error:
            self._report_unreadable(key_file_error(path, error))
            return None
        if version == self._loaded:
            if self._problem is not None:
                logger.info("signing key file %s is readable again and unchanged", path)
                self._problem = None
            return None
        if version == self._refused:
            return None
        try:
            data, version = self._read(path)
        except KeyFileError as error:
            self._report_unreadable(error)
            return None
        if version == self._loaded:
            return None  # changed back between the stat and the read
        try:
            ring = self._parse(path, data)
            _check_succession(path, old, ring.keys)
        except Exception as error:
            # Whatever a file holds, it must not fail the request that happened to look at it
            # (json.loads raises RecursionError on deep nesting). A KeyFileError says what is
            # wrong without quoting key material; any other message might, so only its type.
            if not isinstance(error, KeyFileError):
                error = KeyFileError(path, f"cannot be loaded ({type(error).__name__})")
            logger.error("%s; still signing with %s", error, describe_keys(old))
            self._refused = version
            self._problem = None
            return None
        self._loaded = version
        self._refused = None
        self._problem = None
        logger.info(
            "reloaded signing key ring from %s: %s (was: %s)",
            path,
            describe_keys(ring.keys),
            describe_keys(old),
        )
        return ring

    def _report_unreadable(self, error: KeyFileError) -> None:
        # Tried again at every check (it may pass), logged once while it stays the same.
        if str(error) != self._problem:
            logger.error("%s; still signing with the keys loaded before", error)
            self._problem = str(error)


def _check_succession(path: Path, old: tuple[SigningKey, ...], new: tuple[SigningKey, ...]) -> None:
    """Refuse a reloaded ring that cannot sign for an algorithm the running ring signs with
    (portals may have asked for it), and warn when the new file breaks publish-before-sign."""
    change = succession(old, new)
    if change.dropped:
        raise KeyFileError(
            path,
            f"is refused: it has no active {', '.join(change.dropped)} key, which the running "
            "ring signs with (to stop offering an algorithm, restart the gateway with the new "
            "file)",
        )
    for key in change.unannounced:
        # A replaced (say, compromised) key; relying parties fetch the JWK Set again when
        # they meet an unknown kid, but tokens may be refused until they do.
        logger.warning(
            "signing key file %s: %s signs without having been published first (OIDC Core §10.1)",
            path,
            key,
        )
    for key in change.withdrawn:
        logger.warning(
            "signing key file %s: %s, which signed until now, is no longer published; "
            "tokens it signed no longer verify",
            path,
            key,
        )
