"""``tongxing demo``: the demo federation (:mod:`tongxing_demo`) against a Keycloak you name.

The demo is a package of its own, beside the gateway: it is imported only when this command
runs, so no other command loads it.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from gateway.cli.base import ENV_PREFIX, EXIT_USAGE, CliError, Commands, port

#: The demo's defaults: fixed ports, so the printed URLs stay the same from one run to the next.
DEMO_DATA_DIR = Path("~/.local/share/tongxing/demo")
DEMO_PORTS = (8400, 8401, 8402, 8403, 8404)
DEMO_REALM_PREFIX = "tongxing-demo-"


def command_demo(args: argparse.Namespace) -> int:
    from tongxing_demo.demo import DemoOptions, run
    from tongxing_demo.errors import DemoError
    from tongxing_demo.realms import KeycloakAccess

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
    options = DemoOptions(
        keycloak=KeycloakAccess(
            args.keycloak_url.rstrip("/"), args.keycloak_admin, args.keycloak_password
        ),
        data_dir=Path(args.data_dir).expanduser(),
        gateway_port=args.port,
        portal_ports=(
            args.portal_a_port,
            args.portal_b_port,
            args.enterprise_portal_port,
            args.loa3_portal_port,
        ),
        realm_prefix=args.realm_prefix,
        verbose=args.verbose,
    )
    try:
        return run(options)
    except DemoError as error:
        raise CliError(str(error)) from None


def _realm_prefix(text: str) -> str:
    # Realm names are <prefix><region code>: lower-case letters, digits and "-", as the
    # operator's realm names are.
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,47}", text):
        raise argparse.ArgumentTypeError(
            "up to 48 lower-case letters, digits and -, starting with a letter"
        )
    return text


def add_parser(commands: Commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the gateway with a demo federation on loopback",
        description="Run the gateway with four demo regions (Keycloak realms in the Keycloak "
        "you name: three for people, one e-business-licence system), a proofing provider and "
        "four demo portals, all on 127.0.0.1. Ctrl-C (or SIGTERM) stops everything.",
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
    demo.add_argument("--port", type=port, default=DEMO_PORTS[0], help="gateway port")
    demo.add_argument("--portal-a-port", type=port, default=DEMO_PORTS[1])
    demo.add_argument("--portal-b-port", type=port, default=DEMO_PORTS[2])
    demo.add_argument("--enterprise-portal-port", type=port, default=DEMO_PORTS[3])
    demo.add_argument("--loa3-portal-port", type=port, default=DEMO_PORTS[4])
    demo.add_argument(
        "--realm-prefix",
        type=_realm_prefix,
        default=DEMO_REALM_PREFIX,
        help="realms are named <prefix><region code> [%(default)s]",
    )
    demo.add_argument("--verbose", action="store_true", help="log every request")
    demo.set_defaults(handler=command_demo)
