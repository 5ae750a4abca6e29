"""The set of servers the tests use: start them, find them again, stop them.

``tongxing-dev up`` starts servers detached and records them in a state file; the pytest plugin
reuses a recorded server when it still answers its health check and otherwise starts its own for
the session. Either way each server is reached only through its endpoint record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from tongxing_dev import browser, buildah, helm, keycloak, kube, peers, postgres
from tongxing_dev.cache import TIMINGS, cache_dir
from tongxing_dev.errors import ComponentError
from tongxing_dev.process import Server, alive, stop_group

E = TypeVar("E")


@dataclass(frozen=True)
class ServerKind(Generic[E]):
    """How to obtain, start and health-check one kind of server."""

    name: str
    obtain: Callable[[], object]
    start: Callable[[Path], tuple[Server | list[Server], E]]
    check: Callable[[E], None]
    endpoint: type[E]


SERVERS: dict[str, ServerKind[Any]] = {
    "postgresql": ServerKind(
        "postgresql", postgres.obtain, postgres.start, postgres.check, postgres.PostgresEndpoint
    ),
    "keycloak": ServerKind(
        "keycloak", keycloak.obtain, keycloak.start, keycloak.check, keycloak.KeycloakEndpoint
    ),
    "kube": ServerKind("kube", kube.obtain, kube.start, kube.check, kube.KubeEndpoint),
}
# Installed, not run as servers: the tests start peers and browsers as they need them.
TOOLS: dict[str, Callable[[], object]] = {
    "node-peers": peers.obtain,
    "chromium": browser.obtain,
    "helm": helm.obtain,
    "buildah": buildah.obtain,
}
COMPONENTS = (*SERVERS, *TOOLS)


def dev_dir() -> Path:
    return cache_dir() / "dev"


def server_dir(name: str) -> Path:
    """The working folder of a server ``up`` starts.

    PostgreSQL runs as its own user, which cannot reach a folder below a private home directory
    (``/root`` is usually 0700); its cluster then goes below the system's temporary folder.
    """
    folder = dev_dir() / name
    if name == "postgresql" and not _traversable_by_all(folder.parent):
        shared = Path(tempfile.gettempdir()) / f"tongxing-dev-{os.getuid()}"
        shared.mkdir(mode=0o755, exist_ok=True)
        shared.chmod(0o755)
        folder = shared / name
    return folder


def _traversable_by_all(folder: Path) -> bool:
    folder = folder.resolve()
    for ancestor in (folder, *folder.parents):
        if ancestor.exists() and not ancestor.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def state_file() -> Path:
    return dev_dir() / "state.json"


def read_state() -> dict[str, dict[str, Any]]:
    """What ``tongxing-dev up`` recorded: component -> {"pids": [...], "endpoint": {...}}."""
    try:
        data: dict[str, dict[str, Any]] = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return {}
    return data


def write_state(state: dict[str, dict[str, Any]]) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(state, indent=2))
    partial.chmod(0o600)  # it holds the throwaway servers' admin credentials
    partial.replace(path)


def obtain(name: str) -> None:
    """Obtain one component (download, build or install), timed."""
    fetch = SERVERS[name].obtain if name in SERVERS else TOOLS[name]
    with TIMINGS.measure("obtain", name):
        fetch()


def start(name: str, workdir: Path) -> tuple[list[Server], Any]:
    """Obtain and start one server under ``workdir``, timed; return its processes and endpoint."""
    kind = SERVERS[name]
    obtain(name)
    with TIMINGS.measure("start", name):
        servers, endpoint = kind.start(workdir)
    return (servers if isinstance(servers, list) else [servers]), endpoint


def running(name: str) -> Any | None:
    """The endpoint of a server ``tongxing-dev up`` left running, if it still answers."""
    entry = read_state().get(name)
    if entry is None or not all(alive(pid) for pid in entry["pids"]):
        return None
    kind = SERVERS[name]
    endpoint = kind.endpoint(**entry["endpoint"])
    try:
        kind.check(endpoint)
    except ComponentError:
        return None
    TIMINGS.reused.add(name)
    return endpoint


def up(names: list[str]) -> dict[str, Any]:
    """Start the named servers detached (those not already running) and record them."""
    state = read_state()
    endpoints: dict[str, Any] = {}
    for name in names:
        if name in TOOLS:
            obtain(name)
            continue
        endpoint = running(name)
        if endpoint is None:
            workdir = server_dir(name)
            shutil.rmtree(workdir, ignore_errors=True)
            servers, endpoint = start(name, workdir)
            state[name] = {
                "pids": [s.pid for s in servers],
                "endpoint": dataclasses.asdict(endpoint),
                "workdir": str(workdir),
            }
            write_state(state)
        endpoints[name] = endpoint
    return endpoints


def down(names: list[str]) -> list[str]:
    """Stop the named recorded servers and delete their working folders."""
    state = read_state()
    stopped = []
    for name in names:
        entry = state.pop(name, None)
        if entry is None:
            continue
        for pid in entry["pids"]:
            stop_group(pid)
        with contextlib.suppress(KeyError):
            shutil.rmtree(entry["workdir"], ignore_errors=True)
        stopped.append(name)
    write_state(state)
    return stopped
