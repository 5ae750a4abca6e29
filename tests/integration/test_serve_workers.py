"""``tongxing serve --workers N``: N waitress processes on one port, supervised by the parent."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from tongxing_dev.process import free_port

from gateway.keys import KEY_FILE_CHECK_INTERVAL, load_key_ring, save_key_ring
from gateway.settings import Settings

TONGXING = Path(sys.executable).with_name("tongxing")


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            continue
    return found


def _wait_for(condition: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``tongxing serve --workers 2`` on a free port, its data (and key file) in ``tmp_path``."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGXING_")}
    env |= {
        "TONGXING_ISSUER": f"http://127.0.0.1:{port}",
        "TONGXING_INSECURE_ALLOW_HTTP": "true",
        "TONGXING_DATA_DIR": str(tmp_path),
        "TONGXING_CREATE_KEYS": "true",
    }
    for name, field in Settings.model_fields.items():
        if field.is_required() and name != "issuer":
            env[f"TONGXING_{name.upper()}"] = secrets.token_urlsafe(32)
    process = subprocess.Popen(
        [str(TONGXING), "serve", "--port", str(port), "--workers", "2", "--threads", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(f"{url}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        _wait_for(lambda: ready() and len(_children(process.pid)) == 2)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        for child in _children(process.pid):
            os.kill(child, signal.SIGKILL)
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def test_two_workers_answer_on_one_port_and_stop_with_the_parent(
    served: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, url = served
    workers = _children(process.pid)
    assert len(workers) == 2
    before = {pid: _cpu_ticks(pid) for pid in workers}
    for _ in range(60):  # a new connection each time: the workers take turns to accept
        answer = requests.get(f"{url}/.well-known/openid-configuration", timeout=5)
        assert answer.status_code == 200
    assert all(_cpu_ticks(pid) > before[pid] for pid in workers)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)


def test_every_worker_follows_a_rotated_key_file_without_a_restart(
    served: tuple[subprocess.Popen[bytes], str], tmp_path: Path
) -> None:
    process, url = served
    path = tmp_path / "keys.json"
    ring = load_key_ring(path)
    ring.rotate(datetime.now(UTC), timedelta(hours=1))
    new_next = {key.kid for key in ring.keys if key.state == "next"}
    staged = tmp_path / "keys.json.new"
    save_key_ring(ring, staged)
    staged.replace(path)  # swapped in at once, as a Secret update swaps its files

    def published() -> set[str]:
        # A new connection each time: both workers answer in turn.
        return {key["kid"] for key in requests.get(f"{url}/jwks", timeout=5).json()["keys"]}

    _wait_for(
        lambda: all(new_next <= published() for _ in range(10)),
        timeout=KEY_FILE_CHECK_INTERVAL + 20,
    )
    assert process.poll() is None  # no restart


def test_a_worker_that_dies_takes_the_replica_down(
    served: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, _ = served
    first, second = sorted(_children(process.pid))
    os.kill(first, signal.SIGKILL)
    assert process.wait(timeout=20) == 1
    _wait_for(lambda: not Path(f"/proc/{second}").exists() or _zombie(second), timeout=10)


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
