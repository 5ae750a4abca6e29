"""``make demo``: run ``tongxing demo`` against the Keycloak the test harness keeps running.

The Makefile target starts Keycloak first (``tongxing-dev up keycloak``); this wrapper only reads
its endpoint from the harness state and hands it to the demo in-process, so the throwaway admin
password is never on a command line. The gateway itself knows nothing about the harness.
"""

from __future__ import annotations

import sys

from tongxing_dev import stack
from tongxing_dev.keycloak import KeycloakEndpoint

from gateway import cli


def main(argv: list[str]) -> int:
    endpoint: KeycloakEndpoint | None = stack.running("keycloak")
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
