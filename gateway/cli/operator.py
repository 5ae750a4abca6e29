"""``tongxing operator``: the Kubernetes operator, a program of its own.

It meets the gateway only at the admin API, so its arguments go to it untouched (its own
``--help`` included) and nothing of it is imported for the other commands.
"""

from __future__ import annotations

from gateway.cli.base import Commands

COMMAND = "operator"


def run(argv: list[str]) -> int:
    from realm_operator.run import run as run_operator

    return run_operator(argv)


def add_parser(commands: Commands) -> None:
    # Listed in `tongxing --help` only: main() hands `tongxing operator ...` over before parsing.
    commands.add_parser(
        COMMAND,
        help="run the Kubernetes operator (see `tongxing operator --help`)",
        add_help=False,
    )
