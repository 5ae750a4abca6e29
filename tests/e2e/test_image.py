"""The container image: the Dockerfile built with buildah, the gateway served from it.

No registry can be reached for ``python:3.11-slim-bookworm``, so the harness builds the Dockerfile
on a Debian 12 base it made with debootstrap (``--build-arg BASE_IMAGE``); everything else is the
Dockerfile as it is: the hashed lock, the wheel, the non-root user, the entry point and the
HEALTHCHECK. The gateway then runs from the image (chroot isolation: the host's network, so it
listens on loopback only) and answers its health endpoints; the operator's entry point answers.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from tongxing_dev.buildah import BUILDAH, Buildah
from tongxing_dev.process import LOOPBACK, Server, free_port

REPO = Path(__file__).resolve().parents[2]
TAG = "localhost/tongxing:test"


def buildah_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUILDAH), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass(frozen=True)
class Image:
    tag: str
    config: dict[str, Any]  # the Docker image config: User, Entrypoint, Cmd, Healthcheck, Env


@pytest.fixture(scope="module")
def image(buildah: Buildah, tmp_path_factory: pytest.TempPathFactory) -> Image:
    log = tmp_path_factory.mktemp("image") / "build.log"
    buildah.build(REPO, TAG, log)
    done = buildah_cli("inspect", "--type=image", TAG)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(done.stdout)["Docker"]["config"]
    return Image(TAG, config)


@pytest.fixture
def container(image: Image) -> Iterator[str]:
    done = buildah_cli("from", "--pull=never", image.tag)
    assert done.returncode == 0, done.stderr
    name = done.stdout.strip()
    yield name
    buildah_cli("rm", name)


def run_in(container: str, *argv: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    """A command in the container, as the image's user unless ``user`` is given."""
    as_user = [f"--user={user}"] if user else []
    return buildah_cli("run", "--isolation=chroot", *as_user, container, "--", *argv, timeout=60)


def gateway_env(port: int) -> dict[str, str]:
    """A loopback gateway's settings: throwaway secrets, keys generated on first start."""
    env = {
        "TONGXING_ISSUER": f"http://{LOOPBACK}:{port}",
        "TONGXING_INSECURE_ALLOW_HTTP": "true",
        "TONGXING_CREATE_KEYS": "true",
    }
    for name in ("NATIONAL_SECRET", "PAIRWISE_SECRET", "ADMIN_TOKEN", "SESSION_SECRET"):
        env[f"TONGXING_{name}"] = secrets.token_urlsafe(32)
    env["TONGXING_MFA_SECRET"] = secrets.token_urlsafe(32)
    return env


def test_the_image_runs_as_a_non_root_user_with_one_entry_point(image: Image) -> None:
    config = image.config
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["tongxing"]
    assert config["Cmd"][0] == "serve"
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert not any(
        key.split("=")[0].endswith(("SECRET", "TOKEN", "PASSWORD")) for key in config["Env"]
    )


def test_the_image_holds_no_tests_and_no_build_tree(container: str) -> None:
    done = run_in(
        container,
        "python3",
        "-c",
        "import importlib.util, os, sys;"
        "print(importlib.util.find_spec('tongxing_dev'));"
        "print(os.path.exists('/src'), os.path.exists('/wheels'), os.path.exists('/opt/build'));"
        "print(os.getuid())",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "False", "False", "False", "10001"]
    ours = run_in(
        container,
        "python3",
        "-c",
        "import pathlib, site; root = pathlib.Path(site.getsitepackages()[0]);"
        "print([str(p) for package in ('gateway', 'realm_operator')"
        " for p in (root / package).rglob('*') if 'test' in p.name or 'fixture' in p.name])",
    )
    assert ours.stdout.strip() == "[]", ours.stdout
    # Nothing of tests/ (conftest, fixtures, peers) and no key material came along (third-party
    # packages, checked above for ours, are left out: they ship their own test helpers).
    names = ["conftest.py", "*_fixtures.py", "rp.mjs", "keys.json", "*.pem", "*.key", "*.db"]
    wanted = [part for name in names for part in ("-o", "-name", name)][1:]
    found = run_in(
        container,
        *["find", "/", "-xdev", "-path", "*/site-packages", "-prune", "-o"],
        *[
            "-path",
            "/etc/ssl",
            "-prune",
            "-o",
            "-path",
            "/usr/share/ca-certificates",
            "-prune",
            "-o",
        ],
        *["(", *wanted, ")", "-type", "f", "-print"],
        user="0:0",  # to look everywhere
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout == ""
    # The build secret (pip's CA, when there is one) never lands in a layer.
    leftover = run_in(container, "ls", "-A", "/run/secrets", "/usr/local/share/ca-certificates")
    assert "pip-ca" not in leftover.stdout


def test_without_its_settings_the_gateway_names_them_and_stops(container: str) -> None:
    done = run_in(container, "tongxing", "serve")
    assert done.returncode == 2
    assert "missing settings:" in done.stderr
    assert "TONGXING_ADMIN_TOKEN" in done.stderr
    assert "TONGXING_NATIONAL_SECRET" in done.stderr


def test_the_gateway_serves_from_the_image_and_passes_its_health_check(
    image: Image, container: str, tmp_path: Path
) -> None:
    port = free_port()
    env = gateway_env(port)
    for key, value in env.items():
        buildah_cli("config", f"--env={key}={value}", container)
    # The image's entry point with the gateway's arguments, bound to loopback.
    command = [*image.config["Entrypoint"], "serve", f"--host={LOOPBACK}", f"--port={port}"]
    server = Server(
        "gateway-image",
        [str(BUILDAH), "run", "--isolation=chroot", container, "--", *command],
        log=tmp_path / "gateway.log",
    )
    base = f"http://{LOOPBACK}:{port}"

    def ready() -> bool:
        return requests.get(f"{base}/readyz", timeout=2).status_code == 200

    try:
        server.wait_until(ready, timeout=60, what="ready (/readyz)")
        assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
        discovery = requests.get(f"{base}/.well-known/openid-configuration", timeout=5).json()
        assert discovery["issuer"] == base
        assert requests.get(discovery["jwks_uri"], timeout=5).json()["keys"]
        # Its pages: templates and stylesheet came in the wheel (an error page, no portal here).
        page = requests.get(f"{base}/authorize", timeout=5)
        assert page.status_code == 400
        assert '<link rel="stylesheet" href="/static/tongxing.css">' in page.text
        stylesheet = requests.get(f"{base}/static/tongxing.css", timeout=5)
        assert stylesheet.status_code == 200
        assert stylesheet.content == (REPO / "gateway" / "static" / "tongxing.css").read_bytes()
        # The image's HEALTHCHECK, pointed at this gateway.
        check = image.config["Healthcheck"]["Test"][1:]
        buildah_cli("config", f"--env=HEALTHCHECK_URL={base}/healthz", container)
        done = buildah_cli("run", "--isolation=chroot", container, "--", *check, timeout=30)
        assert done.returncode == 0, done.stderr
    finally:
        server.stop()


def test_the_operator_entry_point_answers(image: Image, container: str) -> None:
    done = run_in(container, *image.config["Entrypoint"], "operator", "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: tongxing operator" in done.stdout
    assert "--all-namespaces" in done.stdout
