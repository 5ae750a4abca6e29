"""The storage contract, the audit trail: append-only, hash-chained, verified, kept and purged
(GB/T 22239-2019 §8.1.4; THREAT_MODEL row 9).

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``). The tampering tests play an
insider with write access to the database: they edit rows with raw SQL (on PostgreSQL after
disabling the append-only trigger, as the table's owner could) and show that verification names
the first record that was changed, removed or reordered.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from tongxing_dev.postgres import PostgresEndpoint

from gateway.housekeeping import ExpiredRecordPurge
from gateway.store import SqlStore, Store
from gateway.store.contract.audit import (
    GENESIS_HASH,
    MAX_DETAILS_BYTES,
    AuditEntry,
    audit_hash,
)

from .support import DAY, HOUR, MINUTE, NOW, _race

SUBJECT = "subject-0001"


def _entry(
    kind: str = "signin.completed",
    at: datetime.datetime = NOW,
    *,
    subject: str | None = SUBJECT,
    outcome: str = "success",
    **changes: object,
) -> AuditEntry:
    values: dict[str, object] = {
        "kind": kind,
        "outcome": outcome,
        "occurred_at": at,
        "subject": subject,
        "portal": "zj-gov-portal",
        "region": "zj",
        "level": "loa2",
        "details": {"amr": ["pwd"], "single_sign_on": False},
    } | changes
    return AuditEntry(**values)  # type: ignore[arg-type]


def _fill(store: Store, count: int, start: datetime.datetime = NOW) -> None:
    for i in range(count):
        store.append_audit(_entry(at=start + i * MINUTE, details={"n": i}))


@contextmanager
def _insider(store: SqlStore) -> Iterator[Connection]:
    """A connection that edits the trail as an insider who owns the table: on PostgreSQL with
    the append-only trigger switched off (``ALTER TABLE ... DISABLE TRIGGER USER``), and on
    again afterwards."""
    postgres = store.engine.dialect.name == "postgresql"
    with store.engine.begin() as conn:
        if postgres:
            conn.exec_driver_sql("ALTER TABLE audit_records DISABLE TRIGGER USER")
        yield conn
        if postgres:
            conn.exec_driver_sql("ALTER TABLE audit_records ENABLE TRIGGER USER")


# --- append and chain ---------------------------------------------------------------------------


def test_an_empty_trail_verifies(store: Store) -> None:
    result = store.verify_audit()
    assert result.intact
    assert result.records == 0
    assert store.audit_anchor().head_hash == GENESIS_HASH


def test_appended_records_are_numbered_and_chained_by_their_hashes(store: Store) -> None:
    first = store.append_audit(_entry(at=NOW))
    second = store.append_audit(
        _entry("consent.given", NOW + MINUTE, outcome="given", details={"claims": ["name"]})
    )
    assert (first.sequence, second.sequence) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert first.chain == second.chain == "2025-03-01"
    assert second.hash == audit_hash(2, "2025-03-01", second.entry, first.hash)

    assert store.list_audit() == [first, second]
    assert store.list_audit(since=NOW + MINUTE) == [second]
    assert store.list_audit(until=NOW + MINUTE) == [first]
    assert store.list_audit(after_sequence=1) == [second]
    anchor = store.audit_anchor()
    assert (anchor.head_sequence, anchor.head_hash) == (2, second.hash)
    result = store.verify_audit()
    assert result.intact
    assert (result.records, result.chains, result.first_sequence, result.last_sequence) == (
        2,
        1,
        1,
        2,
    )


def test_a_new_day_opens_a_new_chain_linked_to_the_day_before(store: Store) -> None:
    day_one = store.append_audit(_entry(at=NOW))
    day_two = store.append_audit(_entry(at=NOW + DAY))
    # A replica whose clock is behind: the record joins the newest chain, never an older one.
    late = store.append_audit(_entry(at=NOW + DAY - 2 * HOUR * 24))
    assert (day_one.chain, day_two.chain, late.chain) == ("2025-03-01", "2025-03-02", "2025-03-02")
    assert day_two.prev_hash == day_one.hash
    assert late.prev_hash == day_two.hash
    result = store.verify_audit()
    assert result.intact
    assert result.chains == 2


def test_the_account_page_finds_a_subjects_recent_sign_ins_newest_first(store: Store) -> None:
    _fill(store, 3)
    store.append_audit(_entry("consent.given", NOW + HOUR, outcome="given"))
    store.append_audit(_entry(at=NOW + HOUR, subject="someone-else"))
    recent = store.recent_audit(SUBJECT, frozenset({"signin.completed"}), limit=2)
    assert [r.entry.details["n"] for r in recent] == [2, 1]
    assert all(r.entry.subject == SUBJECT for r in recent)


def test_details_are_bounded_and_json(store: Store) -> None:
    with pytest.raises(ValueError, match="exceed"):
        _entry(details={"blob": "x" * MAX_DETAILS_BYTES})
    with pytest.raises(ValueError, match="JSON"):
        _entry(details={"when": NOW})
    with pytest.raises(ValueError, match="timezone-aware"):
        _entry(at=datetime.datetime(2025, 3, 1, 8, 0))
    assert store.audit_anchor().head_sequence == 0  # nothing half-written


def test_records_read_back_exactly_as_hashed(store: Store) -> None:
    odd = {"名字": "王小明", "nested": {"b": [1, 2.5, None, True], "a": ""}, "big": 2**53}
    record = store.append_audit(_entry(at=NOW.replace(microsecond=123456), details=odd))
    (read,) = store.list_audit()
    assert read == record
    assert store.verify_audit().intact


# --- tamper evidence ----------------------------------------------------------------------------


def test_verification_names_a_changed_record(sql_store: SqlStore) -> None:
    _fill(sql_store, 5)
    with _insider(sql_store) as conn:
        conn.execute(text("UPDATE audit_records SET outcome = 'failure' WHERE sequence = 3"))
    result = sql_store.verify_audit()
    assert not result.intact
    assert result.problem_sequence == 3
    assert result.problem is not None
    assert "changed" in result.problem


def test_verification_names_a_record_whose_details_were_changed(sql_store: SqlStore) -> None:
    _fill(sql_store, 3)
    with _insider(sql_store) as conn:
        conn.execute(
            text("UPDATE audit_records SET details = :details WHERE sequence = 2"),
            {"details": '{"n":9}'},
        )
    assert sql_store.verify_audit().problem_sequence == 2


def test_verification_names_a_removed_record(sql_store: SqlStore) -> None:
    _fill(sql_store, 5)
    with _insider(sql_store) as conn:
        conn.execute(text("DELETE FROM audit_records WHERE sequence = 2"))
    result = sql_store.verify_audit()
    assert result.problem_sequence == 2
    assert result.problem is not None
    assert "missing" in result.problem


def test_verification_names_a_removed_record_renumbered_to_hide_the_gap(
    sql_store: SqlStore,
) -> None:
    _fill(sql_store, 4)
    with _insider(sql_store) as conn:
        conn.execute(text("DELETE FROM audit_records WHERE sequence = 2"))
        for sequence in (3, 4):
            conn.execute(
                text("UPDATE audit_records SET sequence = :new WHERE sequence = :old"),
                {"new": sequence - 1, "old": sequence},
            )
        conn.execute(text("UPDATE audit_head SET head_sequence = 3"))
    result = sql_store.verify_audit()
    assert result.problem_sequence == 2
    assert result.problem is not None
    assert "does not follow" in result.problem


def test_verification_names_the_removal_of_the_newest_records(sql_store: SqlStore) -> None:
    _fill(sql_store, 4)
    with _insider(sql_store) as conn:
        conn.execute(text("DELETE FROM audit_records WHERE sequence >= 3"))
    result = sql_store.verify_audit()
    assert result.problem_sequence == 3
    assert result.problem is not None
    assert "newest" in result.problem


def test_verification_names_two_swapped_records(sql_store: SqlStore) -> None:
    _fill(sql_store, 5)
    with _insider(sql_store) as conn:
        # Whole rows trade places: record 4 aside, record 3 into its place, record 4 into 3's.
        conn.execute(text("UPDATE audit_records SET sequence = 99 WHERE sequence = 4"))
        conn.execute(text("UPDATE audit_records SET sequence = 4 WHERE sequence = 3"))
        conn.execute(text("UPDATE audit_records SET sequence = 3 WHERE sequence = 99"))
    result = sql_store.verify_audit()
    assert result.problem_sequence == 3
    assert result.problem is not None
    assert "does not follow" in result.problem


def test_verification_names_a_swap_of_contents_with_the_hashes_recomputed_in_place(
    sql_store: SqlStore,
) -> None:
    _fill(sql_store, 4)
    with _insider(sql_store) as conn:
        rows = {
            row.sequence: row
            for row in conn.execute(
                text("SELECT sequence, occurred_at, details FROM audit_records")
            )
        }
        # The insider swaps the times and details of records 2 and 3 but cannot fix the hashes.
        for mine, theirs in ((2, 3), (3, 2)):
            conn.execute(
                text(
                    "UPDATE audit_records SET occurred_at = :at, details = :details "
                    "WHERE sequence = :sequence"
                ),
                {
                    "at": rows[theirs].occurred_at,
                    "details": rows[theirs].details,
                    "sequence": mine,
                },
            )
    assert sql_store.verify_audit().problem_sequence == 2


# --- append-only on PostgreSQL ------------------------------------------------------------------


@pytest.fixture
def postgres_store(postgres: PostgresEndpoint) -> Iterator[SqlStore]:
    """A migrated store on PostgreSQL only (the trigger tests have no SQLite counterpart)."""
    name = f"audit_{uuid.uuid4().hex[:16]}"
    postgres.create_database(name)
    store = SqlStore.from_url(postgres.sqlalchemy_url(name))
    store.migrate()
    yield store
    store.close()
    postgres.drop_database(name)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET outcome = 'failure' WHERE sequence = 1",
        "DELETE FROM audit_records WHERE sequence = 1",
        "DELETE FROM audit_records",
        "TRUNCATE audit_records",
    ],
)
def test_postgresql_refuses_to_change_or_remove_records(
    postgres_store: SqlStore, statement: str
) -> None:
    sql_store = postgres_store  # the append-only trigger is PostgreSQL's (no SQLite variant)
    _fill(sql_store, 2)
    with pytest.raises(DBAPIError, match="append-only"), sql_store.engine.begin() as conn:
        conn.exec_driver_sql(statement)
    assert sql_store.verify_audit().records == 2
    # The purge's setting is transaction-local: another transaction cannot borrow it.
    with sql_store.engine.begin() as conn:
        conn.exec_driver_sql("SELECT set_config('tongxing.audit_purge', 'on', true)")
    with pytest.raises(DBAPIError, match="append-only"), sql_store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_records WHERE sequence = 1")


# --- retention ----------------------------------------------------------------------------------


def test_the_purge_deletes_whole_old_days_from_the_start_and_the_rest_still_verifies(
    sql_store: SqlStore,
) -> None:
    for day in range(4):
        _fill(sql_store, 3, NOW + day * DAY)
    before = sql_store.list_audit()
    assert sql_store.purge_audit(NOW + 2 * DAY + HOUR) == 6  # days 1 and 2, whole
    kept = sql_store.list_audit()
    assert kept == before[6:]
    anchor = sql_store.audit_anchor()
    assert (anchor.anchor_sequence, anchor.anchor_hash) == (6, before[5].hash)
    result = sql_store.verify_audit()
    assert result.intact
    assert (result.records, result.chains, result.first_sequence) == (6, 2, 7)
    assert sql_store.purge_audit(NOW + 2 * DAY + HOUR) == 0
    # Appending goes on after a purge.
    sql_store.append_audit(_entry(at=NOW + 4 * DAY))
    assert sql_store.verify_audit().intact


def test_after_a_purge_removing_the_first_kept_record_still_shows(sql_store: SqlStore) -> None:
    _fill(sql_store, 2, NOW)
    _fill(sql_store, 3, NOW + DAY)
    sql_store.purge_audit(NOW + DAY)
    with _insider(sql_store) as conn:
        conn.execute(text("DELETE FROM audit_records WHERE sequence = 3"))
    assert sql_store.verify_audit().problem_sequence == 3


def test_the_expired_record_purge_applies_the_audit_retention(sql_store: SqlStore) -> None:
    _fill(sql_store, 2, NOW)
    _fill(sql_store, 2, NOW + 200 * DAY)
    purge = ExpiredRecordPurge(
        sql_store,
        interval=60,
        clock=lambda: NOW + 201 * DAY,
        audit=sql_store,
        audit_retention=datetime.timedelta(days=184),
    )
    assert purge.run_once() == 2
    assert [r.sequence for r in sql_store.list_audit()] == [3, 4]
    assert sql_store.verify_audit().intact


# --- concurrency --------------------------------------------------------------------------------


def test_concurrent_appends_keep_one_valid_chain(sql_store: SqlStore) -> None:
    per_thread = 10

    def append(index: int) -> int:
        for n in range(per_thread):
            sql_store.append_audit(_entry(at=NOW, details={"thread": index, "n": n}))
        return index

    results = _race(8, append)
    assert results == list(range(8))
    records = sql_store.list_audit(limit=1000)
    assert [r.sequence for r in records] == list(range(1, 8 * per_thread + 1))
    result = sql_store.verify_audit()
    assert result.intact, result.problem
    assert result.records == 8 * per_thread
