"""The ``tongxing`` command; subcommands arrive with the parts they run (gateway, operator)."""

from __future__ import annotations

import argparse
import sys

from gateway import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tongxing",
        description="Tongxing (通行): national identity federation gateway.",
    )
    parser.add_argument("--version", action="version", version=f"tongxing {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0  # pragma: no cover - no subcommand exists yet


if __name__ == "__main__":
    sys.exit(main())
