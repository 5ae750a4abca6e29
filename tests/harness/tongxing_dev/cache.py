"""Where the harness keeps what it downloads and builds, and how long each step took.

The cache lives outside the repository (``$TONGXING_CACHE`` or ``~/.cache/tongxing``) so a fresh
clone on a warm machine reuses it. Every entry is keyed by the version it holds; an entry is
written under a temporary name and renamed when complete, so an interrupted download or build
never passes for a finished one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tongxing_dev.errors import ComponentError


def cache_dir() -> Path:
    """The root of the cache, created on first use."""
    root = Path(os.environ.get("TONGXING_CACHE", Path.home() / ".cache" / "tongxing"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def file_digest(*paths: Path) -> str:
    """A short SHA-256 over the contents of ``paths``: the cache key of a build's inputs."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def download(component: str, url: str, dest: Path, sha1_url: str | None = None) -> Path:
    """Download ``url`` to ``dest`` once; verify it against the registry's SHA-1 when given.

    Maven Central publishes a ``.sha1`` beside every artifact: a truncated or tampered file is
    refused instead of unpacked.
    """
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:  # noqa: S310 - fixed https URL
            shutil.copyfileobj(response, out, length=1 << 20)
        if sha1_url is not None:
            with urllib.request.urlopen(sha1_url, timeout=60) as response:  # noqa: S310
                expected = response.read().decode().split()[0].strip().lower()
            actual = hashlib.sha1(partial.read_bytes(), usedforsecurity=False).hexdigest()
            if actual != expected:
                raise ComponentError(
                    component, f"checksum mismatch for {url}: got {actual}, expected {expected}"
                )
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ComponentError(component, f"cannot download {url}: {exc}") from exc
    except ComponentError:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(dest)
    return dest


@dataclass
class Timings:
    """Seconds spent obtaining and starting each component in this process."""

    obtain: dict[str, float] = field(default_factory=dict)
    start: dict[str, float] = field(default_factory=dict)
    reused: set[str] = field(default_factory=set)

    @contextmanager
    def measure(self, phase: str, component: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            getattr(self, phase)[component] = time.monotonic() - began

    def report(self) -> list[str]:
        """One line per component, in the order they were first touched."""
        names = list(dict.fromkeys([*self.obtain, *self.start, *sorted(self.reused)]))
        lines = []
        for name in names:
            if name in self.reused:
                lines.append(f"{name:<16} reused a running server (tongxing-dev up)")
                continue
            obtain = self.obtain.get(name)
            start = self.start.get(name)
            parts = [f"obtain {obtain:6.1f} s" if obtain is not None else "obtain      -"]
            parts.append(f"start {start:6.1f} s" if start is not None else "start      -")
            lines.append(f"{name:<16} " + "   ".join(parts))
        return lines


TIMINGS = Timings()
