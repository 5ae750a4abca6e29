"""The load generator: wrk (Debian's ``wrk``) driven by ``wrk_driver.lua``, the same for both sides.

wrk is a C load generator with one event loop per thread, so on a two-core machine it takes a
small share of a core and leaves the rest to the server being measured. It runs closed-loop: a
fixed number of keep-alive connections, each sending its next request when the previous answer
arrives. Every run is bounded by time (``-d``) and by count (the ``LIMIT`` the script enforces).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from tongxing_dev import debian
from tongxing_dev.errors import ComponentError

SCRIPT = Path(__file__).with_name("wrk_driver.lua")
DEBIAN_WRK = Path("/usr/bin/wrk")
FORM = "application/x-www-form-urlencoded"


class LoadGeneratorError(Exception):
    """wrk is missing or did not report."""


@dataclass(frozen=True)
class Measure:
    """What one side did in one scenario."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    completed: int
    seconds: float
    note: str = ""
    samples: tuple[str, ...] = field(default=())
    cpu_ms: float | None = None  # server CPU per request (gateway + PostgreSQL, or the JVM)
    database_cpu_ms: float | None = None  # of which PostgreSQL's (the gateway side)

    @classmethod
    def of_latencies(
        cls, latencies_s: Sequence[float], wall_s: float, errors: int, note: str = ""
    ) -> Measure:
        """A measure from latencies taken by a Python client (the login flows)."""
        if not latencies_s:
            return cls(0.0, 0.0, 0.0, errors, 0, wall_s, note)
        return cls(
            rps=len(latencies_s) / wall_s if wall_s > 0 else 0.0,
            p50_ms=percentile(latencies_s, 50) * 1000,
            p99_ms=percentile(latencies_s, 99) * 1000,
            errors=errors,
            completed=len(latencies_s),
            seconds=wall_s,
            note=note,
        )


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile, nearest-rank (what wrk's histogram reports, too)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def basic_auth(client_id: str, secret: str) -> str:
    """``client_secret_basic`` (RFC 6749 §2.3.1: both parts form-encoded first)."""
    from urllib.parse import quote

    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Load:
    """One wrk run: what to send, where, how often, with how many connections."""

    url: str  # the full URL of the endpoint
    method: Literal["GET", "POST"]
    headers: dict[str, str]
    bodies: Sequence[str]  # mode once: one body per request; mode repeat: one body (or "")
    once: bool
    limit: int
    duration_s: float
    connections: int


def check_wrk() -> str:
    """wrk's path; Debian's package is installed when missing (as root), like the harness does."""
    path = shutil.which("wrk")
    if path is not None:
        return path
    try:
        debian.ensure("wrk", ["wrk"], DEBIAN_WRK)
    except ComponentError as error:
        raise LoadGeneratorError(
            f"wrk is not installed and could not be ({error}): apt-get install wrk (Debian's "
            "package; the benchmarks use it as the load generator for both sides)"
        ) from None
    return str(DEBIAN_WRK)


def run(load: Load) -> Measure:
    """Run wrk once and return what it measured."""
    wrk = check_wrk()
    parts = urlsplit(load.url)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise LoadGeneratorError(f"the load generator targets loopback only, not {parts.hostname}")
    with tempfile.TemporaryDirectory(prefix="tongxing-wrk-") as folder:
        work = Path(folder)
        requests_file = work / "requests.txt"
        headers_file = work / "headers.txt"
        out = work / "out.json"
        requests_file.write_text("\n".join(load.bodies) + "\n")
        headers_file.write_text("".join(f"{k}: {v}\n" for k, v in load.headers.items()))
        argv = [
            wrk,
            "-t1",
            f"-c{load.connections}",
            f"-d{max(1, round(load.duration_s))}s",
            "--timeout",
            "10s",
            "-s",
            str(SCRIPT),
            origin,
            "--",
            "once" if load.once else "repeat",
            load.method,
            path,
            str(requests_file),
            str(headers_file),
            str(load.limit),
        ]
        env = {**os.environ, "BENCH_WRK_OUT": str(out)}
        done = subprocess.run(  # noqa: S603 - a fixed argv of our own
            argv,
            env=env,
            capture_output=True,
            text=True,
            timeout=load.duration_s + 30,
            check=False,
        )
        if not out.exists():
            raise LoadGeneratorError(
                f"wrk exited with {done.returncode} without a report: {done.stderr.strip()[:500]}"
            )
        report = json.loads(out.read_text())
    return _measure(report)


def _measure(report: dict[str, object]) -> Measure:
    def number(name: str) -> float:
        value = report.get(name, 0)
        return float(value) if isinstance(value, int | float) else 0.0

    sockets = report.get("socket_errors")
    socket_errors = sum(int(v) for v in sockets.values()) if isinstance(sockets, dict) else 0
    seconds = number("seconds")
    completed = int(number("completed"))
    samples = report.get("samples")
    return Measure(
        rps=completed / seconds if seconds > 0 else 0.0,
        p50_ms=number("p50_us") / 1000,
        p99_ms=number("p99_us") / 1000,
        errors=int(number("failed")) + socket_errors,
        completed=completed,
        seconds=seconds,
        samples=tuple(str(s) for s in samples) if isinstance(samples, list) else (),
    )


def form_headers(authorization: str) -> dict[str, str]:
    return {"Authorization": authorization, "Content-Type": FORM}
