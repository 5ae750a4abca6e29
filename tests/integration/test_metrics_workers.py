"""``/metrics`` under ``tongxing serve --workers 2``: one scrape of either worker reports the sum
over both (prometheus-client's multiprocess mode, gateway/metrics.py), and the directory of
per-worker files is fresh per server start and gone after it."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from tongxing_dev.process import free_port

from gateway.settings import Settings

TONGXING = Path(sys.executable).with_name("tongxing")
JWKS = {"endpoint": "discovery.jwks", "status": "200"}


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


def _serve(tmp_path: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGXING_")}
    env |= {
        "TONGXING_ISSUER": f"http://127.0.0.1:{port}",
        "TONGXING_INSECURE_ALLOW_HTTP": "true",
        "TONGXING_DATA_DIR": str(tmp_path / "data"),
        "TONGXING_CREATE_KEYS": "true",
        # The multiprocess directory is made under TMPDIR: here, where the test can look.
        "TMPDIR": str(tmp_path / "tmp"),
        # A directory left from elsewhere must not be used: the serve command makes its own.
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "stale"),
    }
    (tmp_path / "tmp").mkdir()
    (tmp_path / "stale").mkdir()
    for name, field in Settings.model_fields.items():
        if field.is_required() and name != "issuer":
            env[f"TONGXING_{name.upper()}"] = secrets.token_urlsafe(32)
    process = subprocess.Popen(
        [str(TONGXING), "serve", "--port", str(port), "--workers", str(workers), "--threads", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(f"{url}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    _wait_for(lambda: ready() and len(_children(process.pid)) == (workers if workers > 1 else 0))
    return process, url


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    process, url = _serve(tmp_path, 2)
    try:
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        for child in _children(process.pid):
            os.kill(child, signal.SIGKILL)
        process.wait(timeout=10)


def _scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> labels -> value, from one scrape (a new connection: any worker may answer)."""
    answer = requests.get(f"{url}/metrics", timeout=5, headers={"Connection": "close"})
    assert answer.status_code == 200
    values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            values.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return values


def _jwks_count(values: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> float:
    return values.get("tongxing_http_requests_total", {}).get(tuple(sorted(JWKS.items())), 0.0)


def _shares(directory: Path, workers: set[int]) -> list[float]:
    """Each worker's own count of /jwks requests, read from its file."""
    shares = []
    for pid in workers:
        (file,) = directory.glob(f"counter_{pid}.db")
        merged = MultiProcessCollector.merge([str(file)])  # type: ignore[no-untyped-call]
        shares.append(
            sum(
                s.value
                for m in merged
                if m.name == "tongxing_http_requests"
                for s in m.samples
                if s.labels == JWKS
            )
        )
    return shares


def test_one_scrape_of_any_worker_reports_the_sum_over_workers(
    two_workers: tuple[subprocess.Popen[bytes], str], tmp_path: Path
) -> None:
    process, url = two_workers
    workers = _children(process.pid)
    (directory,) = (tmp_path / "tmp").glob("tongxing-metrics-*")
    assert not any((tmp_path / "stale").iterdir()), "an inherited directory was used"
    # A new connection each time: the workers take turns to accept, though not strictly (the
    # kernel may hand a burst to one). Send in rounds of 40 until each worker has served some,
    # at most 400 requests (bounded), then check each share and their sum.
    sent = 0
    shares: list[float] = []
    while sent < 400:
        for _ in range(40):
            answer = requests.get(f"{url}/jwks", timeout=5, headers={"Connection": "close"})
            assert answer.status_code == 200
        sent += 40
        shares = _shares(directory, workers)
        if all(share > 0 for share in shares):
            break
    assert all(share > 0 for share in shares), f"one worker served everything: {shares}"
    assert sum(shares) == sent

    # Every scrape, whichever worker answers it, reports the sum over both.
    for _ in range(12):
        values = _scrape(url)
        assert _jwks_count(values) == sent
        # The histogram counts agree with the counter, summed the same way.
        timed = values["tongxing_http_request_duration_seconds_count"]
        assert timed[(("endpoint", "discovery.jwks"),)] == sent
        # The store's statements of both workers (readiness checks, at least) are there too.
        assert sum(values["tongxing_store_statement_duration_seconds_count"].values()) > 0
        # Both workers run the same policy set: one digest at 1.
        digests = [v for v in values["tongxing_policy_set_info"].values() if v == 1]
        assert len(digests) == 1

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert not directory.exists(), "the multiprocess directory outlived the server"


def test_one_process_uses_the_ordinary_registry(tmp_path: Path) -> None:
    process, url = _serve(tmp_path, 1)
    try:
        for _ in range(5):
            assert requests.get(f"{url}/jwks", timeout=5).status_code == 200
        values = _scrape(url)
        assert _jwks_count(values) == 5
        # The ordinary registry carries the process collector; the multiprocess one does not.
        assert "process_cpu_seconds_total" in values
        assert not list((tmp_path / "tmp").glob("tongxing-metrics-*"))
        assert not any((tmp_path / "stale").iterdir())
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
