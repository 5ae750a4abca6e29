"""The ``tongxing`` command: serve the gateway, manage its signing keys and registry, run the demo.

Exit codes: 0 success, 1 the work failed (a refused request, an unreachable server, a store that
cannot be opened), 2 a usage error or bad local input (missing settings, an unreadable file).
Every failure is one readable message on standard error, never a traceback, and never a secret:
settings errors name the ``TONGXING_`` variable, not its value.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import stat
import sys
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, cast

import requests
import yaml
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from gateway import __version__
from gateway.admin.client import KEY_FIELDS, SINGULAR, AdminClient, AdminError, Kind
from gateway.keys import (
    KEY_FILE_CHECK_INTERVAL,
    RSA_KEY_SIZES,
    KeyFileError,
    KeyRing,
    SigningKey,
    load_key_ring,
    save_key_ring,
)
from gateway.settings import Settings
from gateway.wsgi import Listen, ServerUnavailableError, load_waitress

if TYPE_CHECKING:
    from gateway.services import Services

ENV_PREFIX = "TONGXING_"
#: Long enough for every token the ring signs (ID and access tokens: minutes) and for an ID token
#: that comes back as ``id_token_hint`` at logout during the default 8-hour SSO session.
DEFAULT_MAX_TOKEN_LIFETIME = 8 * 3600
#: The demo's defaults: fixed ports, so the printed URLs stay the same from one run to the next.
DEMO_DATA_DIR = Path("~/.local/share/tongxing/demo")
DEMO_PORTS = (8400, 8401, 8402)
EXIT_FAILED = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure to report as one message (plus an exit code), without a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


Handler = Callable[[argparse.Namespace], int]


# --- settings ----------------------------------------------------------------------------------


def env_name(field: object) -> str:
    return f"{ENV_PREFIX}{str(field).upper()}"


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


def _stop_on_sigterm() -> None:
    """SIGTERM (Kubernetes stopping the pod) unwinds like Ctrl-C, so the store is closed."""

    def stop(_signum: int, _frame: FrameType | None) -> NoReturn:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


def command_serve(args: argparse.Namespace) -> int:
    from gateway.app import create_app
    from gateway.services import build_services
    from gateway.wsgi import serve_insecure_dev_server, serve_waitress, serve_workers

    listen = Listen(args.host, args.port, args.threads, args.workers)
    if not args.insecure_dev_server:
        load_waitress()  # fail before opening anything
    settings = load_settings()
    services = _open_services(settings, build_services)
    if listen.workers > 1 and not args.insecure_dev_server:
        # The store is migrated and the key file made once, here; each worker opens its own.
        services.close()

        def run_worker(sock: socket.socket) -> None:
            worker_services = _open_services(settings, build_services)
            try:
                _stop_on_sigterm()
                serve_waitress(create_app(services=worker_services), listen, [sock])
            finally:
                worker_services.close()

        try:
            return serve_workers(run_worker, listen)
        except OSError as error:
            raise CliError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    try:
        app = create_app(services=services)
        _stop_on_sigterm()
        if args.insecure_dev_server:
            serve_insecure_dev_server(app, listen)
        else:
            serve_waitress(app, listen)
    except OSError as error:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    finally:
        services.close()
    return 0


def _open_services(settings: Settings, build: Callable[[Settings], Services]) -> Services:
    try:
        return build(settings)
    except KeyFileError as error:
        raise CliError(str(error)) from None
    except SQLAlchemyError as error:
        raise CliError(_database_problem(settings, error)) from None
    except OSError as error:
        raise CliError(f"cannot prepare {settings.data_dir}: {error.strerror}") from None


# --- keys --------------------------------------------------------------------------------------


def _keys_file(args: argparse.Namespace) -> Path:
    value = args.file or os.environ.get(env_name("keys_file"))
    if not value:
        raise CliError(f"give the key file with --file (or {env_name('keys_file')})", EXIT_USAGE)
    return Path(value)


def _load_ring(path: Path) -> KeyRing:
    try:
        return load_key_ring(path)
    except KeyFileError as error:
        raise CliError(str(error)) from None


def _key_rows(ring: KeyRing) -> list[dict[str, str | None]]:
    def when(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat(timespec="seconds")

    return [_key_row(key, when) for key in ring.keys]


def _key_row(
    key: SigningKey, when: Callable[[datetime | None], str | None]
) -> dict[str, str | None]:
    return {
        "alg": key.alg,
        "kid": key.kid,
        "state": key.state,
        "created_at": when(key.created_at),
        "retire_until": when(key.retire_until),
    }


def _print_ring(ring: KeyRing, as_json: bool) -> None:
    rows = _key_rows(ring)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    columns = ("alg", "state", "kid", "created_at", "retire_until")
    print_table([c.upper().replace("_", " ") for c in columns], rows, columns)


def _warn_if_readable_by_others(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(
            f"warning: {path} holds private keys but is readable by others "
            f"(mode {stat.S_IMODE(mode):o}); chmod 600 it",
            file=sys.stderr,
        )


def command_keys_show(args: argparse.Namespace) -> int:
    path = _keys_file(args)
    ring = _load_ring(path)
    _warn_if_readable_by_others(path)
    _print_ring(ring, args.json)
    return 0


def command_keys_generate(args: argparse.Namespace) -> int:
    path = _keys_file(args)
    ring = KeyRing.generate(now=datetime.now(UTC), rsa_key_size=args.rsa_key_size)
    try:
        save_key_ring(ring, path, overwrite=False)
    except FileExistsError:
        raise CliError(f"{path} exists already; rotate it with `tongxing keys rotate`") from None
    except OSError as error:
        raise CliError(f"cannot write {path}: {error.strerror}") from None
    print(f"wrote a new key ring to {path} (mode 600)")
    _print_ring(ring, as_json=False)
    return 0


def command_keys_rotate(args: argparse.Namespace) -> int:
    """One publish-before-sign step (OIDC Core §10.1), saved atomically.

    The key that was ``next`` (published since the previous rotation) becomes ``active``; the
    active key retires but stays published until every token it signed has expired; a fresh
    ``next`` key is published now and will sign only after the following rotation.
    """
    path = _keys_file(args)
    ring = _load_ring(path)
    ring.rotate(datetime.now(UTC), timedelta(seconds=args.max_token_lifetime))
    try:
        save_key_ring(ring, path)
    except OSError as error:
        raise CliError(
            f"cannot write {path}: {error.strerror} (a mounted Secret is read-only: rotate a "
            "copy and update the Secret with it)"
        ) from None
    print(
        f"rotated {path}. Running gateways notice a changed key file within about "
        f"{KEY_FILE_CHECK_INTERVAL:g} s and then sign with the new active keys; for a mounted "
        "Secret, update the Secret with this file: the kubelet takes up to about a minute more "
        "to refresh it in the pods."
    )
    _print_ring(ring, as_json=False)
    return 0


# --- admin -------------------------------------------------------------------------------------


def admin_session() -> requests.Session:
    """The HTTP session of ``tongxing admin`` (tests replace it with an in-process one)."""
    return requests.Session()


def _admin_client(args: argparse.Namespace) -> AdminClient:
    url = args.url or os.environ.get(env_name("admin_url"))
    token = args.token or os.environ.get(env_name("admin_token"))
    if not url:
        raise CliError(f"give the gateway URL with --url (or {env_name('admin_url')})", EXIT_USAGE)
    if not token:
        raise CliError(
            f"give the admin token with {env_name('admin_token')} (or --token)", EXIT_USAGE
        )
    try:
        return AdminClient(url, token, session=admin_session(), timeout=args.timeout)
    except AdminError as error:
        raise CliError(error.explain(), EXIT_USAGE) from None


def _read_document(name: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as error:
        raise CliError(f"cannot read {name}: {error.strerror}", EXIT_USAGE) from None
    except UnicodeDecodeError:
        raise CliError(f"{name} is not UTF-8 text", EXIT_USAGE) from None
    try:
        document = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        where = getattr(error, "problem_mark", None) or getattr(error, "lineno", None)
        detail = f" (near {where})" if where else ""
        raise CliError(f"{name} is not valid JSON or YAML{detail}", EXIT_USAGE) from None
    if not isinstance(document, dict):
        raise CliError(f"{name} must hold one JSON or YAML object", EXIT_USAGE)
    return cast(dict[str, Any], document)


REGION_COLUMNS = ("code", "kind", "zh", "en", "enabled", "issuer")
PORTAL_COLUMNS = ("client_id", "owner", "zh", "en", "subject_type", "enabled")


def _summary(document: dict[str, Any]) -> dict[str, str | None]:
    names = document.get("names")
    if not isinstance(names, dict):
        names = {}
    row = {key: None if value is None else str(value) for key, value in document.items()}
    row["zh"] = str(names.get("zh", ""))
    row["en"] = str(names.get("en", ""))
    row["enabled"] = "yes" if document.get("enabled", True) else "no"
    return row


def command_admin(args: argparse.Namespace) -> int:
    kind: Kind = args.kind
    what = SINGULAR[kind]
    client = _admin_client(args)
    try:
        if args.action == "list":
            documents = client.list_all(kind)
            if args.json:
                print_json(documents)
            else:
                columns = REGION_COLUMNS if kind == "regions" else PORTAL_COLUMNS
                headers = [c.upper().replace("_", " ") for c in columns]
                print_table(headers, [_summary(d) for d in documents], columns)
        elif args.action == "get":
            print_json(client.get(kind, args.key))
        elif args.action == "put":
            document = _read_document(args.file)
            key = document.get(KEY_FIELDS[kind])
            if not isinstance(key, str) or not key:
                raise CliError(
                    f"{args.file} has no {KEY_FIELDS[kind]!r}: it names the {what}", EXIT_USAGE
                )
            result = client.put(kind, key, document)
            print(f"{'created' if result.created else 'replaced'} {what} {key}")
            secret = result.document.get("client_secret")
            if isinstance(secret, str):
                print(f"client secret (shown this once, store it now): {secret}")
        else:
            client.delete(kind, args.key)
            print(f"deleted {what} {args.key}")
    except AdminError as error:
        raise CliError(error.explain()) from None
    return 0


# --- demo --------------------------------------------------------------------------------------


def command_demo(args: argparse.Namespace) -> int:
    from gateway import demo

    missing = [
        flag
        for flag, value in (
            ("--keycloak-url", args.keycloak_url),
            ("--keycloak-admin", args.keycloak_admin),
            ("--keycloak-password", args.keycloak_password),
        )
        if not value
    ]
    if missing:
        raise CliError(
            f"the demo needs a Keycloak: give {', '.join(missing)} (or the "
            f"{ENV_PREFIX}DEMO_KEYCLOAK_* variables; `make demo` starts one)",
            EXIT_USAGE,
        )
    options = demo.DemoOptions(
        keycloak=demo.KeycloakAccess(
            args.keycloak_url.rstrip("/"), args.keycloak_admin, args.keycloak_password
        ),
        data_dir=Path(args.data_dir).expanduser(),
        gateway_port=args.port,
        portal_ports=(args.portal_a_port, args.portal_b_port),
        verbose=args.verbose,
    )
    try:
        return demo.run(options)
    except demo.DemoError as error:
        raise CliError(str(error)) from None


# --- output ------------------------------------------------------------------------------------


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def print_table(
    headers: Sequence[str], rows: Sequence[dict[str, str | None]], columns: Sequence[str]
) -> None:
    cells = [[row.get(column) or "-" for column in columns] for row in rows]
    widths = [max([_width(h), *(_width(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for line in [list(headers), *cells]:
        padded = [cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(line)]
        print("  ".join(padded).rstrip())


# --- the parser --------------------------------------------------------------------------------


def _positive_seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is between 0 and 65535")
    return value


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the gateway (settings from TONGXING_* variables)",
        description="Run the gateway with waitress. Settings come from the TONGXING_* "
        "environment variables (TONGXING_ISSUER, TONGXING_NATIONAL_SECRET, ...).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on [127.0.0.1]")
    serve.add_argument("--port", type=_port, default=8080, help="port to listen on [8080]")
    serve.add_argument("--threads", type=_positive, default=8, help="threads per worker [8]")
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="worker processes sharing the port; one per core the replica may use [1]",
    )
    serve.add_argument(
        "--insecure-dev-server",
        action="store_true",
        help="use Werkzeug's development server instead of waitress (loopback only)",
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    serve.set_defaults(handler=command_serve)


def _add_keys(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="the signing key ring file")
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--file", help=f"the key ring file (or {env_name('keys_file')})", metavar="PATH"
    )

    show = actions.add_parser(
        "show", parents=[common], help="list kids, algorithms and states (no key material)"
    )
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=command_keys_show)

    generate = actions.add_parser(
        "generate", parents=[common], help="create a new key ring file (refuses to overwrite)"
    )
    generate.add_argument(
        "--rsa-key-size", type=int, choices=RSA_KEY_SIZES, default=RSA_KEY_SIZES[0]
    )
    generate.set_defaults(handler=command_keys_generate)

    rotate = actions.add_parser(
        "rotate",
        parents=[common],
        help="publish a new next key, activate the published one, retire the active one; "
        "running gateways pick up the changed file by themselves",
    )
    rotate.add_argument(
        "--max-token-lifetime",
        type=_positive_seconds,
        default=DEFAULT_MAX_TOKEN_LIFETIME,
        metavar="SECONDS",
        help="how long the retired key stays published: the longest lifetime of a token it "
        f"signed, id_token_hint at logout included [{DEFAULT_MAX_TOKEN_LIFETIME}]",
    )
    rotate.set_defaults(handler=command_keys_rotate)


def _add_admin(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = commands.add_parser(
        "admin",
        help="regions and portals over the admin API",
        description="Manage the registry through the gateway's admin API v1.",
    )
    kinds = admin.add_subparsers(dest="kind", metavar="KIND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"the gateway's URL (or {env_name('admin_url')})")
    common.add_argument(
        "--token",
        help=f"the admin bearer token; prefer {env_name('admin_token')}, which no `ps` shows",
    )
    common.add_argument("--timeout", type=float, default=10.0, help="seconds per request [10]")
    kind: Kind
    for kind in ("regions", "portals"):
        key = KEY_FIELDS[kind].upper()
        parser = kinds.add_parser(kind, help=f"{SINGULAR[kind]} registrations")
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        listing = actions.add_parser("list", parents=[common], help=f"list {kind}")
        listing.add_argument("--json", action="store_true", help="print the documents as JSON")
        get = actions.add_parser("get", parents=[common], help=f"show one {SINGULAR[kind]}")
        get.add_argument("key", metavar=key)
        put = actions.add_parser(
            "put", parents=[common], help=f"create or replace a {SINGULAR[kind]} from a file"
        )
        put.add_argument("file", metavar="FILE", help="a JSON or YAML document; - for stdin")
        delete = actions.add_parser("delete", parents=[common], help=f"remove a {SINGULAR[kind]}")
        delete.add_argument("key", metavar=key)
        parser.set_defaults(handler=command_admin)


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the gateway with a demo federation on loopback",
        description="Run the gateway with three demo regions (Keycloak realms in the Keycloak "
        "you name) and two demo portals, all on 127.0.0.1. Ctrl-C stops everything.",
    )
    env = os.environ.get
    demo.add_argument("--keycloak-url", default=env(f"{ENV_PREFIX}DEMO_KEYCLOAK_URL"))
    demo.add_argument("--keycloak-admin", default=env(f"{ENV_PREFIX}DEMO_KEYCLOAK_ADMIN"))
    demo.add_argument(
        "--keycloak-password",
        default=env(f"{ENV_PREFIX}DEMO_KEYCLOAK_PASSWORD"),
        help=f"prefer {ENV_PREFIX}DEMO_KEYCLOAK_PASSWORD, which no `ps` shows",
    )
    demo.add_argument(
        "--data-dir",
        default=str(DEMO_DATA_DIR),
        help="database, keys and secrets of the demo [%(default)s]",
    )
    demo.add_argument("--port", type=_port, default=DEMO_PORTS[0], help="gateway port")
    demo.add_argument("--portal-a-port", type=_port, default=DEMO_PORTS[1])
    demo.add_argument("--portal-b-port", type=_port, default=DEMO_PORTS[2])
    demo.add_argument("--verbose", action="store_true", help="log every request")
    demo.set_defaults(handler=command_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tongxing",
        description="Tongxing (通行): national identity federation gateway.",
    )
    parser.add_argument("--version", action="version", version=f"tongxing {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_serve(commands)
    _add_keys(commands)
    _add_admin(commands)
    _add_demo(commands)
    commands.add_parser(
        "operator",
        help="run the Kubernetes operator (see `tongxing operator --help`)",
        add_help=False,
    )
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if level != "DEBUG":
        # Alembic narrates every plugin and migration step at INFO: one line per start is enough.
        logging.getLogger("alembic").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["operator"]:
        # The operator is its own program; it meets the gateway only at the admin API.
        from realm_operator.run import run

        return run(arguments[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handler: Handler = args.handler
    if args.command == "serve":
        _configure_logging(args.log_level)
    try:
        return handler(args)
    except CliError as error:
        print(f"tongxing: {error.message}", file=sys.stderr)
        return error.exit_code
    except ServerUnavailableError as error:
        print(f"tongxing: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
