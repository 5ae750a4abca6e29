"""``make demo``: ``tongxing demo`` against the Keycloak the development harness keeps running.

``python -m tongxing_demo.harness [tongxing demo options]``. The Makefile starts Keycloak first
(``tongxing-dev up keycloak``); this only reads its endpoint from the harness's state and hands
it to the demo in-process, so the throwaway admin password is never on a command line. It needs
the harness (``tongxing-dev``, a development tool installed by ``make venv``); the demo itself and
the gateway know nothing about it.
"""

from __future__ import annotations

import sys

from gateway import cli


def main(argv: list[str]) -> int:
    try:
        from tongxing_dev import stack
    except ImportError:
        print(
            "demo: the development harness (tongxing-dev) is not installed; run `make demo`, "
            "or `tongxing demo --keycloak-url ...` against a Keycloak of your own",
            file=sys.stderr,
        )
        return 1
    endpoint = stack.running("keycloak")
    if endpoint is None:
        print(
            "demo: no Keycloak is running; start one with `tongxing-dev up keycloak`",
            file=sys.stderr,
        )
        return 1
    return cli.main(
        [
            "demo",
            "--keycloak-url",
            endpoint.url,
            "--keycloak-admin",
            endpoint.admin_user,
            "--keycloak-password",
            endpoint.admin_password,
            *argv,
        ]
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
