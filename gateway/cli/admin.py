"""``tongxing admin regions|portals list|get|put|delete``: the registry over the admin API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, cast

import requests
import yaml

from gateway.admin.client import KEY_FIELDS, SINGULAR, AdminClient, AdminError, Kind
from gateway.cli.base import (
    EXIT_USAGE,
    CliError,
    Commands,
    env_name,
    print_json,
    print_table,
)

REGION_COLUMNS = ("code", "kind", "zh", "en", "enabled", "issuer")
PORTAL_COLUMNS = ("client_id", "owner", "zh", "en", "subject_type", "enabled")


def admin_session() -> requests.Session:
    """The HTTP session of ``tongxing admin`` (tests replace it with an in-process one)."""
    return requests.Session()


def _admin_client(args: argparse.Namespace) -> AdminClient:
    url = args.url or os.environ.get(env_name("admin_url"))
    token = args.token or os.environ.get(env_name("admin_token"))
    if not url:
        raise CliError(f"give the gateway URL with --url (or {env_name('admin_url')})", EXIT_USAGE)
    if not token:
        raise CliError(
            f"give the admin token with {env_name('admin_token')} (or --token)", EXIT_USAGE
        )
    try:
        return AdminClient(url, token, session=admin_session(), timeout=args.timeout)
    except AdminError as error:
        raise CliError(error.explain(), EXIT_USAGE) from None


def _read_document(name: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as error:
        raise CliError(f"cannot read {name}: {error.strerror}", EXIT_USAGE) from None
    except UnicodeDecodeError:
        raise CliError(f"{name} is not UTF-8 text", EXIT_USAGE) from None
    try:
        document = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        where = getattr(error, "problem_mark", None) or getattr(error, "lineno", None)
        detail = f" (near {where})" if where else ""
        raise CliError(f"{name} is not valid JSON or YAML{detail}", EXIT_USAGE) from None
    if not isinstance(document, dict):
        raise CliError(f"{name} must hold one JSON or YAML object", EXIT_USAGE)
    return cast(dict[str, Any], document)


def _summary(document: dict[str, Any]) -> dict[str, str | None]:
    names = document.get("names")
    if not isinstance(names, dict):
        names = {}
    row = {key: None if value is None else str(value) for key, value in document.items()}
    row["zh"] = str(names.get("zh", ""))
    row["en"] = str(names.get("en", ""))
    row["enabled"] = "yes" if document.get("enabled", True) else "no"
    return row


def command_admin(args: argparse.Namespace) -> int:
    kind: Kind = args.kind
    what = SINGULAR[kind]
    client = _admin_client(args)
    try:
        if args.action == "list":
            documents = client.list_all(kind)
            if args.json:
                print_json(documents)
            else:
                columns = REGION_COLUMNS if kind == "regions" else PORTAL_COLUMNS
                headers = [c.upper().replace("_", " ") for c in columns]
                print_table(headers, [_summary(d) for d in documents], columns)
        elif args.action == "get":
            print_json(client.get(kind, args.key))
        elif args.action == "put":
            document = _read_document(args.file)
            key = document.get(KEY_FIELDS[kind])
            if not isinstance(key, str) or not key:
                raise CliError(
                    f"{args.file} has no {KEY_FIELDS[kind]!r}: it names the {what}", EXIT_USAGE
                )
            result = client.put(kind, key, document)
            print(f"{'created' if result.created else 'replaced'} {what} {key}")
            secret = result.document.get("client_secret")
            if isinstance(secret, str):
                print(f"client secret (shown this once, store it now): {secret}")
        else:
            client.delete(kind, args.key)
            print(f"deleted {what} {args.key}")
    except AdminError as error:
        raise CliError(error.explain()) from None
    return 0


def add_parser(commands: Commands) -> None:
    admin = commands.add_parser(
        "admin",
        help="regions and portals over the admin API",
        description="Manage the registry through the gateway's admin API v1.",
    )
    kinds = admin.add_subparsers(dest="kind", metavar="KIND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"the gateway's URL (or {env_name('admin_url')})")
    common.add_argument(
        "--token",
        help=f"the admin bearer token; prefer {env_name('admin_token')}, which no `ps` shows",
    )
    common.add_argument("--timeout", type=float, default=10.0, help="seconds per request [10]")
    kind: Kind
    for kind in ("regions", "portals"):
        key = KEY_FIELDS[kind].upper()
        parser = kinds.add_parser(kind, help=f"{SINGULAR[kind]} registrations")
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        listing = actions.add_parser("list", parents=[common], help=f"list {kind}")
        listing.add_argument("--json", action="store_true", help="print the documents as JSON")
        get = actions.add_parser("get", parents=[common], help=f"show one {SINGULAR[kind]}")
        get.add_argument("key", metavar=key)
        put = actions.add_parser(
            "put", parents=[common], help=f"create or replace a {SINGULAR[kind]} from a file"
        )
        put.add_argument("file", metavar="FILE", help="a JSON or YAML document; - for stdin")
        delete = actions.add_parser("delete", parents=[common], help=f"remove a {SINGULAR[kind]}")
        delete.add_argument("key", metavar=key)
        parser.set_defaults(handler=command_admin)
