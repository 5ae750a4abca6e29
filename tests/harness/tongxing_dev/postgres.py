"""PostgreSQL from Debian's packages: a throwaway cluster on a free loopback port."""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tongxing_dev import debian
from tongxing_dev.errors import ComponentError
from tongxing_dev.process import LOOPBACK, Server, free_port, run

COMPONENT = "postgresql"
MAJOR = "15"  # Debian 12's PostgreSQL
SERVICE_USER = "postgres"  # initdb and postgres refuse to run as root


@dataclass(frozen=True)
class PostgresEndpoint:
    """How to reach a running cluster: a superuser with a password, over TCP on loopback."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)  # never in a test report or log
    dbname: str

    def url(self, dbname: str | None = None) -> str:
        """A libpq connection URI (``postgresql://``)."""
        return (
            f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/"
            f"{dbname or self.dbname}"
        )

    def sqlalchemy_url(self, dbname: str | None = None) -> str:
        """The same, for SQLAlchemy with the psycopg 3 driver."""
        return self.url(dbname).replace("postgresql://", "postgresql+psycopg://", 1)

    def create_database(self, name: str) -> str:
        """Create an empty database and return its libpq URI (for isolation between tests)."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database made by :meth:`create_database`, closing its connections; a missing
        one is no error."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    psycopg.sql.Identifier(name)
                )
            )


def binaries() -> Path:
    return Path(f"/usr/lib/postgresql/{MAJOR}/bin")


def obtain() -> Path:
    """Make sure the server binaries are installed; return their folder."""
    debian.ensure(COMPONENT, [f"postgresql-{MAJOR}"], binaries() / "postgres")
    return binaries()


def start(workdir: Path) -> tuple[Server, PostgresEndpoint]:
    """initdb a new cluster under ``workdir`` and start it on a free port."""
    bin_dir = obtain()
    data = workdir / "data"
    sockets = workdir / "sockets"
    for folder in (workdir, data, sockets):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(folder, SERVICE_USER, SERVICE_USER)
    password = secrets.token_urlsafe(18)
    pwfile = workdir / "pwfile"
    pwfile.write_text(password + "\n")
    shutil.chown(pwfile, SERVICE_USER, SERVICE_USER)
    pwfile.chmod(0o600)
    log = workdir / "postgres.log"
    run(
        COMPONENT,
        [
            "runuser",
            "-u",
            SERVICE_USER,
            "--",
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            SERVICE_USER,
            "--pwfile",
            str(pwfile),
            "--auth-host=scram-sha-256",
            "--auth-local=peer",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        log=log,
    )
    pwfile.unlink()
    port = free_port()
    server = Server(
        COMPONENT,
        [
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(sockets),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ],
        log=log,
        user=SERVICE_USER,
        cwd=workdir,
    )
    endpoint = PostgresEndpoint(LOOPBACK, port, SERVICE_USER, password, "postgres")
    server.wait_until(lambda: ready(endpoint), timeout=60, what="accepting connections")
    return server, endpoint


def ready(endpoint: PostgresEndpoint) -> bool:
    try:
        with psycopg.connect(endpoint.url(), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def check(endpoint: PostgresEndpoint) -> None:
    if not ready(endpoint):
        raise ComponentError(COMPONENT, f"no server answers on {endpoint.host}:{endpoint.port}")
