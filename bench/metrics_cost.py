"""What the metrics cost per request (issue 14): 2,000 requests to ``/healthz`` through one
gateway application with its request hooks and through the same application with them taken
off, interleaved in the same run, in the ordinary registry and in multiprocess mode (the mode of
``--workers``: every observation is a write to a memory-mapped file). Prints the difference; a
measurement, not a test (README "Benchmarks"): ``python -m bench.metrics_cost``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REQUESTS = 2000
ROUNDS = 10

MEASURE = r"""
import json, secrets, sys, time
from pathlib import Path
from gateway.app import create_app
from gateway.services import build_services
from gateway.settings import Settings
from gateway import request_metrics

data = Path(sys.argv[1])
settings = Settings.model_validate({
    "issuer": "https://tongxing.example.cn", "data_dir": data, "create_keys": True,
    **{f"{n}_{'token' if n == 'admin' else 'secret'}": secrets.token_urlsafe(32)
       for n in ("national", "pairwise", "admin", "session", "mfa")},
})
services = build_services(settings)
measured = create_app(services=services)
bare = create_app(services=services)
# The same application without the request hooks: what instrument() added, taken off again.
bare.before_request_funcs[None].remove(request_metrics._start)
bare.after_request_funcs[None].remove(request_metrics._finish)
clients = {"with": measured.test_client(), "without": bare.test_client()}
per_round = int(sys.argv[2]) // int(sys.argv[3])
totals = {"with": 0.0, "without": 0.0}
for name, client in clients.items():  # warm up
    for _ in range(50):
        client.get("/healthz")
for _ in range(int(sys.argv[3])):
    for name, client in clients.items():
        started = time.perf_counter()
        for _ in range(per_round):
            assert client.get("/healthz").status_code == 200
        totals[name] += time.perf_counter() - started
services.close()
print(json.dumps(totals))
"""


def measure(mode: str) -> tuple[float, float]:
    """Seconds per request with and without the metrics hooks, in ``mode``."""
    with tempfile.TemporaryDirectory(prefix="tongxing-metrics-cost-") as folder:
        data = Path(folder)
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        if mode == "multiprocess":
            (data / "metrics").mkdir()
            env["PROMETHEUS_MULTIPROC_DIR"] = str(data / "metrics")
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", MEASURE, str(data), str(REQUESTS), str(ROUNDS)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    totals = json.loads(done.stdout.splitlines()[-1])
    return totals["with"] / REQUESTS, totals["without"] / REQUESTS


def main() -> None:
    for mode in ("one process", "multiprocess"):
        with_, without = measure(mode)
        print(
            f"{mode}: {REQUESTS} requests to /healthz: with metrics {with_ * 1e6:.0f} µs, "
            f"without {without * 1e6:.0f} µs per request: {(with_ - without) * 1e6:+.0f} µs"
        )


if __name__ == "__main__":
    main()
