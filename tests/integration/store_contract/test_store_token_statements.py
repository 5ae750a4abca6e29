"""The storage contract, the writes and reads of the token endpoints in one statement each.

A code exchange redeems its code and reads the grant with its SSO session at once
(``redeem_code_session``); a client credentials response writes its grant and access token
together (``issue_access_token_grant``). On PostgreSQL these, and the token reads, run as single
prepared statements on the pooled psycopg connection (``SqlBase._hot``): the same answers, the
same errors, the same UTC datetimes as every other read, and a dropped connection is a
:class:`StoreUnavailableError` followed by a fresh connection.

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``) unless it says otherwise.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text
from tongxing_dev.postgres import PostgresEndpoint

from gateway.store import (
    CodeNotFoundError,
    CodeRecord,
    CodeReplayedError,
    DuplicateRecordError,
    Grant,
    SqlStore,
    Store,
    StoreUnavailableError,
    Subject,
    token_hash,
)

from .support import (
    CLIENT,
    HOUR,
    MINUTE,
    NOW,
    _access,
    _code,
    _count,
    _key,
    _refresh,
    _session,
)

# --- a code redeemed with its grant and session -------------------------------------------------


def test_a_code_is_redeemed_with_its_grant_and_live_session_in_one_read(
    store: Store, subject: Subject
) -> None:
    session = _session(subject)
    store.create_session(session)
    grant = store.create_grant(CLIENT, subject.id, NOW, session_hash=session.session_hash)
    code = _code(grant)
    store.save_code(code)
    later = NOW + 5 * datetime.timedelta(seconds=1)
    redeemed, read_grant, read_session = store.redeem_code_session(code.code_hash, later)
    assert redeemed == dataclasses.replace(code, redeemed_at=later)
    assert redeemed.claims == {"auth_time": 1740816000, "acr": "loa2", "amr": ["pwd", "otp"]}
    assert (read_grant, read_session) == (grant, session)
    assert redeemed.redeemed_at is not None
    assert redeemed.redeemed_at.tzinfo is datetime.UTC
    assert read_grant.created_at.tzinfo is datetime.UTC


def test_a_code_redeemed_with_its_grant_after_the_session_ended_has_no_session(
    store: Store, subject: Subject
) -> None:
    session = _session(subject)
    store.create_session(session)
    grant = store.create_grant(CLIENT, subject.id, NOW, session_hash=session.session_hash)
    store.save_code(_code(grant))
    store.end_session(session.session_hash, NOW)
    assert store.redeem_code_session(token_hash("code"), NOW)[1:] == (grant, None)


def test_a_code_redeemed_with_its_grant_is_redeemed_once_and_a_replay_revokes_the_grant(
    store: Store, grant: Grant
) -> None:
    store.save_code(_code(grant))
    store.redeem_code_session(token_hash("code"), NOW)
    store.save_access_token(_access(grant))
    with pytest.raises(CodeReplayedError) as raised:
        store.redeem_code_session(token_hash("code"), NOW + MINUTE / 2)
    assert raised.value.grant_id == grant.grant_id
    assert store.get_access_token(token_hash("at"), NOW) is None
    with pytest.raises(CodeReplayedError):  # the plain redemption agrees
        store.redeem_code(token_hash("code"), NOW + MINUTE / 2)


def test_a_code_redeemed_with_its_grant_follows_the_code_rules(store: Store, grant: Grant) -> None:
    store.save_code(_code(grant, expires_at=NOW + MINUTE))
    with pytest.raises(CodeNotFoundError):
        store.redeem_code_session(token_hash("unknown"), NOW)
    with pytest.raises(CodeNotFoundError):  # expired
        store.redeem_code_session(token_hash("code"), NOW + MINUTE)
    store.save_code(_code(grant, "code-2"))
    store.revoke_grant(grant.grant_id, NOW)
    with pytest.raises(CodeNotFoundError):  # its grant was revoked
        store.redeem_code_session(token_hash("code-2"), NOW)


def test_fifty_concurrent_redemptions_with_the_grant_succeed_once(
    store: Store, grant: Grant
) -> None:
    from .support import _race

    store.save_code(_code(grant))
    results = _race(50, lambda _: store.redeem_code_session(token_hash("code"), NOW))
    won = [r for r in results if isinstance(r, tuple)]
    assert len(won) == 1
    assert isinstance(won[0][0], CodeRecord)
    assert all(isinstance(r, CodeReplayedError) for r in results if not isinstance(r, tuple))


# --- a client credentials token with a grant of its own -----------------------------------------


def test_a_portal_token_is_stored_with_a_new_grant_of_its_own(
    sql_store: SqlStore, store: Store
) -> None:
    asked = dataclasses.replace(_access(Grant("-", CLIENT, CLIENT, None, NOW)), scope="api")
    stored, grant = store.issue_access_token_grant(asked, NOW)
    assert stored == dataclasses.replace(asked, grant_id=grant.grant_id)
    assert grant == Grant(grant.grant_id, CLIENT, CLIENT, None, NOW)
    assert store.get_grant(grant.grant_id) == grant
    found = store.get_access_token(stored.token_hash, NOW)
    assert found == stored
    assert found is not None
    assert found.expires_at.tzinfo is datetime.UTC
    # Every token its own grant: a second one does not share the first one's.
    other, other_grant = store.issue_access_token_grant(
        dataclasses.replace(asked, token_hash=token_hash("at-2")), NOW
    )
    assert other_grant.grant_id != grant.grant_id
    store.revoke_grant(grant.grant_id, NOW)
    assert store.get_access_token(stored.token_hash, NOW) is None
    assert store.get_access_token(other.token_hash, NOW) == other
    assert _count(sql_store, "grants") == 2


def test_a_portal_token_that_cannot_be_stored_leaves_no_grant(
    sql_store: SqlStore, store: Store
) -> None:
    asked = _access(Grant("-", CLIENT, CLIENT, None, NOW))
    store.issue_access_token_grant(asked, NOW)
    with pytest.raises(DuplicateRecordError):
        store.issue_access_token_grant(asked, NOW)
    assert _count(sql_store, "grants") == 1
    assert _count(sql_store, "access_tokens") == 1
    with pytest.raises(ValueError, match="aware"):
        store.issue_access_token_grant(
            dataclasses.replace(
                asked, token_hash=token_hash("x"), expires_at=NOW.replace(tzinfo=None)
            ),
            NOW,
        )
    assert _count(sql_store, "grants") == 1


# --- the statements' rows, and a connection that goes away --------------------------------------


def test_tokens_read_back_in_utc_whatever_the_session_time_zone(
    sql_store: SqlStore, store: Store, grant: Grant, subject: Subject
) -> None:
    session = _session(subject)
    store.create_session(session)
    in_session = store.create_grant(CLIENT, subject.id, NOW, session_hash=session.session_hash)
    access = _access(in_session, expires_at=NOW + HOUR)
    store.save_refresh_token(_refresh(in_session), access_token=access)
    if sql_store.engine.dialect.name == "postgresql":
        # Every pooled connection of this store now speaks another time zone.
        with sql_store.engine.connect() as conn:
            database = conn.execute(text("SELECT current_database()")).scalar_one()
            conn.execute(text(f"ALTER DATABASE \"{database}\" SET TimeZone = 'Asia/Shanghai'"))
            conn.commit()
        sql_store.engine.dispose()
    found = store.get_access_token_session(access.token_hash, NOW)
    assert found is not None
    assert found == (access, session, None)
    assert found[0].expires_at.tzinfo is datetime.UTC
    assert found[1] is not None
    assert found[1].auth_time.tzinfo is datetime.UTC
    refreshed = store.get_refresh_token_session(token_hash("rt"), NOW)
    assert refreshed is not None
    assert refreshed[0].expires_at.tzinfo is datetime.UTC


@pytest.fixture
def postgres_store(postgres: PostgresEndpoint) -> Iterator[SqlStore]:
    """A migrated store on PostgreSQL only: the dropped connection below is a server's act."""
    name = f"store_{uuid.uuid4().hex[:16]}"
    postgres.create_database(name)
    store = SqlStore.from_url(postgres.sqlalchemy_url(name))
    store.migrate()
    yield store
    store.close()
    postgres.drop_database(name)


def test_a_dropped_connection_is_unavailable_once_then_replaced(
    postgres_store: SqlStore,
) -> None:
    """PostgreSQL: the server ends the pooled connection under the store (a restart, a proxy);
    the read that meets it fails as unavailable, not with a driver error, and the next read
    gets a new connection."""
    sql_store = postgres_store
    subject = sql_store.link_subject(_key("citizen"), "zj", "zj-sub-1", NOW)
    grant = sql_store.create_grant(CLIENT, subject.id, NOW)
    sql_store.save_access_token(_access(grant))
    assert sql_store.get_access_token(token_hash("at"), NOW) is not None  # pooled, prepared
    with sql_store.engine.connect() as conn:
        database = conn.execute(text("SELECT current_database()")).scalar_one()
    url = sql_store.engine.url.set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
    with pytest.raises(StoreUnavailableError):
        sql_store.get_access_token(token_hash("at"), NOW)
    assert sql_store.get_access_token(token_hash("at"), NOW) is not None
