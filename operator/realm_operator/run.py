"""Start the operator: settings from the environment, kopf's reactor, peering between replicas.

Replicas of the operator share a ``KopfPeering`` object (kopf peering): the one with the highest
priority handles the resources, the others pause, so two replicas never reconcile the same
object at once. Each replica picks a random priority unless ``--priority`` is given; equal
priorities would make kopf pause them all.
"""

from __future__ import annotations

import argparse
import logging
import secrets
from collections.abc import Sequence

import kopf
from pydantic import ValidationError

from realm_operator.handlers import Services, build_registry
from realm_operator.settings import OperatorSettings
from realm_operator.templates import RealmTemplates

DEFAULT_PEERING = "tongxing"


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="tongxing operator",
        description="Reconcile Region and Portal resources into Keycloak realms and the gateway.",
    )
    scope = cli.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    peering = cli.add_mutually_exclusive_group()
    peering.add_argument(
        "--peering", default=DEFAULT_PEERING, help="KopfPeering object shared by the replicas"
    )
    peering.add_argument(
        "--standalone", action="store_true", help="no peering (a single replica only)"
    )
    cli.add_argument("--priority", type=int, help="peering priority (default: random)")
    cli.add_argument("--liveness", help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    cli.add_argument("-v", "--verbose", action="store_true")
    cli.add_argument(
        "--log-format",
        choices=("json", "text"),
        default="text",
        help="json: kopf's JSON lines, one object per line, for a log collector [text]",
    )
    return cli


def run(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = OperatorSettings()  # type: ignore[call-arg]  # from the environment
    except ValidationError as exc:
        print(f"tongxing operator: invalid configuration (TONGXING_OPERATOR_*):\n{exc}")
        return 2
    templates = RealmTemplates(settings.realm_templates)
    if not templates.names():
        print(f"tongxing operator: no realm templates in {templates.directory}")
        return 2
    if args.log_format == "json":  # the object's namespace and name are fields of the line
        kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.JSON, log_refkey="object")
    else:
        kopf.configure(verbose=args.verbose, log_prefix=True)
    # A refused connection is reported as a condition; urllib3's retry warning adds nothing.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    memo = kopf.Memo(services=Services.build(settings, templates))
    kopf.run(
        registry=build_registry(settings),
        memo=memo,
        standalone=args.standalone,
        peering_name=None if args.standalone else args.peering,
        priority=args.priority if args.priority is not None else secrets.randbelow(1_000_000),
        clusterwide=args.all_namespaces,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
    )
    return 0
