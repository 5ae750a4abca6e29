"""``tongxing secrets reseal``: every region client secret sealed again with the first key.

The middle step of a sealing-key rotation (docs/security/secrets.md): put the new key first in
``TONGXING_SEALING_KEYS`` (keeping the old one after it), roll the gateways, run this command,
then remove the old key. It also seals the secrets of rows written before secrets were sealed.
Settings come from the same ``TONGXING_*`` variables as ``tongxing serve``; the command talks to
the store directly (it is what holds the rows), never to a running gateway. It prints region
codes and counts, never a secret.
"""

from __future__ import annotations

import argparse
import json

from sqlalchemy.exc import SQLAlchemyError

from gateway.cli.base import EXIT_FAILED, CliError, Commands
from gateway.cli.serve import load_settings
from gateway.clock import utc_now
from gateway.registry import Registry
from gateway.store.contract import StoreError
from gateway.store.sql import SqlStore

COMMAND = "secrets"


def command_reseal(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        store = SqlStore.from_url(settings.sqlalchemy_url)
    except SQLAlchemyError as error:
        raise CliError(f"cannot open the store ({type(error).__name__})") from None
    try:
        registry = Registry.for_settings(store, settings)
        report = registry.reseal_regions(utc_now())
    except (SQLAlchemyError, StoreError) as error:
        raise CliError(f"the store did not answer ({type(error).__name__})") from None
    finally:
        store.close()
    if args.json:
        print(json.dumps(vars(report), indent=2))
    else:
        print(
            f"resealed {len(report.resealed)} region secrets, "
            f"{len(report.current)} already sealed with the first key"
        )
        for code in report.resealed:
            print(f"  resealed: {code}")
    failed = False
    if report.unreadable:
        failed = True
        print(
            "not resealed, the secret does not open with any configured key (keep the old key, "
            f"or set the region again): {', '.join(report.unreadable)}"
        )
    if report.conflicted:
        failed = True
        print(f"not resealed, changed while resealing (run again): {', '.join(report.conflicted)}")
    return EXIT_FAILED if failed else 0


def add_parser(commands: Commands) -> None:
    group = commands.add_parser(
        COMMAND, help="region client secrets sealed at rest (TONGXING_SEALING_KEYS)"
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    action = actions.add_parser(
        "reseal",
        help="seal every region client secret with the first sealing key (a key rotation's "
        "middle step; see docs/security/secrets.md)",
        description="Seal every region's client secret with the first key of "
        "TONGXING_SEALING_KEYS: clear secrets from before sealing and secrets sealed under an "
        "older key. Exit 1 when a secret does not open (a key removed too early).",
    )
    action.add_argument("--json", action="store_true", help="print the report as JSON")
    action.set_defaults(handler=command_reseal)
