"""Keycloak from its distribution on Maven Central, run with ``start-dev`` on loopback."""

from __future__ import annotations

import os
import secrets
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tongxing_dev.cache import cache_dir, download
from tongxing_dev.errors import ComponentError
from tongxing_dev.process import LOOPBACK, Server, free_port

COMPONENT = "keycloak"
# 26.4 is the newest line that still runs on Java 17 (the machine's JDK); later 26.x need 21.
VERSION = "26.4.7"
ARTIFACT = (
    "https://repo1.maven.org/maven2/org/keycloak/keycloak-quarkus-dist/"
    f"{VERSION}/keycloak-quarkus-dist-{VERSION}.zip"
)
ADMIN_USER = "tongxing-admin"


@dataclass(frozen=True)
class KeycloakEndpoint:
    """A running Keycloak: its public URL, its management URL and the bootstrap admin."""

    url: str
    management_url: str
    admin_user: str
    admin_password: str = field(repr=False)  # never in a test report or log
    version: str

    def issuer(self, realm: str) -> str:
        """The OIDC issuer of ``realm``."""
        return f"{self.url}/realms/{realm}"


def obtain() -> Path:
    """Download and unpack the pinned distribution once; return its home folder."""
    home = cache_dir() / f"keycloak-{VERSION}"
    if (home / "bin" / "kc.sh").exists():
        return home
    archive = download(
        COMPONENT,
        ARTIFACT,
        cache_dir() / "downloads" / f"keycloak-{VERSION}.zip",
        sha1_url=ARTIFACT + ".sha1",
    )
    staging = cache_dir() / f".keycloak-{VERSION}.unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(staging)
    except (OSError, zipfile.BadZipFile) as exc:
        archive.unlink(missing_ok=True)
        raise ComponentError(COMPONENT, f"cannot unpack {archive}: {exc}") from exc
    unpacked = staging / f"keycloak-{VERSION}"
    for script in (unpacked / "bin").glob("*.sh"):
        script.chmod(0o755)
    unpacked.rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    return home


def java_home() -> str | None:
    """The JDK to run Keycloak with: ``$JAVA_HOME`` or the one on PATH."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    if shutil.which("java") is None:
        raise ComponentError(COMPONENT, "no java on PATH and JAVA_HOME unset (needs Java 17+)")
    return None


def start(workdir: Path) -> tuple[Server, KeycloakEndpoint]:
    """Start Keycloak in dev mode with an in-memory database and a bootstrap admin."""
    home = obtain()
    workdir.mkdir(parents=True, exist_ok=True)
    port, management = free_port(), free_port()
    password = secrets.token_urlsafe(18)
    env = {
        **os.environ,
        "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
        "KC_BOOTSTRAP_ADMIN_PASSWORD": password,
        # Keep the JVM's scratch files out of the shared distribution folder.
        "JAVA_OPTS_APPEND": f"-Djava.io.tmpdir={workdir}",
    }
    if (jdk := java_home()) is not None:
        env["JAVA_HOME"] = jdk
    server = Server(
        COMPONENT,
        [
            str(home / "bin" / "kc.sh"),
            "start-dev",
            f"--http-host={LOOPBACK}",
            f"--http-port={port}",
            f"--http-management-port={management}",
            "--health-enabled=true",
            "--db=dev-mem",
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
    server.wait_until(lambda: ready(endpoint), timeout=240, what="ready (/health/ready)")
    return server, endpoint


def ready(endpoint: KeycloakEndpoint) -> bool:
    try:
        response = requests.get(f"{endpoint.management_url}/health/ready", timeout=2)
    except requests.RequestException:
        return False
    return response.status_code == 200 and response.json().get("status") == "UP"


def check(endpoint: KeycloakEndpoint) -> None:
    if not ready(endpoint):
        raise ComponentError(COMPONENT, f"{endpoint.management_url}/health/ready is not UP")
