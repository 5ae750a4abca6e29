"""The machine: what it is, its single-core signing limit, and what processes cost.

The signing limit is measured with the ``cryptography`` library on one thread: RS256 is
RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key (the gateway's default key size), ES256 is ECDSA
on P-256 with SHA-256. The gateway signs through joserfc, so the rate of whole JWTs signed by the
gateway's own :class:`~gateway.keys.KeyRing` is printed too: the difference is the JOSE layer.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from gateway.keys import KeyRing


def describe() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; load average {load}"
    )


def _rate(operation: Callable[[], object], seconds: float, rounds: int = 5) -> float:
    """Operations per second on this thread: the best of ``rounds`` short rounds.

    The best round, because the question is what one core can do: on a shared machine a round
    is only ever slowed down by others, never sped up.
    """
    operation()  # warm
    best = 0.0
    for _ in range(rounds):
        count = 0
        started = time.perf_counter()
        deadline = started + seconds / rounds
        while True:
            for _ in range(10):
                operation()
            count += 10
            now = time.perf_counter()
            if now >= deadline:
                best = max(best, count / (now - started))
                break
    return best


@dataclass(frozen=True)
class SigningLimit:
    rs256: float
    es256: float
    rs256_jwt: float  # a whole JWT through the gateway's KeyRing (joserfc)
    es256_jwt: float


def signing_limit(seconds: float = 1.5) -> SigningLimit:
    message = os.urandom(400)  # about an ID token's signing input
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
    ecdsa = ec.ECDSA(hashes.SHA256())
    ring = KeyRing.generate(now=datetime.now(UTC))
    claims = {
        "iss": "https://tongxing.example.cn",
        "sub": "0" * 32,
        "aud": "bench-portal",
        "iat": 1,
        "exp": 2,
        "at_hash": "x" * 22,
        "name": "张三",
        "acr": "loa1",
        "amr": ["pwd"],
    }
    return SigningLimit(
        rs256=_rate(lambda: rsa_key.sign(message, pkcs1, sha256), seconds),
        es256=_rate(lambda: ec_key.sign(message, ecdsa), seconds),
        rs256_jwt=_rate(lambda: ring.sign(claims, alg="RS256"), seconds),
        es256_jwt=_rate(lambda: ring.sign(claims, alg="ES256"), seconds),
    )


# --- what a process costs ------------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid``, its live descendants and the children it has reaped.

    For PostgreSQL's postmaster this covers every backend, live or ended; for a single process
    (the gateway, the JVM) it is that process's user and system time.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    with contextlib.suppress(OSError):
        fields = _stat(pid)
        # utime, stime, cutime, cstime: fields 14-17 of /proc/PID/stat (after the name).
        total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks
    for child in _children(pid):
        total += cpu_seconds(child)
    return total


def rss_bytes(pid: int, *, with_children: bool = False) -> int:
    """Resident set size of ``pid`` (and of its descendants: a gateway's workers)."""
    total = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total = int(line.split()[1]) * 1024
                break
    if with_children:
        total += sum(rss_bytes(child, with_children=True) for child in _children(pid))
    return total


def jvm_heap_after_gc(pid: int) -> int | None:
    """Bytes of Java heap in use after a full collection (``jcmd``), or None without jcmd."""
    jcmd = shutil.which("jcmd")
    if jcmd is None:
        return None
    try:
        subprocess.run(  # noqa: S603 - fixed argv
            [jcmd, str(pid), "GC.run"], capture_output=True, timeout=60, check=True
        )
        info = subprocess.run(  # noqa: S603 - fixed argv
            [jcmd, str(pid), "GC.heap_info"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in info.splitlines():
        if "used" in line and "total" in line:
            used = line.split("used", 1)[1].split()[0].rstrip(",")
            if used.endswith("K") and used[:-1].isdigit():
                return int(used[:-1]) * 1024
    return None


def database_backends(postgres_url: str, database: str) -> list[int]:
    """The PostgreSQL backends (their pids) connected to ``database`` now (pg_stat_activity)."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return [int(row[0]) for row in rows]


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds so far of a server's process tree and of its database's backends, by pid."""

    server: float
    backends: dict[int, float]


class CpuMeter:
    """What one side costs: its server's process tree plus the PostgreSQL backends of its own
    database (none for Keycloak's ``start-dev``, whose database is in its JVM).

    Only the backends of the side's database count, so that other users of a shared PostgreSQL
    server are not charged to it; PostgreSQL's shared background processes (WAL writer,
    checkpointer, autovacuum) are left out for both sides alike. A backend that ends during a
    run loses what it spent after the first snapshot; the pools of both sides keep theirs open.
    """

    def __init__(self, server_pid: int, postgres_url: str | None, database: str | None) -> None:
        self.server_pid = server_pid
        self.postgres_url = postgres_url
        self.database = database

    def snapshot(self) -> CpuSnapshot:
        backends: dict[int, float] = {}
        if self.postgres_url is not None and self.database is not None:
            for pid in database_backends(self.postgres_url, self.database):
                backends[pid] = cpu_seconds(pid)
        return CpuSnapshot(cpu_seconds(self.server_pid), backends)

    @staticmethod
    def spent(before: CpuSnapshot, after: CpuSnapshot) -> tuple[float, float]:
        """(total, of which database) CPU seconds between two snapshots."""
        database = 0.0
        for pid, seconds in after.backends.items():
            database += max(0.0, seconds - before.backends.get(pid, 0.0))
        return after.server - before.server + database, database


def database_bytes(postgres_url: str, database: str) -> int | None:
    """``pg_database_size``: every table, index and TOAST of ``database``, on disk."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(%s)", (database,)).fetchone()
    return None if row is None else int(row[0])
