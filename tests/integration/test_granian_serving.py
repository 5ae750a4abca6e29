"""granian as ``tongxing serve`` runs it (:func:`gateway.wsgi.serve_granian`), on a real socket:
what a request's ``environ`` holds, and how a worker stops.

A small WSGI application stands in for the gateway here so that the test can see what the server
hands an application (the gateway itself shows no ``environ``) and hold a request open while the
server is told to stop; ``tongxing serve`` with the gateway itself is tested in
``test_serve_workers.py``, ``test_metrics_workers.py`` and ``test_serve_tls.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tongxing_dev.process import free_port

SECRET = "marker-of-a-secret-in-the-process-environment"

APP = """
import sys, time
from gateway.wsgi import Listen, exit_on_sigterm, serve_granian

def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(float(environ["QUERY_STRING"]))
    body = "\\n".join(f"{key}={value!r}" for key, value in sorted(environ.items())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

exit_on_sigterm()
serve_granian(app, Listen("127.0.0.1", int(sys.argv[1]), threads=2))
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {**os.environ, "TONGXING_NATIONAL_SECRET": SECRET}
    with (tmp_path / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", APP, str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url, timeout=1)
            break
        except requests.RequestException:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / "stderr").read_text()) from None
            time.sleep(0.1)
    try:
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_a_request_environ_holds_the_request_and_not_the_process_environment(
    served: tuple[subprocess.Popen[bytes], str],
) -> None:
    """granian's own wrapper copies ``os.environ`` into every ``environ``: the gateway's secrets
    would reach whatever logs or renders one (THREAT_MODEL row 8). Ours does not."""
    _, url = served
    answer = requests.post(f"{url}/token?x=1", data={"a": "b"}, timeout=5)
    assert answer.status_code == 200
    assert SECRET not in answer.text
    keys = {line.split("=", 1)[0] for line in answer.text.splitlines()}
    assert not {k for k in keys if k.startswith("TONGXING_")}
    assert not keys & {"PATH", "HOME"}
    cgi = {
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "REMOTE_ADDR",
    }
    assert cgi <= keys  # PEP 3333's required variables
    assert {k for k in keys if not k.startswith(("HTTP_", "wsgi.", "CONTENT_"))} <= cgi | {
        "GATEWAY_INTERFACE",
        "SERVER_SOFTWARE",
    }
    assert "PATH_INFO='/token'" in answer.text
    assert "QUERY_STRING='x=1'" in answer.text
    assert "SERVER_SOFTWARE='tongxing'" in answer.text


def test_sigterm_lets_accepted_requests_finish_and_refuses_new_ones(
    served: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, url = served
    answers: list[requests.Response] = []
    slow = threading.Thread(
        target=lambda: answers.append(requests.get(f"{url}/slow?2", timeout=30)), daemon=True
    )
    slow.start()
    time.sleep(0.7)  # the request is in the application now
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)
    slow.join(timeout=30)
    assert [a.status_code for a in answers] == [200]
    assert process.wait(timeout=20) == 0
