"""pytest fixtures for the real servers, and a report of how long each took to obtain and start.

Each server fixture is session-scoped: it reuses a server ``tongxing-dev up`` left running, or
starts one for the session and stops it at the end. A component that cannot be had raises
:class:`~tongxing_dev.ComponentError`, which pytest reports as an error: never a skip.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from tongxing_dev import stack
from tongxing_dev.browser import CHROMIUM, LAUNCH_ARGS
from tongxing_dev.buildah import Buildah
from tongxing_dev.buildah import tool as buildah_tool
from tongxing_dev.cache import TIMINGS
from tongxing_dev.helm import Helm
from tongxing_dev.helm import tool as helm_tool
from tongxing_dev.keycloak import KeycloakEndpoint
from tongxing_dev.kube import KubeEndpoint
from tongxing_dev.peers import PEERS
from tongxing_dev.postgres import PostgresEndpoint


@pytest.fixture(scope="session")
def harness_workdir() -> Iterator[Path]:
    """A folder for this session's servers, deleted at the end."""
    path = Path(tempfile.mkdtemp(prefix="tongxing-test-"))
    path.chmod(0o755)  # PostgreSQL runs as its own user below it
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _server(name: str, workdir: Path) -> Iterator[Any]:
    endpoint = stack.running(name)
    if endpoint is not None:
        yield endpoint
        return
    servers, endpoint = stack.start(name, workdir / name)
    try:
        yield endpoint
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def postgres(harness_workdir: Path) -> Iterator[PostgresEndpoint]:
    """A PostgreSQL cluster (superuser over TCP on loopback)."""
    yield from _server("postgresql", harness_workdir)


@pytest.fixture(scope="session")
def keycloak(harness_workdir: Path) -> Iterator[KeycloakEndpoint]:
    """A Keycloak in dev mode with a bootstrap admin in the master realm."""
    yield from _server("keycloak", harness_workdir)


@pytest.fixture(scope="session")
def kube(harness_workdir: Path) -> Iterator[KubeEndpoint]:
    """etcd + kube-apiserver; ``KUBECONFIG`` points at it for the session (kopf reads it)."""
    for endpoint in _server("kube", harness_workdir):
        previous = os.environ.get("KUBECONFIG")
        os.environ["KUBECONFIG"] = endpoint.kubeconfig
        try:
            yield endpoint
        finally:
            if previous is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = previous


@pytest.fixture(scope="session")
def node_peers() -> Path:
    """The folder of the npm-installed protocol peers (``rp.mjs``, ``op.mjs``)."""
    stack.obtain("node-peers")
    return PEERS


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's headless Chromium."""
    stack.obtain("chromium")
    return CHROMIUM


@pytest.fixture(scope="session")
def helm(harness_workdir: Path) -> Helm:
    """Helm 3 built from its Go module (cached), with a Helm home of this session's own."""
    stack.obtain("helm")
    return helm_tool(harness_workdir / "helm-home")


@pytest.fixture(scope="session")
def buildah() -> Buildah:
    """Debian's buildah and a debootstrapped Debian 12 base image (made once) for the Dockerfile."""
    stack.obtain("buildah")
    return buildah_tool()


@pytest.fixture(scope="session")
def browser(chromium: Path) -> Iterator[Browser]:
    """Playwright driving Debian's Chromium, headless (Playwright downloads no browser)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), args=LAUNCH_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = TIMINGS.report()
    if lines:
        terminalreporter.section("tongxing harness: time to obtain and start each server")
        for line in lines:
            terminalreporter.write_line(line)
