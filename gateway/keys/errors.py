"""What the key ring refuses, one exception per failure a caller handles.

Messages name kids, algorithms, files and reasons; never key material, so any of them may reach a
log line.
"""

from __future__ import annotations

from pathlib import Path


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


def key_file_error(path: Path, error: OSError) -> KeyFileError:
    """The :class:`KeyFileError` for an ``OSError`` met while opening or statting ``path``."""
    if isinstance(error, FileNotFoundError):
        return KeyFileMissingError(path, "does not exist")
    return KeyFileError(path, f"cannot be read ({error.strerror})")
