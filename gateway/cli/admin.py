"""``tongxing admin regions|portals list|get|put|delete``: the registry over the admin API.

The calls are :class:`tongxing_api.client.GatewayClient`'s, the operator's client; what a person
reads is said here: the API's field-level messages for a 400, the refused token for a 401, "no
region zj" for a 404, the network error when the gateway cannot be reached. The bearer token
never appears in a message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast

import requests
import yaml
from pydantic import SecretStr

from gateway.cli.base import (
    EXIT_USAGE,
    CliError,
    Commands,
    env_name,
    print_json,
    print_table,
)
from tongxing_api.client import (
    GatewayClient,
    GatewayError,
    GatewayRefusalError,
    GatewayUnauthorizedError,
    GatewayUnavailableError,
    InvalidKeyError,
)
from tongxing_api.vocabulary import COLLECTIONS, KEY_FIELDS, SINGULAR, Collection

REGION_COLUMNS = ("code", "kind", "zh", "en", "enabled", "issuer")
PORTAL_COLUMNS = ("client_id", "owner", "zh", "en", "subject_type", "enabled")


def admin_session() -> requests.Session:
    """The HTTP session of ``tongxing admin`` (tests replace it with an in-process one)."""
    return requests.Session()


def _admin_client(args: argparse.Namespace) -> GatewayClient:
    url = args.url or os.environ.get(env_name("admin_url"))
    token = args.token or os.environ.get(env_name("admin_token"))
    if not url:
        raise CliError(f"give the gateway URL with --url (or {env_name('admin_url')})", EXIT_USAGE)
    if not token:
        raise CliError(
            f"give the admin token with {env_name('admin_token')} (or --token)", EXIT_USAGE
        )
    try:
        return GatewayClient(url, SecretStr(token), timeout=args.timeout, session=admin_session())
    except ValueError as error:
        raise CliError(str(error), EXIT_USAGE) from None


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


def _phrase(status: int | None) -> str:
    try:
        return HTTPStatus(status or 0).phrase
    except ValueError:
        return "an unknown status"


def _explain(error: GatewayError, client: GatewayClient, what: str) -> str:
    """What a person reads about a failed call: the message, then one line per field the API
    complained about."""
    if isinstance(error, GatewayUnauthorizedError):
        message = f"the admin token was refused (check --token or {env_name('admin_token')})"
    elif isinstance(error, GatewayRefusalError) and error.status == 400:
        message = f"the gateway refused the {what}:"
    elif isinstance(error, GatewayUnavailableError) and error.status is None:
        message = f"cannot reach the admin API at {client.api_url} ({error.cause})"
    elif error.status is not None and error.status < 300:
        message = (
            f"the admin API answered {error.status} without the JSON it documents "
            f"(is {client.url} a Tongxing gateway?)"
        )
    else:
        code = error.code if isinstance(error, GatewayRefusalError) else None
        message = f"the admin API answered {error.status}: {code or _phrase(error.status)}"
    fields = error.fields if isinstance(error, GatewayRefusalError) else []
    lines = [message]
    lines.extend(f"  {item['field'] or '(document)'}: {item['message']}" for item in fields)
    return "\n".join(lines)


def command_admin(args: argparse.Namespace) -> int:
    kind: Collection = args.kind
    what = SINGULAR[kind]
    client = _admin_client(args)
    one = what if getattr(args, "key", None) is None else f"{what} {args.key}"
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
            found = client.get(kind, args.key)
            if found is None:
                raise CliError(f"no {one}")
            print_json(found)
        elif args.action == "put":
            document = _read_document(args.file)
            key = document.get(KEY_FIELDS[kind])
            if not isinstance(key, str) or not key:
                raise CliError(
                    f"{args.file} has no {KEY_FIELDS[kind]!r}: it names the {what}", EXIT_USAGE
                )
            one = f"{what} {key}"
            result = client.put(kind, key, document)
            if result.document is None:
                raise CliError("the admin API answered something other than a JSON object")
            print(f"{'created' if result.created else 'replaced'} {one}")
            secret = result.document.get("client_secret")
            if isinstance(secret, str):
                print(f"client secret (shown this once, store it now): {secret}")
        else:
            if not client.delete(kind, args.key):
                raise CliError(f"no {one}")
            print(f"deleted {one}")
    except GatewayError as error:
        raise CliError(_explain(error, client, one)) from None
    except InvalidKeyError as error:
        raise CliError(str(error)) from None
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
    for kind in COLLECTIONS:
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
