"""Keycloak in production mode (``kc.sh start``), as a region runs it, for the benchmark.

The same distribution as the test harness's ``start-dev`` Keycloak (``tongxing_dev.keycloak``),
copied once to its own folder in the harness's cache and built there for PostgreSQL
(``kc.sh build --db=postgres --health-enabled=true``: build-time options, which
``start --optimized`` then takes as they are). The copy keeps the shared distribution's own
build (``start-dev`` re-augments it) out of the way.

Each run gets a data folder and free loopback ports of its own, and a database of its own on the
same PostgreSQL server as the gateway (made before the start, dropped after the stop). HTTP on
loopback needs ``--http-enabled=true``, and production mode needs hostname settings:
``--hostname-strict=false`` lets the request's host (``127.0.0.1:<port>``) name the issuer, as the
bench's clients and the gateway use it. Everything else is Keycloak's production defaults
(persistent user sessions in the database, its own caches in the JVM with ``--cache=local``: one
node, no cluster).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from tongxing_dev import keycloak as harness_keycloak
from tongxing_dev.cache import cache_dir
from tongxing_dev.keycloak import ADMIN_USER, VERSION, KeycloakEndpoint
from tongxing_dev.postgres import PostgresEndpoint
from tongxing_dev.process import LOOPBACK, Server, free_port, run

COMPONENT = "keycloak-production"
BUILD_OPTIONS = ("--db=postgres", "--health-enabled=true")


@dataclass
class ProductionKeycloak:
    """A running ``kc.sh start`` and its database."""

    endpoint: KeycloakEndpoint
    server: Server
    database: str

    @property
    def pid(self) -> int:
        return self.server.pid


def built_home() -> Path:
    """The distribution copied and built for PostgreSQL, once, in the harness's cache."""
    key = "-".join(option.split("=", 1)[1] for option in BUILD_OPTIONS)
    home = cache_dir() / f"keycloak-{VERSION}-production-{key}"
    if (home / ".built").exists():
        return home
    source = harness_keycloak.obtain()
    staging = cache_dir() / f".keycloak-{VERSION}-production.building"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, symlinks=True, ignore=shutil.ignore_patterns("data"))
    env = {**os.environ}
    if (jdk := harness_keycloak.java_home()) is not None:
        env["JAVA_HOME"] = jdk
    print("building Keycloak for production mode (once, cached) ...", flush=True)
    run(
        COMPONENT,
        [str(staging / "bin" / "kc.sh"), "build", *BUILD_OPTIONS],
        log=cache_dir() / "logs" / "keycloak-production-build.log",
        env=env,
        timeout=600,
    )
    (staging / ".built").write_text(" ".join(BUILD_OPTIONS) + "\n")
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    return home


@contextlib.contextmanager
def production_keycloak(postgres: PostgresEndpoint, workdir: Path) -> Iterator[ProductionKeycloak]:
    """``kc.sh start --optimized`` on loopback, on a new database of ``postgres``; stopped and
    its database dropped at the end."""
    home = built_home()
    database = f"keycloak_bench_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    server: Server | None = None
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        port, management = free_port(), free_port()
        password = secrets.token_urlsafe(18)
        env = {
            **os.environ,
            "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": password,
            # The password of the database travels in the environment, not on the command line.
            "KC_DB_PASSWORD": postgres.password,
            "JAVA_OPTS_APPEND": f"-Djava.io.tmpdir={workdir}",
        }
        if (jdk := harness_keycloak.java_home()) is not None:
            env["JAVA_HOME"] = jdk
        server = Server(
            COMPONENT,
            [
                str(home / "bin" / "kc.sh"),
                "start",
                "--optimized",
                f"--db-url=jdbc:postgresql://{postgres.host}:{postgres.port}/{database}",
                f"--db-username={postgres.user}",
                "--http-enabled=true",
                f"--http-host={LOOPBACK}",
                f"--http-port={port}",
                f"--http-management-port={management}",
                "--hostname-strict=false",
                "--cache=local",
            ],
            log=workdir / "keycloak.log",
            env=env,
            cwd=workdir,
        )
        endpoint = KeycloakEndpoint(
            url=f"http://{LOOPBACK}:{port}",
            management_url=f"http://{LOOPBACK}:{management}",
            admin_user=ADMIN_USER,
            admin_password=password,
            version=VERSION,
        )
        server.wait_until(
            lambda: harness_keycloak.ready(endpoint), timeout=300, what="ready (/health/ready)"
        )
        yield ProductionKeycloak(endpoint=endpoint, server=server, database=database)
    finally:
        if server is not None:
            server.stop()
        with contextlib.suppress(psycopg.Error):
            postgres.drop_database(database)
