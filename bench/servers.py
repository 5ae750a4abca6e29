"""The servers of a benchmark run, all on loopback: Keycloak, PostgreSQL and the gateway.

PostgreSQL and the ``start-dev`` Keycloak come from the test harness (``tongxing_dev``): a server
that ``tongxing-dev up`` left running is reused (Keycloak is then shared with whatever else uses
it, so its figures are noisier), otherwise one is started for the run and stopped at its end.
Keycloak in production mode (``kc.sh start``, :mod:`bench.keycloak_production`) is always started
for the run, on a database of its own on the same PostgreSQL server. The gateway always runs as
its own process, ``tongxing serve`` (granian, or ``--server waitress``), on a fresh PostgreSQL
database, with settings a production replica would have apart from the plain-HTTP loopback
issuer and the per-process rate limits (off, as for Keycloak, which has none).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests
from tongxing_dev import stack
from tongxing_dev.keycloak import KeycloakEndpoint
from tongxing_dev.postgres import PostgresEndpoint
from tongxing_dev.process import Server, free_port, tail

from bench.keycloak_production import production_keycloak


class BenchSetupError(Exception):
    """A server of the run could not be had; the message says which and why."""


@dataclass(frozen=True)
class KeycloakServer:
    """One Keycloak of the run, in one mode: ``production`` (``kc.sh start``, its database on
    the run's PostgreSQL server) or ``dev`` (``start-dev``, H2 in memory)."""

    mode: str
    endpoint: KeycloakEndpoint
    pid: int  # the JVM (for its CPU, heap and RSS)
    reused: bool
    database: str | None  # its PostgreSQL database (production mode)


@dataclass
class Harness:
    """Keycloak (each mode) and PostgreSQL for one run, and which of them this run started."""

    keycloaks: list[KeycloakServer]
    postgres: PostgresEndpoint
    postgres_pid: int  # the postmaster (its CPU time covers every backend)
    postgres_reused: bool
    workdir: Path
    started: list[Server] = field(default_factory=list)


def _java_pid(leader: int) -> int:
    """The JVM among ``leader`` and its descendants (kc.sh execs java, but be sure)."""
    candidates = [leader, *_descendants(leader)]
    for pid in candidates:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/exe").resolve().name == "java":
                return pid
    return leader


def _descendants(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    found = list(children)
    for child in children:
        found += _descendants(child)
    return found


@contextlib.contextmanager
def harness(*, own_keycloak: bool, modes: tuple[str, ...]) -> Iterator[Harness]:
    """PostgreSQL and Keycloak in each of ``modes``: ``dev`` is reused when ``tongxing-dev up``
    runs it, else started here; ``production`` is always started for the run."""
    workdir = Path(tempfile.mkdtemp(prefix="tongxing-bench-"))
    workdir.chmod(0o755)  # PostgreSQL runs as its own user below it
    started: list[Server] = []
    try:
        with contextlib.ExitStack() as stack_:
            postgres = stack.running("postgresql")
            postgres_reused = postgres is not None
            if postgres is None:
                servers, postgres = stack.start("postgresql", workdir / "postgresql")
                started += servers
                postmaster = servers[0].pid
            else:
                postmaster = int(stack.read_state()["postgresql"]["pids"][0])
            keycloaks: list[KeycloakServer] = []
            for mode in modes:
                if mode == "production":
                    print("starting Keycloak (production mode) for this run ...", flush=True)
                    production = stack_.enter_context(
                        production_keycloak(postgres, workdir / "keycloak-production")
                    )
                    keycloaks.append(
                        KeycloakServer(
                            mode,
                            production.endpoint,
                            _java_pid(production.pid),
                            reused=False,
                            database=production.database,
                        )
                    )
                    continue
                keycloak = None if own_keycloak else stack.running("keycloak")
                reused = keycloak is not None
                if keycloak is None:
                    print("starting Keycloak (start-dev) for this run ...", flush=True)
                    servers, keycloak = stack.start("keycloak", workdir / "keycloak")
                    started += servers
                    leader = servers[0].pid
                else:
                    leader = int(stack.read_state()["keycloak"]["pids"][0])
                keycloaks.append(
                    KeycloakServer(mode, keycloak, _java_pid(leader), reused=reused, database=None)
                )
            yield Harness(
                keycloaks=keycloaks,
                postgres=postgres,
                postgres_reused=postgres_reused,
                postgres_pid=postmaster,
                workdir=workdir,
                started=started,
            )
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(postgres: PostgresEndpoint) -> Iterator[str]:
    """A new, empty database for the gateway (dropped at the end); yields its SQLAlchemy URL."""
    name = f"tongxing_bench_{uuid.uuid4().hex[:8]}"
    postgres.create_database(name)
    try:
        yield postgres.sqlalchemy_url(name)
    finally:
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(postgres.url(), autocommit=True) as conn,
        ):
            conn.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    psycopg.sql.Identifier(name)
                )
            )


@dataclass
class Gateway:
    """A ``tongxing serve`` process and what the benchmark needs to know about it."""

    issuer: str
    admin_token: str
    mfa_secret: str
    pairwise_secret: str
    database_url: str
    process: subprocess.Popen[bytes]
    log: Path
    threads: int
    workers: int
    server: str = "granian"

    @property
    def pid(self) -> int:
        """The ``tongxing serve`` process (with ``--workers`` > 1, the workers' parent)."""
        return self.process.pid

    def admin(self, method: str, path: str, body: dict[str, object] | None = None) -> object:
        response = requests.request(
            method,
            f"{self.issuer}/admin/v1{path}",
            json=body,
            timeout=30,
            headers={"Authorization": f"Bearer {self.admin_token}"},
        )
        if response.status_code >= 300:
            raise BenchSetupError(
                f"admin {method} {path} answered {response.status_code}: {response.text[:300]}"
            )
        return response.json() if response.content else None


def _tongxing_command() -> str:
    beside = Path(sys.executable).with_name("tongxing")
    if beside.exists():
        return str(beside)
    found = shutil.which("tongxing")
    if found is None:
        raise BenchSetupError("the `tongxing` command is not installed (make venv)")
    return found


@contextlib.contextmanager
def gateway(
    database_url: str,
    workdir: Path,
    *,
    threads: int,
    workers: int,
    server: str = "granian",
    folder_name: str = "gateway",
) -> Iterator[Gateway]:
    """``tongxing serve --server SERVER`` on a free loopback port, on ``database_url``; stopped
    at the end. ``folder_name`` is its folder under ``workdir`` (several gateways in one run)."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    secrets_ = {name: secrets.token_urlsafe(32) for name in _SECRETS}
    folder = workdir / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TONGXING_")},
        "TONGXING_ISSUER": issuer,
        "TONGXING_DATABASE_URL": database_url,
        "TONGXING_DATA_DIR": str(folder),
        "TONGXING_KEYS_FILE": str(folder / "keys.json"),
        "TONGXING_CREATE_KEYS": "true",
        # Plain HTTP is for the loopback issuer only; nothing else differs from production.
        "TONGXING_INSECURE_ALLOW_HTTP": "true",
        # The per-process rate limits (issue 14) would answer most of a load run with 429: a
        # production deployment sizes them for its traffic, and Keycloak has none to switch off.
        "TONGXING_RATE_LIMITS": '{"enabled": false}',
        **{f"TONGXING_{name.upper()}": value for name, value in secrets_.items()},
    }
    log = folder / "gateway.log"
    argv = [
        _tongxing_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--threads",
        str(threads),
        "--workers",
        str(workers),
        "--server",
        server,
        "--log-level",
        "WARNING",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own command
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    running = Gateway(
        issuer=issuer,
        admin_token=secrets_["admin_token"],
        mfa_secret=secrets_["mfa_secret"],
        pairwise_secret=secrets_["pairwise_secret"],
        database_url=database_url,
        process=process,
        log=log,
        threads=threads,
        workers=workers,
        server=server,
    )
    try:
        _wait_ready(running)
        yield running
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


_SECRETS = ("national_secret", "pairwise_secret", "admin_token", "session_secret", "mfa_secret")


def _wait_ready(gateway: Gateway, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise BenchSetupError(
                f"the gateway exited with {gateway.process.returncode}:\n{tail(gateway.log)}"
            )
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{gateway.issuer}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise BenchSetupError(f"the gateway was not ready after {timeout:.0f} s:\n{tail(gateway.log)}")
