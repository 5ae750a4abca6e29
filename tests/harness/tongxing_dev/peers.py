"""Independent protocol peers from npm: openid-client (a portal) and oidc-provider (an upstream).

Their versions are pinned by ``tests/peers/package-lock.json``; ``npm ci`` installs them once per
lockfile digest (npm's own cache, outside the repository, makes a re-install quick).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import requests

from tongxing_dev.cache import cache_dir, file_digest
from tongxing_dev.errors import ComponentError
from tongxing_dev.process import LOOPBACK, Server, free_port, run

COMPONENT = "node-peers"
PEERS = Path(__file__).resolve().parent.parent.parent / "peers"


def obtain() -> Path:
    """``npm ci`` the peers unless the installed tree already matches the lockfile."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise ComponentError(COMPONENT, "Node.js and npm are not installed")
    lock = PEERS / "package-lock.json"
    stamp = PEERS / "node_modules" / ".tongxing-lock-digest"
    digest = file_digest(lock, PEERS / "package.json")
    if stamp.exists() and stamp.read_text() == digest:
        return PEERS
    run(
        COMPONENT,
        ["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"],
        cwd=PEERS,
        log=cache_dir() / "logs" / "npm-ci.log",
        timeout=600,
    )
    stamp.write_text(digest)
    return PEERS


def rp(*args: str, timeout: float = 30) -> Any:
    """Run ``rp.mjs`` (openid-client) with ``args``; return the JSON it prints."""
    try:
        done = subprocess.run(
            ["node", str(PEERS / "rp.mjs"), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=PEERS,
        )
    except subprocess.TimeoutExpired as exc:
        raise ComponentError(COMPONENT, f"rp.mjs {' '.join(args)} timed out") from exc
    if done.returncode != 0:
        raise ComponentError(COMPONENT, f"rp.mjs {' '.join(args)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def start_op(workdir: Path, client: dict[str, Any] | None = None) -> tuple[Server, str]:
    """Start ``op.mjs`` (oidc-provider) on a free loopback port; return it and its issuer."""
    port = free_port()
    issuer = f"http://{LOOPBACK}:{port}"
    argv = ["node", str(PEERS / "op.mjs"), str(port)]
    if client is not None:
        argv.append(json.dumps(client))
    server = Server("oidc-provider", argv, log=workdir / f"oidc-provider-{port}.log", cwd=PEERS)

    def discovery_served() -> bool:
        url = f"{issuer}/.well-known/openid-configuration"
        return requests.get(url, timeout=2).status_code == 200

    server.wait_until(discovery_served, timeout=30, what="serving discovery")
    return server, issuer
