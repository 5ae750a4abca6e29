"""Serving a WSGI application: granian in production, waitress as a fallback, Werkzeug's server
for loopback only.

The gateway is a plain WSGI application (:func:`gateway.app.create_app`). ``tongxing serve`` runs
it with granian (:func:`serve_granian`): HTTP/1.1 and HTTP/2 parsing, keep-alive and TLS in Rust
(hyper, rustls), the application on a pool of Python threads. Measured on the benchmark it costs
less CPU per request than waitress, whose pure-Python header parsing was a third of the gateway's
samples (bench/README.md). ``--server waitress`` keeps waitress, a pure-Python server with a
thread pool, for a platform where granian's wheel cannot be installed. Werkzeug's development
server is kept behind ``--insecure-dev-server`` for machines where neither is installed, and
refuses to listen anywhere but on loopback.

One Python process runs Python code on one core at a time (the GIL), however many threads it
has. ``--workers N`` forks N server processes that accept on one listening socket (the model
of gunicorn's pre-fork workers): on a replica with several cores, each worker gets one. The
parent binds the socket, forks, and then only supervises: it passes SIGTERM and SIGINT on to the
workers, and when a worker dies it stops the others and exits non-zero, so that Kubernetes
restarts the pod rather than a replica limping on with fewer workers.

Metrics under ``--workers``: each worker counts in its own process, so the parent first makes a
fresh directory for prometheus-client's multiprocess files (:func:`multiprocess_metrics_dir`),
the workers inherit it, and the parent marks a worker dead when it exits
(``prometheus_client.multiprocess.mark_process_dead``); ``/metrics`` merges them
(:mod:`gateway.metrics`).
"""

from __future__ import annotations

import contextlib
import importlib
import ipaddress
import logging
import os
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, NoReturn, Protocol

from werkzeug.serving import BaseWSGIServer, make_server

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ServerUnavailableError(Exception):
    """The requested WSGI server cannot run here; the message says what to do instead."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SERVERS = ("granian", "waitress")

# A token, logout or admin request is small: bodies beyond this are refused (413) before a view
# reads them, whichever server runs the application.
MAX_REQUEST_BODY = 1024 * 1024

# How long a stopping worker lets the requests it has accepted finish (SIGTERM: Kubernetes gives
# a pod 30 s by default before SIGKILL; the rest is for the parent and the store's close).
DRAIN_SECONDS = 20.0


def load_granian() -> ModuleType:
    """granian's compiled server, imported on demand so that everything else works without it."""
    try:
        return importlib.import_module("granian._granian")
    except ImportError:
        raise ServerUnavailableError(
            "granian is not installed (pip install 'granian==2.8.7'); --server waitress runs "
            "waitress instead, and on a loopback development machine --insecure-dev-server "
            "runs Werkzeug's server"
        ) from None


def load_waitress() -> ModuleType:
    """waitress, imported on demand so that everything else works without it."""
    try:
        return importlib.import_module("waitress")
    except ImportError:
        raise ServerUnavailableError(
            "waitress is not installed (pip install 'waitress>=3.0.2,<4'); on a loopback "
            "development machine --insecure-dev-server runs Werkzeug's server instead"
        ) from None


class Throttle(logging.Filter):
    """Let one record through per ``interval`` seconds; say how many were held back meanwhile.

    waitress logs "Task queue depth is N" for every request that finds no idle thread, under its
    dispatcher lock: once a replica is saturated that is one log line per request, written while
    the worker threads wait for the lock, so the warning itself slows the replica it reports on.
    One line every few seconds says the same thing.
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next = float("-inf")
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._held += 1
                return False
            self._next = now + self.interval
            held, self._held = self._held, 0
        if held:
            record.msg = f"{record.msg} (and {held} more in the last {self.interval:.0f} s)"
        return True


QUEUE_WARNINGS = Throttle()


@dataclass(frozen=True)
class Tls:
    """A certificate chain and its private key (PEM files) to serve HTTPS with."""

    certificate: Path
    key: Path

    def check(self) -> None:
        """Load the pair once with Python's ``ssl``: a missing, unreadable or mismatched file is
        an error at start-up naming the file, not a worker that dies when it loads them."""
        for path in (self.certificate, self.key):
            if not path.is_file():
                raise ServerUnavailableError(f"TLS file {path}: does not exist")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            # An encrypted key is refused rather than prompted for on a terminal.
            context.load_cert_chain(self.certificate, self.key, password=lambda: b"")
        except (ssl.SSLError, OSError) as error:
            raise ServerUnavailableError(
                f"cannot use the TLS certificate {self.certificate} with the key {self.key}: "
                f"{getattr(error, 'reason', None) or error}"
            ) from None


@dataclass(frozen=True)
class Listen:
    """Where and how to serve."""

    host: str
    port: int
    threads: int = 8
    workers: int = 1
    server: str = "granian"
    tls: Tls | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


def serve_waitress(
    app: WsgiApp, listen: Listen, sockets: list[socket.socket] | None = None
) -> None:
    """Serve ``app`` with waitress until the process is told to stop (SIGINT/SIGTERM).

    waitress reads no ``X-Forwarded-*`` header unless ``trusted_proxy`` is set; the gateway does
    that itself with Werkzeug's ``ProxyFix`` and an explicit hop count (``TONGXING_PROXY_HOPS``),
    so waitress is left at its default and the headers reach the application untouched.
    """
    waitress = load_waitress()
    logging.getLogger("waitress.queue").addFilter(QUEUE_WARNINGS)
    log.info(
        "serving on http://%s:%d with waitress (%d threads)",
        listen.host,
        listen.port,
        listen.threads,
    )
    where: dict[str, Any] = (
        {"sockets": sockets} if sockets else {"host": listen.host, "port": listen.port}
    )
    waitress.serve(
        app,
        **where,
        threads=listen.threads,
        ident="tongxing",
        # A token or logout request is small: refuse huge bodies before the app sees them.
        max_request_body_size=1024 * 1024,
    )


class _Status:
    """The ``start_response`` of one request: keeps the status code and headers for granian."""

    __slots__ = ("code", "headers")

    def __init__(self) -> None:
        self.code = 500
        self.headers: list[tuple[str, str]] = []

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], object]:
        self.code = int(status.split(" ", 1)[0])
        self.headers = headers
        return _no_write


def _no_write(_data: bytes) -> object:
    raise NotImplementedError("the gateway's views return their bodies; write() is not offered")


class _Protocol(Protocol):
    """What granian hands the callback for one request (its ``WSGIProtocol``)."""

    def response_bytes(
        self, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None: ...  # pragma: no cover - the Rust side


def granian_callback(app: WsgiApp) -> Callable[[_Protocol, dict[str, Any]], int]:
    """The per-request callback granian's worker calls on one of its Python threads.

    PEP 3333's ``environ`` is granian's scope (method, path, headers, ``wsgi.input``...) plus the
    constant keys below, and nothing else: granian's own wrapper copies the whole process
    environment into every request's ``environ``, which here holds the ``TONGXING_*`` secrets
    (THREAT_MODEL row 8: they would reach anything that logs or renders an environ). The body is
    collected and sent in one piece (the gateway's answers are small and none is a stream), and
    the application's iterable is closed as PEP 3333 asks, which runs Flask's teardown.
    """
    constant: dict[str, Any] = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SCRIPT_NAME": "",
        "SERVER_SOFTWARE": "tongxing",
        "wsgi.errors": sys.stderr,
        # Werkzeug reads a body without Content-Length (chunked) only when the server says the
        # stream ends; granian's does.
        "wsgi.input_terminated": True,
        "wsgi.multiprocess": False,
        "wsgi.multithread": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }

    def respond(proto: _Protocol, scope: dict[str, Any]) -> int:
        status = _Status()
        body = app(constant | scope, status)
        try:
            data = b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        proto.response_bytes(status.code, status.headers, data)
        return status.code

    return respond


def serve_granian(app: WsgiApp, listen: Listen, sock: socket.socket | None = None) -> None:
    """Serve ``app`` with granian in this process until it is told to stop (SIGINT/SIGTERM).

    One granian WSGI worker, as granian's own process supervisor starts in each of its worker
    processes (``granian.server.mp``): its Rust side accepts on ``sock`` (bound here if not
    given), parses HTTP/1.1 and HTTP/2 (with ``listen.tls``, TLS 1.2 or 1.3 by rustls), and runs
    the application on ``listen.threads`` Python threads, at most that many requests at once; the
    rest wait in Rust, not in Python. ``tongxing serve`` keeps its own supervisor
    (:func:`serve_workers`) so that one worker serves in-process and a dead worker stops the
    replica, as with waitress.

    On SIGTERM or SIGINT the worker stops accepting, lets the requests it accepted finish (at
    most :data:`DRAIN_SECONDS`) and returns. If the server stops on its own, that is an error
    (``SystemExit(1)``): the supervisor, or Kubernetes, restarts the replica.

    granian reads no ``X-Forwarded-*`` header; the gateway does that itself with Werkzeug's
    ``ProxyFix`` and an explicit hop count (``TONGXING_PROXY_HOPS``), as with waitress.
    """
    native = load_granian()
    from granian._futures import _new_cbscheduler
    from granian._loops import loops
    from granian.http import HTTP1Settings

    own = sock is None
    if sock is None:
        sock = listening_socket(listen.host, listen.port)
    tls = listen.tls
    ssl_context: tuple[object, ...] = (
        (True, str(tls.certificate), str(tls.key), None, "tls1.2", None, [], False)
        if tls
        else (False, None, None, None, "tls1.3", None, [], False)
    )
    stop = native.WorkerSignal()
    drained = threading.Event()
    stop.add_cb(drained.set)  # run by granian once the server has stopped and drained
    worker = native.WSGIWorker(
        os.getpid(),  # the worker id in granian's own log lines ("Stopping worker-<pid>")
        # granian takes the descriptor it is given and closes it when it stops: a copy of ours.
        (None, native.SocketHolder(os.dup(sock.fileno()), False, 1024)),
        None,  # no IPC: granian's metrics exporter is not used (the gateway has /metrics)
        1,  # runtime threads: the Rust I/O event loop, one per worker
        512,  # Rust threads for blocking I/O (granian's default)
        listen.threads,  # Python threads that run the application
        30,  # seconds an idle Python thread is kept
        listen.threads,  # backpressure: requests handed to Python at once
        "auto",  # HTTP/1.1, and HTTP/2 (prior knowledge, or ALPN under TLS)
        HTTP1Settings(),
        None,  # granian's HTTP/2 defaults
        None,  # no static files
        *ssl_context,
        (None, None),  # no metrics collection
    )
    loop = loops.get("auto")
    scheduler = _new_cbscheduler(  # type: ignore[no-untyped-call]
        loop, granian_callback(app), impl_asyncio=True
    )
    log.info(
        "serving on %s://%s:%d with granian (%d threads)",
        listen.scheme,
        listen.host,
        sock.getsockname()[1],
        listen.threads,
    )
    try:
        worker.serve_mtr(scheduler, loop, stop)
        try:
            drained.wait()
        finally:  # told to stop (SystemExit from SIGTERM, KeyboardInterrupt), or stopped alone
            stop.set()
            if not drained.wait(DRAIN_SECONDS):
                log.warning("requests still running after %.0f s of draining", DRAIN_SECONDS)
    finally:
        if own:
            sock.close()
    log.error("the granian server stopped on its own")
    raise SystemExit(1)


def exit_on_sigterm() -> None:
    """SIGTERM (Kubernetes stopping the pod, ``kill``) unwinds like Ctrl-C: ``finally`` runs.

    The handler only raises: it takes no lock, so it cannot deadlock with the code it
    interrupts (setting a ``threading.Event`` the main thread waits on can: the handler runs on
    the main thread, which may be holding the event's lock at that moment).
    """

    def stop(_signum: int, _frame: FrameType | None) -> NoReturn:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


def listening_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A bound, listening TCP socket for ``host:port`` (IPv4 or IPv6, as the host says)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    return socket.create_server((host, port), family=family, backlog=backlog)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_metrics_dir() -> Path:
    """A new, empty directory for prometheus-client's multiprocess files, named in
    ``PROMETHEUS_MULTIPROC_DIR`` for this process and the workers it forks.

    Fresh per server start: files left by an earlier start would be summed into this one's
    counters. prometheus-client chooses per-process or multiprocess values when it is first
    imported, so this must run before that; it refuses otherwise rather than let each worker
    report only itself.
    """
    if "prometheus_client.values" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the metrics directory was set")
    path = Path(tempfile.mkdtemp(prefix="tongxing-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def serve_workers(
    run_worker: Callable[[socket.socket], None],
    listen: Listen,
    metrics_dir: Path | None = None,
) -> int:
    """Fork ``listen.workers`` processes that each run ``run_worker`` on one shared socket.

    Returns the exit status for the parent: 0 when it was told to stop, 1 when a worker died on
    its own. Call it before any thread is started: a forked child has only the forking thread.
    With ``metrics_dir`` (:func:`multiprocess_metrics_dir`), each worker that exits is marked
    dead there, so its live gauges leave the merged metrics.
    """
    sock = listening_socket(listen.host, listen.port)
    log.info(
        "serving on %s://%s:%d with %d %s workers (%d threads each)",
        listen.scheme,
        listen.host,
        sock.getsockname()[1],
        listen.workers,
        listen.server,
        listen.threads,
    )
    children: set[int] = set()
    for _ in range(listen.workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which never returns here
            _run_child(run_worker, sock)
        children.add(pid)
    sock.close()
    return _supervise(children, _metrics_bookkeeping(metrics_dir))


def _metrics_bookkeeping(metrics_dir: Path | None) -> Callable[[int], None]:
    if metrics_dir is None:
        return lambda _pid: None
    from prometheus_client.multiprocess import mark_process_dead

    return lambda pid: mark_process_dead(pid, str(metrics_dir))  # type: ignore[no-untyped-call]


def _run_child(run_worker: Callable[[socket.socket], None], sock: socket.socket) -> None:
    status = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        run_worker(sock)
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 1
    except KeyboardInterrupt:
        status = 0
    except BaseException:
        log.exception("gateway worker %d failed", os.getpid())
        status = 1
    finally:
        logging.shutdown()
        os._exit(status)


def _supervise(children: set[int], exited: Callable[[int], None] = lambda _pid: None) -> int:
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        while children:
            try:
                pid, _ = os.wait()
            except ChildProcessError:
                break
            children.discard(pid)
            exited(pid)
            if not stopping:
                log.error("gateway worker %d exited; stopping the others", pid)
                status = 1
                stop(signal.SIGTERM, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def serve_insecure_dev_server(app: WsgiApp, listen: Listen) -> None:
    """Werkzeug's threaded development server, on loopback only."""
    if not is_loopback(listen.host):
        raise ServerUnavailableError(
            f"--insecure-dev-server listens on loopback only, not on {listen.host}"
        )
    log.warning("serving with Werkzeug's development server: not for production")
    server = werkzeug_server(listen.host, listen.port, app)
    log.info("serving on http://%s:%d", listen.host, server.server_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def werkzeug_server(host: str, port: int, app: WsgiApp) -> BaseWSGIServer:
    """Werkzeug's threaded server bound to ``host:port`` (0: any free port), not yet serving."""
    try:
        return make_server(host, port, app, threaded=True)
    except SystemExit:
        # Werkzeug prints why (port in use, permission) and exits; a caller wants an error.
        raise ServerUnavailableError(f"cannot listen on {host}:{port}") from None
