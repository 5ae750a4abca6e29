"""``tongxing-dev``: keep the test servers running between test runs.

    tongxing-dev up [COMPONENT ...]      obtain and start (default: everything)
    tongxing-dev status                  what is recorded and whether it answers
    tongxing-dev env                     shell exports for the running servers
    tongxing-dev down [COMPONENT ...]    stop and forget (default: everything)

The pytest plugin finds what ``up`` started and reuses it; without it, each test session starts
and stops its own servers.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys

from tongxing_dev import stack
from tongxing_dev.cache import TIMINGS
from tongxing_dev.errors import ComponentError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tongxing-dev",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "down"):
        sub = commands.add_parser(name)
        sub.add_argument(
            "components",
            nargs="*",
            metavar="COMPONENT",
            help="any of: " + ", ".join(stack.COMPONENTS),
        )
    commands.add_parser("status")
    commands.add_parser("env")
    args = parser.parse_args(argv)
    unknown = sorted(set(getattr(args, "components", [])) - set(stack.COMPONENTS))
    if unknown:
        parser.error(
            f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(stack.COMPONENTS)}"
        )

    if args.command == "up":
        try:
            endpoints = stack.up(args.components or list(stack.COMPONENTS))
        except ComponentError as exc:
            print(f"tongxing-dev: {exc}", file=sys.stderr)
            return 1
        for line in TIMINGS.report():
            print(line)
        for name, endpoint in endpoints.items():
            print(f"{name:<16} {_describe(endpoint)}")
        return 0
    if args.command == "down":
        stopped = stack.down(args.components or list(stack.SERVERS))
        print("stopped: " + (", ".join(stopped) or "nothing was running"))
        return 0
    if args.command == "env":
        kube = stack.running("kube")
        if kube is not None:
            print(f"export KUBECONFIG={shlex.quote(kube.kubeconfig)}")
        return 0
    for name in stack.SERVERS:
        endpoint = stack.running(name)
        print(f"{name:<16} {'up   ' + _describe(endpoint) if endpoint else 'down'}")
    return 0


def _describe(endpoint: object) -> str:
    """The non-secret fields of an endpoint record."""
    fields = dataclasses.asdict(endpoint)  # type: ignore[call-overload]
    hidden = {"password", "admin_password", "token"}
    return " ".join(f"{k}={v}" for k, v in fields.items() if k not in hidden)


if __name__ == "__main__":
    sys.exit(main())
