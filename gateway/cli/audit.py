"""``tongxing audit verify|export``: check the audit trail's hash chain, and read it out.

``verify`` recomputes every record's hash and its link to the record before it (GB/T
22239-2019 §8.1.4 c: records protected from change; :mod:`gateway.store.contract.audit`): exit 0
with a summary, or 1 naming the first record that was changed, removed or reordered.
``export --since DATE [--until DATE]`` writes the records as JSON lines (one object a line,
oldest first, every field and both hashes, so the chain can be checked again elsewhere).

The store is the gateway's: ``--database-url``, else ``TONGXING_DATABASE_URL``, else the SQLite
file in ``TONGXING_DATA_DIR`` (as the gateway finds it). Only the database is needed, none of
the gateway's secrets: an auditor can run it with read access alone.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from gateway.cli.base import EXIT_FAILED, EXIT_USAGE, CliError, Commands, env_name
from gateway.store.contract import StoreError
from gateway.store.sql import SqlStore

EXPORT_PAGE = 1000


def _database_url(args: argparse.Namespace) -> str:
    url: str | None = args.database_url or os.environ.get(env_name("database_url"))
    if url:
        return url
    data_dir = os.environ.get(env_name("data_dir"))
    folder = Path(data_dir) if data_dir else Path.home() / ".local" / "share" / "tongxing"
    path = folder / "tongxing.db"
    if not path.exists():
        raise CliError(
            f"no store at {path}: give --database-url (or {env_name('database_url')} or "
            f"{env_name('data_dir')})",
            EXIT_USAGE,
        )
    return f"sqlite:///{path}"


def _open(args: argparse.Namespace) -> SqlStore:
    url = _database_url(args)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise CliError("the database URL is not a valid SQLAlchemy URL", EXIT_USAGE) from None
    sqlite_file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if sqlite_file and not Path(sqlite_file).exists():  # never create an empty store
        raise CliError(f"no store at {parsed.database}", EXIT_USAGE)
    try:
        return SqlStore.from_url(parsed)
    except (ValueError, SQLAlchemyError) as error:
        raise CliError(f"cannot open the store: {_hide_password(str(error), url)}") from None


def _hide_password(text: str, url: str) -> str:
    try:
        password = make_url(url).password
    except ArgumentError:
        password = None
    first = text.splitlines()[0] if text else ""
    return (first.replace(str(password), "***") if password else first)[:300]


def _moment(text: str) -> datetime.datetime:
    """An ISO 8601 date (midnight UTC) or date and time (UTC unless it names an offset)."""
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date (2025-03-01) or time (2025-03-01T08:00:00+08:00)"
        ) from None
    return value if value.utcoffset() is not None else value.replace(tzinfo=datetime.UTC)


def command_audit_verify(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        result = store.verify_audit()
        anchor = store.audit_anchor()
    except (StoreError, SQLAlchemyError) as error:
        url = _database_url(args)
        raise CliError(f"cannot read the audit trail: {_hide_password(str(error), url)}") from None
    finally:
        store.close()
    if not result.intact:
        print(
            f"audit trail BROKEN: {result.problem} ({result.records} records checked before it)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if result.records == 0:
        print(f"audit trail intact: no records (anchor {anchor.anchor_sequence})")
        return 0
    print(
        f"audit trail intact: {result.records} records, {result.chains} days, sequences "
        f"{result.first_sequence} to {result.last_sequence}; head {anchor.head_hash}"
        + (
            f"; records up to {anchor.anchor_sequence} purged by retention "
            f"(anchor {anchor.anchor_hash})"
            if anchor.anchor_sequence
            else ""
        )
    )
    return 0


def command_audit_export(args: argparse.Namespace) -> int:
    if args.until is not None and args.until <= args.since:
        raise CliError("--until must be after --since", EXIT_USAGE)
    store = _open(args)
    after = 0
    try:
        while True:
            page = store.list_audit(
                since=args.since, until=args.until, after_sequence=after, limit=EXPORT_PAGE
            )
            for record in page:
                sys.stdout.write(
                    json.dumps(record.as_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
                )
            if len(page) < EXPORT_PAGE:
                break
            after = page[-1].sequence
    except (StoreError, SQLAlchemyError) as error:
        url = _database_url(args)
        raise CliError(f"cannot read the audit trail: {_hide_password(str(error), url)}") from None
    finally:
        store.close()
    sys.stdout.flush()
    return 0


def add_parser(commands: Commands) -> None:
    audit = commands.add_parser(
        "audit",
        help="verify and export the audit trail",
        description="The audit trail (GB/T 22239-2019 §8.1.4): check its hash chain, export it.",
    )
    actions = audit.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        metavar="URL",
        help=f"the store (or {env_name('database_url')}, or the SQLite file in "
        f"{env_name('data_dir')}); prefer the variable, which no `ps` shows",
    )
    verify = actions.add_parser(
        "verify",
        parents=[common],
        help="check every record's hash and link; exit 1 naming the first broken one",
    )
    verify.set_defaults(handler=command_audit_verify)
    export = actions.add_parser(
        "export", parents=[common], help="write the records as JSON lines to standard output"
    )
    export.add_argument(
        "--since", type=_moment, required=True, metavar="DATE", help="from (ISO 8601, UTC)"
    )
    export.add_argument(
        "--until", type=_moment, metavar="DATE", help="up to, not including (ISO 8601, UTC)"
    )
    export.set_defaults(handler=command_audit_export)
