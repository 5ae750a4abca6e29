"""``tongxing serve``: the gateway from ``TONGXING_*`` settings, with granian (or waitress)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from gateway.cli.base import EXIT_USAGE, CliError, Commands, env_name, port, positive
from gateway.keys import KeyFileError
from gateway.settings import Settings
from gateway.wsgi import (
    MAX_REQUEST_BODY,
    MULTIPROC_ENV,
    SERVERS,
    Listen,
    ServerUnavailableError,
    Tls,
    WsgiApp,
    exit_on_sigterm,
    load_granian,
    load_waitress,
    multiprocess_metrics_dir,
)

if TYPE_CHECKING:
    from flask import Flask

    from gateway.services import Services


# --- settings ----------------------------------------------------------------------------------


def describe_settings_error(error: ValidationError) -> str:
    """The missing ``TONGXING_`` variables, then one line per invalid one; never a value."""
    missing: list[str] = []
    invalid: list[str] = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        location = item["loc"]
        if item["type"] == "missing" and location:
            missing.append(env_name(location[0]))
        elif location:
            invalid.append(f"invalid setting {env_name(location[0])}: {item['msg']}")
        else:  # a rule across settings (the issuer's scheme and the insecure switch)
            invalid.append(f"invalid settings: {item['msg']}")
    lines = []
    if missing:
        lines.append(f"missing settings: {', '.join(sorted(missing))}")
    return "\n".join([*lines, *invalid])


def load_settings() -> Settings:
    """The gateway's settings from the environment, or a :class:`CliError` naming the problem."""
    try:
        return Settings()  # type: ignore[call-arg]  # the values come from TONGXING_*
    except ValidationError as error:
        raise CliError(describe_settings_error(error), EXIT_USAGE) from None
    except SettingsError as error:  # a value that cannot even be parsed; names the field only
        raise CliError(str(error), EXIT_USAGE) from None


def _database_problem(settings: Settings, error: SQLAlchemyError) -> str:
    if isinstance(error, ArgumentError):
        return f"{env_name('database_url')} is not a valid SQLAlchemy URL"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    try:
        password = make_url(settings.sqlalchemy_url).password
    except ArgumentError:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return f"cannot open the store ({type(error).__name__}): {text[:300]}"


# --- serve -------------------------------------------------------------------------------------


LOG_FORMATS = ("json", "text")


def configure_logging(level: str, log_format: str = "text") -> None:
    """One handler on the root logger, on standard error: JSON lines (:mod:`gateway.logs`, for
    a log collector) or readable text lines with the same fields (the demo and development)."""
    from gateway.logs import JsonLineFormatter, TextLineFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JsonLineFormatter() if log_format == "json" else TextLineFormatter())
    logging.basicConfig(level=getattr(logging, level), handlers=[handler])
    # Authlib's DEBUG lines carry the tokens it issues and the requests it validates (codes,
    # client secrets in a form): never written, even under --log-level DEBUG (THREAT_MODEL row 8).
    logging.getLogger("authlib").setLevel(logging.INFO)
    if level != "DEBUG":
        # Alembic narrates every plugin and migration step at INFO: one line per start is enough.
        logging.getLogger("alembic").setLevel(logging.WARNING)


def command_serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format)
    if (args.tls_certificate is None) != (args.tls_key is None):
        raise CliError("--tls-certificate and --tls-key go together", EXIT_USAGE)
    tls = Tls(args.tls_certificate, args.tls_key) if args.tls_certificate else None
    if tls is not None and (args.server != "granian" or args.insecure_dev_server):
        raise CliError(
            "--tls-certificate is served by granian only (not with --server waitress "
            "or --insecure-dev-server)",
            EXIT_USAGE,
        )
    listen = Listen(args.host, args.port, args.threads, args.workers, args.server, tls)
    forking = listen.workers > 1 and not args.insecure_dev_server
    # Before anything imports prometheus-client (gateway.app does): it picks per-process or
    # multiprocess values at import. One process: the ordinary registry, whatever was inherited.
    os.environ.pop(MULTIPROC_ENV, None)
    metrics_dir = multiprocess_metrics_dir() if forking else None
    try:
        return _serve(args, listen, metrics_dir)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve(args: argparse.Namespace, listen: Listen, metrics_dir: Path | None) -> int:
    from gateway.app import create_app
    from gateway.services import build_services
    from gateway.wsgi import serve_insecure_dev_server, serve_workers

    if not args.insecure_dev_server:
        # Fail before opening anything.
        try:
            load_granian() if listen.server == "granian" else load_waitress()
            if listen.tls is not None:
                listen.tls.check()
        except ServerUnavailableError as error:
            raise CliError(str(error)) from None
    settings = load_settings()
    services = open_services(settings, build_services)
    if metrics_dir is not None:
        # The store is migrated and the key file made once, here; each worker opens its own.
        services.close()

        def run_worker(sock: socket.socket) -> None:
            worker_services = open_services(settings, build_services)
            try:
                exit_on_sigterm()
                production_server(listen)(
                    app_for(create_app(services=worker_services)), listen, sock
                )
            finally:
                worker_services.close()

        try:
            return serve_workers(run_worker, listen, metrics_dir)
        except OSError as error:
            raise CliError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    try:
        app = app_for(create_app(services=services))
        exit_on_sigterm()
        if args.insecure_dev_server:
            serve_insecure_dev_server(app, listen)
        else:
            production_server(listen)(app, listen, None)
    except OSError as error:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    finally:
        services.close()
    return 0


def app_for(app: Flask) -> Flask:
    """The application as every server runs it: bodies over :data:`MAX_REQUEST_BODY` are
    refused with 413 when a view reads them, also those sent without a length (chunked).
    waitress refuses them itself as well; granian has no limit of its own."""
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BODY
    return app


def production_server(listen: Listen) -> Callable[[WsgiApp, Listen, socket.socket | None], None]:
    """The serving function of ``--server``: each takes the app, where to listen and, in a
    forked worker, the parent's listening socket."""
    from gateway.wsgi import serve_granian, serve_waitress

    if listen.server == "waitress":
        return lambda app, where, sock: serve_waitress(app, where, [sock] if sock else None)
    return serve_granian


def open_services(settings: Settings, build: Callable[[Settings], Services]) -> Services:
    try:
        return build(settings)
    except KeyFileError as error:
        raise CliError(str(error)) from None
    except SQLAlchemyError as error:
        raise CliError(_database_problem(settings, error)) from None
    except OSError as error:
        raise CliError(f"cannot prepare {settings.data_dir}: {error.strerror}") from None


def add_parser(commands: Commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the gateway (settings from TONGXING_* variables)",
        description="Run the gateway with granian (or waitress). Settings come from the "
        "TONGXING_* environment variables (TONGXING_ISSUER, TONGXING_NATIONAL_SECRET, ...).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on [127.0.0.1]")
    serve.add_argument("--port", type=port, default=8080, help="port to listen on [8080]")
    serve.add_argument("--threads", type=positive, default=8, help="threads per worker [8]")
    serve.add_argument(
        "--workers",
        type=positive,
        default=1,
        help="worker processes sharing the port; one per core the replica may use [1]",
    )
    serve.add_argument(
        "--server",
        choices=SERVERS,
        default="granian",
        help="granian (HTTP in Rust) or waitress (pure Python: where granian cannot be "
        "installed) [granian]",
    )
    serve.add_argument(
        "--tls-certificate",
        type=Path,
        metavar="FILE",
        help="serve HTTPS (granian): the certificate chain, PEM; with --tls-key",
    )
    serve.add_argument(
        "--tls-key",
        type=Path,
        metavar="FILE",
        help="the certificate's private key, PEM (unencrypted)",
    )
    serve.add_argument(
        "--insecure-dev-server",
        action="store_true",
        help="use Werkzeug's development server instead (loopback only)",
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    serve.add_argument(
        "--log-format",
        default="text",
        choices=LOG_FORMATS,
        help="json: one JSON object per line, for a log collector; text: readable [text]",
    )
    serve.set_defaults(handler=command_serve)
