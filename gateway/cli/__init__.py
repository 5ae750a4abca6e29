"""The ``tongxing`` command: serve the gateway, manage its signing keys and registry, run the demo.

One module per command group (:mod:`~gateway.cli.serve`, :mod:`~gateway.cli.keys`,
:mod:`~gateway.cli.admin`, :mod:`~gateway.cli.audit`, :mod:`~gateway.cli.demo`,
:mod:`~gateway.cli.operator`, :mod:`~gateway.cli.sealing`), each adding its parser and handlers;
what they share is in :mod:`~gateway.cli.base`.

Exit codes: 0 success, 1 the work failed (a refused request, an unreachable server, a store that
cannot be opened), 2 a usage error or bad local input (missing settings, an unreadable file).
Every failure is one readable message on standard error, never a traceback, and never a secret:
settings errors name the ``TONGXING_`` variable, not its value.
"""

from __future__ import annotations

import argparse
import sys

from gateway import __version__
from gateway.cli import admin, audit, demo, keys, operator, sealing, serve
from gateway.cli.base import EXIT_FAILED, EXIT_USAGE, CliError, Handler
from gateway.wsgi import ServerUnavailableError

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tongxing",
        description="Tongxing (通行): national identity federation gateway.",
    )
    parser.add_argument("--version", action="version", version=f"tongxing {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in (serve, keys, admin, audit, demo, operator, sealing):
        group.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == [operator.COMMAND]:
        return operator.run(arguments[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handler: Handler = args.handler
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
