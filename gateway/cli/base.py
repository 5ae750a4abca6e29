"""What every ``tongxing`` command shares: the error it reports, exit codes, argument types,
the ``TONGXING_`` variable names and tabular output."""

from __future__ import annotations

import argparse
import json
import unicodedata
from collections.abc import Callable, Sequence
from typing import TypeAlias

ENV_PREFIX = "TONGXING_"
EXIT_FAILED = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]
#: What ``ArgumentParser.add_subparsers`` returns: each command group adds its parser to it.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CliError(Exception):
    """A failure to report as one message (plus an exit code), without a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def env_name(field: object) -> str:
    return f"{ENV_PREFIX}{str(field).upper()}"


# --- argument types ----------------------------------------------------------------------------


def positive_seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is between 0 and 65535")
    return value


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
