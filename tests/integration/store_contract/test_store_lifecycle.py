"""The storage contract, the store as a whole: migrations, health, times, housekeeping.

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gateway.store import (
    CodeNotFoundError,
    SqlStore,
    Store,
    Subject,
    migrations,
    token_hash,
)
from gateway.store.schema import metadata

from .support import (
    CLIENT,
    DAY,
    HOUR,
    MINUTE,
    NOW,
    _access,
    _code,
    _key,
    _leg,
    _pending,
    _refresh,
    _session,
)

# --- lifecycle ----------------------------------------------------------------------------------


def test_a_migrated_store_is_healthy_and_at_the_newest_revision(sql_store: SqlStore) -> None:
    assert sql_store.healthy()
    assert migrations.current(sql_store.engine) == migrations.head()


def test_migrating_again_changes_nothing(sql_store: SqlStore, subject: Subject) -> None:
    sql_store.migrate()
    assert sql_store.get_subject(subject.id) == subject
    assert migrations.current(sql_store.engine) == migrations.head()


def test_the_migrations_create_exactly_the_declared_tables(sql_store: SqlStore) -> None:
    with sql_store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_a_store_that_cannot_reach_its_database_is_not_healthy(
    store_url: str, tmp_path: Path
) -> None:
    if store_url.startswith("sqlite"):
        broken = f"sqlite:///{tmp_path / 'no-such-folder' / 'store.db'}"
    else:
        broken = store_url.replace("@", "-wrong@", 1)  # same server, wrong password
    store = SqlStore.from_url(broken)
    try:
        assert not store.healthy()
    finally:
        store.close()


def test_times_without_a_time_zone_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.link_subject(_key("x"), "zj", "sub", datetime.datetime(2025, 3, 1, 8, 0))


# --- housekeeping -------------------------------------------------------------------------------


def test_purge_deletes_what_expired_and_keeps_what_lives(store: Store, subject: Subject) -> None:
    live_grant = store.create_grant(CLIENT, subject.id, NOW)
    spent_grant = store.create_grant(CLIENT, subject.id, NOW)
    store.save_code(_code(live_grant, "code-old", expires_at=NOW + MINUTE))
    store.save_code(_code(live_grant, "code-new", expires_at=NOW + DAY))
    store.save_access_token(_access(live_grant, "at-old", expires_at=NOW + MINUTE))
    store.save_access_token(_access(live_grant, "at-new", expires_at=NOW + DAY))
    store.save_refresh_token(_refresh(live_grant, "rt-new", expires_at=NOW + DAY))
    store.save_access_token(_access(spent_grant, "at-spent", expires_at=NOW + MINUTE))
    store.revoke_grant(spent_grant.grant_id, NOW)
    store.save_pending_authorization(_pending("pending-old", upstream=_leg("old"), expires_in=1))
    store.save_pending_authorization(
        _pending("pending-new", upstream=_leg("new"), expires_in=24 * 60)
    )
    old_session = _session(subject, "sso-old", expires_at=NOW + MINUTE)
    store.create_session(old_session)
    store.add_participant(old_session.session_hash, "portal-a", "sid", NOW)
    in_old_session = store.create_grant(
        CLIENT, subject.id, NOW, session_hash=old_session.session_hash
    )
    store.create_session(_session(subject, "sso-new", expires_at=NOW + DAY))

    later = NOW + HOUR
    # code, 2 access tokens, pending sign-in, participant, session, the spent revoked grant
    assert store.purge_expired(later) == 7
    assert store.purge_expired(later) == 0

    assert store.get_grant(spent_grant.grant_id) is None
    assert store.get_grant(live_grant.grant_id) is not None
    assert store.redeem_code(token_hash("code-new"), later).grant_id == live_grant.grant_id
    with pytest.raises(CodeNotFoundError):
        store.redeem_code(token_hash("code-old"), later)
    assert store.get_access_token(token_hash("at-new"), later) is not None
    assert store.get_refresh_token(token_hash("rt-new"), later) is not None
    assert store.get_pending_authorization(token_hash("pending-new"), later) is not None
    assert store.get_session(token_hash("sso-new"), later) is not None
    assert store.end_session(old_session.session_hash, later) == []
    outlived = store.get_grant(in_old_session.grant_id)  # a grant outlives its session
    assert outlived is not None
    assert outlived.session_hash is None
