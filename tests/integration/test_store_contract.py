"""The storage contract: every engine passes these same tests (house rule 3).

Each test gets a fresh, migrated store on each engine: SQLite on a temporary file, PostgreSQL on
a new database of the harness cluster. The concurrent tests start their threads together with a
barrier, so the operations really overlap.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select
from tongxing_dev.postgres import PostgresEndpoint

from gateway.store import (
    AccessTokenRecord,
    CodeNotFoundError,
    CodeRecord,
    CodeReplayedError,
    DuplicateRecordError,
    Grant,
    GrantNotFoundError,
    LoginTransaction,
    LoginTransactionNotFoundError,
    RefreshTokenNotFoundError,
    RefreshTokenRecord,
    RefreshTokenReuseError,
    RefreshTokenStatus,
    RegistryKind,
    RevisionConflictError,
    SessionNotFoundError,
    SqlStore,
    SsoSession,
    Store,
    Subject,
    SubjectLinkConflictError,
    SubjectNotFoundError,
    migrations,
    token_hash,
)
from gateway.store.contract import RecordNotFoundError, RecoveryCode, TotpCredential
from gateway.store.schema import attempt_counters, metadata, refresh_tokens, subjects

T = TypeVar("T")

NOW = datetime.datetime(2025, 3, 1, 8, 0, tzinfo=datetime.UTC)
MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
CLIENT = "zj-gov-portal"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    postgres: PostgresEndpoint = request.getfixturevalue("postgres")
    name = f"store_{uuid.uuid4().hex[:16]}"
    postgres.create_database(name)
    yield postgres.sqlalchemy_url(name)
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(name)
            )
        )


@pytest.fixture
def sql_store(store_url: str) -> Iterator[SqlStore]:
    store = SqlStore.from_url(store_url)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def store(sql_store: SqlStore) -> Store:
    """The store as callers see it: only the contract."""
    return sql_store


@pytest.fixture
def subject(store: Store) -> Subject:
    return store.link_subject(_key("citizen"), "zj", "zj-sub-1", NOW)


@pytest.fixture
def grant(store: Store, subject: Subject) -> Grant:
    return store.create_grant(CLIENT, subject.id, NOW)


def _key(name: str) -> str:
    """Stands for the HMAC of an identity number (gateway.identity.identity_key)."""
    return token_hash(f"identity:{name}")


def _code(
    grant: Grant, name: str = "code", *, expires_at: datetime.datetime | None = None
) -> CodeRecord:
    return CodeRecord(
        code_hash=token_hash(name),
        grant_id=grant.grant_id,
        client_id=grant.client_id,
        redirect_uri="https://portal.zj.gov.cn/callback",
        scope="openid profile",
        nonce="n-0S6_WzA2Mj",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method="S256",
        claims={"auth_time": 1740816000, "acr": "loa2", "amr": ["pwd", "otp"]},
        expires_at=expires_at or NOW + MINUTE,
    )


def _access(
    grant: Grant, name: str = "at", *, expires_at: datetime.datetime | None = None
) -> AccessTokenRecord:
    return AccessTokenRecord(
        token_hash=token_hash(name),
        grant_id=grant.grant_id,
        client_id=grant.client_id,
        subject=grant.subject,
        scope="openid profile",
        expires_at=expires_at or NOW + HOUR,
    )


def _refresh(
    grant: Grant, name: str = "rt", *, expires_at: datetime.datetime | None = None
) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        token_hash=token_hash(name),
        grant_id=grant.grant_id,
        client_id=grant.client_id,
        subject=grant.subject,
        scope="openid profile offline_access",
        expires_at=expires_at or NOW + DAY,
    )


def _session(
    subject: Subject, name: str = "sso", *, expires_at: datetime.datetime | None = None
) -> SsoSession:
    return SsoSession(
        session_hash=token_hash(name),
        subject=subject.id,
        region="zj",
        auth_time=NOW,
        acr="loa2",
        amr=("pwd", "otp"),
        created_at=NOW,
        expires_at=expires_at or NOW + 8 * HOUR,
        claims={"name": "王小明", "phone_number_verified": True},
    )


def _transaction(
    name: str = "state", *, expires_at: datetime.datetime | None = None
) -> LoginTransaction:
    return LoginTransaction(
        state_hash=token_hash(name),
        region="zj",
        nonce="upstream-nonce",
        code_verifier="dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        request={"client_id": CLIENT, "scope": "openid", "state": "portal-state"},
        expires_at=expires_at or NOW + 10 * MINUTE,
    )


def _race(threads: int, action: Callable[[int], T]) -> list[T | Exception]:
    """Run ``action(i)`` in ``threads`` threads released together; results or exceptions."""
    barrier = threading.Barrier(threads)

    def run(index: int) -> T | Exception:
        barrier.wait(timeout=30)
        try:
            return action(index)
        except Exception as error:  # collected and asserted on by the test
            return error

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, range(threads)))


def _count(store: SqlStore, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(metadata.tables[table])).scalar_one()


def _live_tokens(store: SqlStore, grant_id: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(
            select(func.count())
            .select_from(refresh_tokens)
            .where(refresh_tokens.c.grant_id == grant_id, refresh_tokens.c.status == "live")
        ).scalar_one()


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


# --- national subjects --------------------------------------------------------------------------


def test_the_first_login_creates_a_subject_and_the_next_finds_it(store: Store) -> None:
    first = store.link_subject(_key("wang"), "zj", "zj-123", NOW)
    again = store.link_subject(_key("wang"), "zj", "zj-123", NOW + DAY)
    assert again == first
    assert first.identity_key == _key("wang")
    assert first.created_at == NOW
    assert store.get_subject(first.id) == first
    assert store.find_subject("zj", "zj-123") == first


def test_a_login_through_another_region_reaches_the_same_subject(store: Store) -> None:
    at_home = store.link_subject(_key("wang"), "zj", "zj-123", NOW)
    after_moving = store.link_subject(_key("wang"), "sh", "sh-987", NOW + DAY)
    assert after_moving.id == at_home.id
    links = store.list_subject_links(at_home.id)
    assert [(link.region, link.upstream_sub) for link in links] == [
        ("sh", "sh-987"),
        ("zj", "zj-123"),
    ]


def test_two_identities_are_two_subjects(store: Store) -> None:
    wang = store.link_subject(_key("wang"), "zj", "zj-1", NOW)
    li = store.link_subject(_key("li"), "zj", "zj-2", NOW)
    assert wang.id != li.id


def test_an_upstream_account_asserting_another_identity_is_a_conflict(
    sql_store: SqlStore,
) -> None:
    store: Store = sql_store
    store.link_subject(_key("wang"), "zj", "zj-1", NOW)
    with pytest.raises(SubjectLinkConflictError):
        store.link_subject(_key("li"), "zj", "zj-1", NOW)
    # Nothing half-written: no subject was made for the second identity.
    with sql_store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(subjects)).scalar_one() == 1
    assert store.find_subject("zj", "zj-1") is not None
    assert store.get_subject("no-such-subject") is None
    assert store.find_subject("sh", "zj-1") is None


def test_twenty_concurrent_first_logins_create_one_subject(store: Store) -> None:
    results = _race(
        20, lambda i: store.link_subject(_key("new"), ["zj", "sh"][i % 2], f"sub-{i % 2}", NOW)
    )
    assert all(isinstance(result, Subject) for result in results), results
    assert len({result.id for result in results if isinstance(result, Subject)}) == 1


# --- registry -----------------------------------------------------------------------------------


def test_a_document_is_created_at_revision_one_and_read_back(store: Store) -> None:
    document = {"code": "zj", "names": {"zh": "浙江", "en": "Zhejiang"}, "enabled": True}
    stored = store.put_document(RegistryKind.REGION, "zj", document, NOW)
    assert (stored.kind, stored.key, stored.revision) == (RegistryKind.REGION, "zj", 1)
    assert stored.document == document
    assert stored.created_at == stored.updated_at == NOW
    assert store.get_document(RegistryKind.REGION, "zj") == stored


def test_replacing_a_document_bumps_its_revision_and_keeps_its_creation_time(
    store: Store,
) -> None:
    store.put_document(RegistryKind.PORTAL, CLIENT, {"v": 1}, NOW)
    replaced = store.put_document(RegistryKind.PORTAL, CLIENT, {"v": 2}, NOW + HOUR)
    assert replaced.revision == 2
    assert replaced.document == {"v": 2}
    assert (replaced.created_at, replaced.updated_at) == (NOW, NOW + HOUR)


def test_regions_and_portals_are_listed_by_key_in_separate_namespaces(store: Store) -> None:
    for code in ("zj", "bj", "sh"):
        store.put_document(RegistryKind.REGION, code, {"code": code}, NOW)
    store.put_document(RegistryKind.PORTAL, "zj", {"client_id": "zj"}, NOW)
    assert [doc.key for doc in store.list_documents(RegistryKind.REGION)] == ["bj", "sh", "zj"]
    portals = store.list_documents(RegistryKind.PORTAL)
    assert [(doc.key, doc.document) for doc in portals] == [("zj", {"client_id": "zj"})]


def test_deleting_a_document_twice_returns_false_the_second_time(store: Store) -> None:
    store.put_document(RegistryKind.REGION, "zj", {}, NOW)
    assert store.delete_document(RegistryKind.REGION, "zj") is True
    assert store.delete_document(RegistryKind.REGION, "zj") is False
    assert store.get_document(RegistryKind.REGION, "zj") is None


def test_a_create_only_put_refuses_an_existing_key(store: Store) -> None:
    created = store.put_document(RegistryKind.REGION, "zj", {"v": 1}, NOW, expected_revision=0)
    assert created.revision == 1
    with pytest.raises(RevisionConflictError) as raised:
        store.put_document(RegistryKind.REGION, "zj", {"v": 2}, NOW, expected_revision=0)
    assert raised.value.actual == 1
    assert store.get_document(RegistryKind.REGION, "zj") == created


def test_a_replacement_of_a_stale_revision_is_refused(store: Store) -> None:
    store.put_document(RegistryKind.REGION, "zj", {"v": 1}, NOW)
    second = store.put_document(RegistryKind.REGION, "zj", {"v": 2}, NOW, expected_revision=1)
    assert second.revision == 2
    with pytest.raises(RevisionConflictError) as raised:
        store.put_document(RegistryKind.REGION, "zj", {"v": 3}, NOW, expected_revision=1)
    assert (raised.value.expected, raised.value.actual) == (1, 2)
    with pytest.raises(RevisionConflictError) as missing:
        store.put_document(RegistryKind.REGION, "sh", {"v": 1}, NOW, expected_revision=4)
    assert missing.value.actual is None


def test_a_delete_of_the_revision_read_deletes_it(store: Store) -> None:
    store.put_document(RegistryKind.PORTAL, CLIENT, {"v": 1}, NOW)
    read = store.put_document(RegistryKind.PORTAL, CLIENT, {"v": 2}, NOW)
    assert store.delete_document(RegistryKind.PORTAL, CLIENT, expected_revision=read.revision)
    assert store.get_document(RegistryKind.PORTAL, CLIENT) is None


def test_a_delete_of_a_stale_revision_is_refused_and_deletes_nothing(store: Store) -> None:
    store.put_document(RegistryKind.PORTAL, CLIENT, {"v": 1}, NOW)
    current = store.put_document(RegistryKind.PORTAL, CLIENT, {"v": 2}, NOW + HOUR)
    with pytest.raises(RevisionConflictError) as raised:
        store.delete_document(RegistryKind.PORTAL, CLIENT, expected_revision=1)
    assert (raised.value.kind, raised.value.key) == (RegistryKind.PORTAL, CLIENT)
    assert (raised.value.expected, raised.value.actual) == (1, 2)
    assert store.get_document(RegistryKind.PORTAL, CLIENT) == current


def test_a_conditional_delete_of_a_missing_document_is_a_conflict(store: Store) -> None:
    with pytest.raises(RevisionConflictError) as raised:
        store.delete_document(RegistryKind.REGION, "zj", expected_revision=1)
    assert raised.value.actual is None
    store.put_document(RegistryKind.REGION, "zj", {"v": 1}, NOW)
    with pytest.raises(ValueError, match="expected_revision"):
        store.delete_document(RegistryKind.REGION, "zj", expected_revision=0)
    assert store.get_document(RegistryKind.REGION, "zj") is not None


def test_of_concurrent_replaces_and_deletes_of_one_revision_one_succeeds(store: Store) -> None:
    store.put_document(RegistryKind.REGION, "zj", {"v": 0}, NOW)

    def act(index: int) -> str:
        if index % 2:
            store.delete_document(RegistryKind.REGION, "zj", expected_revision=1)
            return "deleted"
        store.put_document(RegistryKind.REGION, "zj", {"v": index}, NOW, expected_revision=1)
        return f"replaced {index}"

    results = _race(20, act)
    won = [result for result in results if isinstance(result, str)]
    assert len(won) == 1, results
    assert all(
        isinstance(result, RevisionConflictError) for result in results if result not in won
    ), results
    after = store.get_document(RegistryKind.REGION, "zj")
    if won[0] == "deleted":
        assert after is None
    else:
        assert after is not None
        assert (after.revision, f"replaced {after.document['v']}") == (2, won[0])


def test_a_document_that_is_not_json_is_refused_and_nothing_is_stored(store: Store) -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        store.put_document(RegistryKind.REGION, "zj", {"when": NOW}, NOW)
    assert store.get_document(RegistryKind.REGION, "zj") is None


# --- grants -------------------------------------------------------------------------------------


def test_a_grant_is_created_live_and_revoked_once(store: Store, subject: Subject) -> None:
    grant = store.create_grant(CLIENT, subject.id, NOW)
    assert grant.revoked_at is None
    assert store.get_grant(grant.grant_id) == grant
    assert store.revoke_grant(grant.grant_id, NOW + MINUTE) is True
    assert store.revoke_grant(grant.grant_id, NOW + HOUR) is False
    revoked = store.get_grant(grant.grant_id)
    assert revoked is not None
    assert revoked.revoked_at == NOW + MINUTE
    assert store.revoke_grant("no-such-grant", NOW) is False


def test_a_grant_is_made_only_in_a_live_session(store: Store, subject: Subject) -> None:
    session = _session(subject)
    store.create_session(session)
    grant = store.create_grant(CLIENT, subject.id, NOW, session_hash=session.session_hash)
    assert grant.session_hash == session.session_hash
    with pytest.raises(SessionNotFoundError):
        store.create_grant(CLIENT, subject.id, NOW, session_hash=token_hash("unknown"))
    store.end_session(session.session_hash, NOW)
    with pytest.raises(SessionNotFoundError):
        store.create_grant(CLIENT, subject.id, NOW, session_hash=session.session_hash)


def test_revoking_the_grants_of_a_session_kills_their_tokens(
    store: Store, subject: Subject
) -> None:
    session = _session(subject)
    store.create_session(session)
    in_session = [
        store.create_grant(client, subject.id, NOW, session_hash=session.session_hash)
        for client in ("portal-a", "portal-b")
    ]
    elsewhere = store.create_grant("portal-c", subject.id, NOW)
    for grant in (*in_session, elsewhere):
        store.save_refresh_token(_refresh(grant, f"rt-{grant.grant_id}"))
    revoked = store.revoke_session_grants(session.session_hash, NOW)
    assert revoked == sorted(grant.grant_id for grant in in_session)
    assert store.revoke_session_grants(session.session_hash, NOW) == []
    assert store.get_refresh_token(token_hash(f"rt-{in_session[0].grant_id}"), NOW) is None
    assert store.get_refresh_token(token_hash(f"rt-{elsewhere.grant_id}"), NOW) is not None


# --- authorization codes ------------------------------------------------------------------------


def test_a_code_is_redeemed_once_with_everything_it_was_saved_with(
    store: Store, grant: Grant
) -> None:
    code = _code(grant)
    store.save_code(code)
    redeemed = store.redeem_code(code.code_hash, NOW + 5 * datetime.timedelta(seconds=1))
    assert redeemed == CodeRecord(
        **{**code.__dict__, "redeemed_at": NOW + 5 * datetime.timedelta(seconds=1)}
    )
    assert redeemed.claims == {"auth_time": 1740816000, "acr": "loa2", "amr": ["pwd", "otp"]}


def test_a_replayed_code_revokes_its_grant_and_what_it_yielded(store: Store, grant: Grant) -> None:
    code = _code(grant)
    store.save_code(code)
    store.redeem_code(code.code_hash, NOW)
    store.save_access_token(_access(grant))
    store.save_refresh_token(_refresh(grant))
    with pytest.raises(CodeReplayedError) as raised:
        store.redeem_code(code.code_hash, NOW + MINUTE / 2)
    assert raised.value.grant_id == grant.grant_id
    assert store.get_access_token(token_hash("at"), NOW) is None
    assert store.get_refresh_token(token_hash("rt"), NOW) is None
    revoked = store.get_grant(grant.grant_id)
    assert revoked is not None
    assert revoked.revoked_at is not None
    with pytest.raises(CodeReplayedError):  # and it stays a replay
        store.redeem_code(code.code_hash, NOW + MINUTE / 2)


def test_an_unknown_or_expired_code_is_not_found(store: Store, grant: Grant) -> None:
    code = _code(grant, expires_at=NOW + MINUTE)
    store.save_code(code)
    with pytest.raises(CodeNotFoundError):
        store.redeem_code(token_hash("never-issued"), NOW)
    with pytest.raises(CodeNotFoundError):
        store.redeem_code(code.code_hash, NOW + MINUTE)  # expired at its expiry instant
    still = store.get_grant(grant.grant_id)
    assert still is not None
    assert still.revoked_at is None


def test_a_code_of_a_revoked_grant_is_not_found(store: Store, grant: Grant) -> None:
    code = _code(grant)
    store.save_code(code)
    store.revoke_grant(grant.grant_id, NOW)
    with pytest.raises(CodeNotFoundError):
        store.redeem_code(code.code_hash, NOW)


def test_a_code_is_issued_only_under_its_own_live_grant(store: Store, grant: Grant) -> None:
    with pytest.raises(ValueError, match="client_id"):
        store.save_code(dataclasses.replace(_code(grant), client_id="other-portal"))
    with pytest.raises(GrantNotFoundError):
        store.save_code(dataclasses.replace(_code(grant), grant_id="no-such-grant"))
    store.revoke_grant(grant.grant_id, NOW)
    with pytest.raises(GrantNotFoundError):
        store.save_code(_code(grant))
    with pytest.raises(CodeNotFoundError):  # none of the refused codes was written
        store.redeem_code(_code(grant).code_hash, NOW)


def test_a_duplicate_code_is_refused(store: Store, grant: Grant) -> None:
    store.save_code(_code(grant))
    with pytest.raises(DuplicateRecordError):
        store.save_code(_code(grant))


def test_issuing_a_code_writes_grant_participant_and_code_at_once(
    sql_store: SqlStore, subject: Subject
) -> None:
    store: Store = sql_store
    session = _session(subject)
    store.create_session(session)
    template = dataclasses.replace(_code(Grant("-", CLIENT, subject.id, None, NOW)), grant_id="-")
    stored, grant = store.issue_code(
        template, subject.id, NOW, session_hash=session.session_hash, sid="sid-1"
    )
    assert (grant.client_id, grant.subject, grant.session_hash) == (
        CLIENT,
        subject.id,
        session.session_hash,
    )
    assert stored.grant_id == grant.grant_id
    assert stored.claims == {**template.claims, "sid": "sid-1"}
    assert store.get_grant_session(grant.grant_id, NOW) == (grant, session)
    assert store.list_participants(session.session_hash)[0].sid == "sid-1"
    assert store.redeem_code(stored.code_hash, NOW) == dataclasses.replace(stored, redeemed_at=NOW)
    # A second code in the same session keeps the portal's first sid, under a grant of its own.
    again, second = store.issue_code(
        dataclasses.replace(template, code_hash=token_hash("code-2")),
        subject.id,
        NOW,
        session_hash=session.session_hash,
        sid="sid-2",
    )
    assert again.claims["sid"] == "sid-1"
    assert second.grant_id != grant.grant_id
    assert [p.sid for p in store.list_participants(session.session_hash)] == ["sid-1"]
    # Without a session: no participant, no sid.
    alone, _ = store.issue_code(
        dataclasses.replace(template, code_hash=token_hash("code-3")),
        subject.id,
        NOW,
        session_hash=None,
        sid="sid-3",
    )
    assert "sid" not in alone.claims
    assert _count(sql_store, "grants") == 3


def test_issuing_a_code_that_cannot_be_stored_writes_nothing(
    sql_store: SqlStore, subject: Subject
) -> None:
    store: Store = sql_store
    session = _session(subject)
    store.create_session(session)
    template = dataclasses.replace(_code(Grant("-", CLIENT, subject.id, None, NOW)), grant_id="-")
    store.issue_code(template, subject.id, NOW, session_hash=session.session_hash, sid="sid-1")
    other = _session(subject, "other-sso")
    store.create_session(other)
    with pytest.raises(DuplicateRecordError):  # the code's hash is taken
        store.issue_code(template, subject.id, NOW, session_hash=other.session_hash, sid="sid-2")
    store.end_session(session.session_hash, NOW)
    with pytest.raises(SessionNotFoundError):
        store.issue_code(
            dataclasses.replace(template, code_hash=token_hash("code-2")),
            subject.id,
            NOW,
            session_hash=session.session_hash,
            sid="sid-3",
        )
    assert _count(sql_store, "grants") == 1
    assert _count(sql_store, "authorization_codes") == 1
    assert store.list_participants(other.session_hash) == []


def test_fifty_concurrent_redemptions_of_one_code_succeed_once(store: Store, grant: Grant) -> None:
    code = _code(grant)
    store.save_code(code)
    results = _race(50, lambda _: store.redeem_code(code.code_hash, NOW))
    won = [result for result in results if isinstance(result, CodeRecord)]
    replayed = [result for result in results if isinstance(result, CodeReplayedError)]
    assert len(won) == 1, results
    assert len(replayed) == 49, results
    assert {error.grant_id for error in replayed} == {grant.grant_id}


# --- access tokens ------------------------------------------------------------------------------


def test_an_access_token_is_found_until_it_expires(store: Store, grant: Grant) -> None:
    token = _access(grant, expires_at=NOW + HOUR)
    store.save_access_token(token)
    assert store.get_access_token(token.token_hash, NOW) == token
    assert store.get_access_token(token.token_hash, NOW + HOUR) is None
    assert store.get_access_token(token_hash("unknown"), NOW) is None


def test_an_access_token_of_a_revoked_grant_is_not_found(store: Store, grant: Grant) -> None:
    store.save_access_token(_access(grant))
    store.revoke_grant(grant.grant_id, NOW)
    assert store.get_access_token(token_hash("at"), NOW) is None
    with pytest.raises(GrantNotFoundError):
        store.save_access_token(_access(grant, "at-2"))


def test_a_revoked_access_token_is_forgotten(store: Store, grant: Grant) -> None:
    store.save_access_token(_access(grant))
    assert store.revoke_access_token(token_hash("at")) is True
    assert store.revoke_access_token(token_hash("at")) is False
    assert store.get_access_token(token_hash("at"), NOW) is None


def test_an_access_token_must_name_its_grants_subject(store: Store, grant: Grant) -> None:
    with pytest.raises(ValueError, match="subject"):
        store.save_access_token(dataclasses.replace(_access(grant), subject="x"))
    store.save_access_token(_access(grant))
    with pytest.raises(DuplicateRecordError):
        store.save_access_token(_access(grant))


# --- refresh tokens -----------------------------------------------------------------------------


def test_rotation_retires_the_old_token_and_makes_the_new_one_live(
    store: Store, grant: Grant
) -> None:
    first = _refresh(grant, "rt-1")
    store.save_refresh_token(first)
    assert store.get_refresh_token(first.token_hash, NOW) == first
    second = _refresh(grant, "rt-2", expires_at=NOW + 2 * DAY)
    old = store.rotate_refresh_token(first.token_hash, second, NOW + HOUR)
    assert old.token_hash == first.token_hash
    assert old.status is RefreshTokenStatus.ROTATED
    assert store.get_refresh_token(first.token_hash, NOW + HOUR) is None
    assert store.get_refresh_token(second.token_hash, NOW + HOUR) == second
    third = _refresh(grant, "rt-3")
    store.rotate_refresh_token(second.token_hash, third, NOW + 2 * HOUR)
    assert store.get_refresh_token(third.token_hash, NOW + 2 * HOUR) == third


def test_presenting_a_rotated_token_again_revokes_the_family(
    sql_store: SqlStore, grant: Grant
) -> None:
    store: Store = sql_store
    store.save_refresh_token(_refresh(grant, "rt-1"))
    store.rotate_refresh_token(token_hash("rt-1"), _refresh(grant, "rt-2"), NOW)
    with pytest.raises(RefreshTokenReuseError) as raised:
        store.rotate_refresh_token(token_hash("rt-1"), _refresh(grant, "rt-3"), NOW)
    assert raised.value.grant_id == grant.grant_id
    assert store.get_refresh_token(token_hash("rt-2"), NOW) is None
    assert store.get_refresh_token(token_hash("rt-3"), NOW) is None
    assert _live_tokens(sql_store, grant.grant_id) == 0
    with pytest.raises(RefreshTokenNotFoundError):  # the legitimate holder is cut off too
        store.rotate_refresh_token(token_hash("rt-2"), _refresh(grant, "rt-4"), NOW)
    with pytest.raises(RefreshTokenReuseError):  # and reuse stays reuse
        store.rotate_refresh_token(token_hash("rt-1"), _refresh(grant, "rt-5"), NOW)


def test_an_unknown_expired_or_revoked_refresh_token_is_not_found(
    store: Store, subject: Subject
) -> None:
    expiring = store.create_grant(CLIENT, subject.id, NOW)
    store.save_refresh_token(_refresh(expiring, "rt-old", expires_at=NOW + DAY))
    revoked = store.create_grant(CLIENT, subject.id, NOW)
    store.save_refresh_token(_refresh(revoked, "rt-revoked"))
    store.revoke_grant(revoked.grant_id, NOW)
    cases = {
        "never-issued": expiring,
        "rt-old": expiring,  # presented at its expiry instant
        "rt-revoked": revoked,
    }
    for name, grant in cases.items():
        with pytest.raises(RefreshTokenNotFoundError):
            store.rotate_refresh_token(token_hash(name), _refresh(grant, f"new-{name}"), NOW + DAY)
        assert store.get_refresh_token(token_hash(name), NOW + DAY) is None
    assert store.get_refresh_token(token_hash("new-rt-old"), NOW) is None  # nothing inserted


def test_a_family_never_has_two_live_tokens(store: Store, grant: Grant) -> None:
    store.save_refresh_token(_refresh(grant, "rt-1"))
    with pytest.raises(DuplicateRecordError):
        store.save_refresh_token(_refresh(grant, "rt-2"))
    assert store.get_refresh_token(token_hash("rt-2"), NOW) is None


def test_rotation_into_another_grant_is_refused_and_changes_nothing(
    store: Store, subject: Subject, grant: Grant
) -> None:
    other = store.create_grant(CLIENT, subject.id, NOW)
    store.save_refresh_token(_refresh(grant, "rt-1"))
    with pytest.raises(ValueError, match="same grant"):
        store.rotate_refresh_token(token_hash("rt-1"), _refresh(other, "rt-2"), NOW)
    assert store.get_refresh_token(token_hash("rt-1"), NOW) is not None
    assert store.get_refresh_token(token_hash("rt-2"), NOW) is None


def test_a_rotation_that_cannot_insert_its_new_token_leaves_the_old_one_live(
    store: Store, grant: Grant
) -> None:
    store.save_refresh_token(_refresh(grant, "rt-1"))
    with pytest.raises(DuplicateRecordError):  # the new hash is the old one
        store.rotate_refresh_token(token_hash("rt-1"), _refresh(grant, "rt-1"), NOW)
    assert store.get_refresh_token(token_hash("rt-1"), NOW) is not None


def test_a_first_refresh_token_and_its_access_token_are_saved_together_or_not_at_all(
    store: Store, subject: Subject, grant: Grant
) -> None:
    access = _access(grant, "at-1")
    store.save_refresh_token(_refresh(grant, "rt-1"), access_token=access)
    assert store.get_access_token(access.token_hash, NOW) == access
    assert store.get_refresh_token(token_hash("rt-1"), NOW) is not None
    second = store.create_grant(CLIENT, subject.id, NOW)
    with pytest.raises(DuplicateRecordError):  # the access token's hash is taken
        store.save_refresh_token(_refresh(second, "rt-2"), access_token=_access(second, "at-1"))
    with pytest.raises(ValueError, match="same grant"):
        store.save_refresh_token(_refresh(second, "rt-2"), access_token=_access(grant, "at-2"))
    assert store.get_refresh_token(token_hash("rt-2"), NOW) is None
    assert store.get_access_token(token_hash("at-2"), NOW) is None


def test_a_rotation_saves_its_access_token_in_the_same_transaction(
    store: Store, grant: Grant
) -> None:
    store.save_refresh_token(_refresh(grant, "rt-1"))
    access = _access(grant, "at-2")
    store.rotate_refresh_token(
        token_hash("rt-1"), _refresh(grant, "rt-2"), NOW, access_token=access
    )
    assert store.get_access_token(access.token_hash, NOW) == access
    assert store.get_refresh_token(token_hash("rt-2"), NOW) is not None


def test_a_rotation_whose_access_token_cannot_be_saved_changes_nothing(
    store: Store, subject: Subject, grant: Grant
) -> None:
    store.save_refresh_token(_refresh(grant, "rt-1"))
    store.save_access_token(_access(grant, "at-taken"))
    with pytest.raises(DuplicateRecordError):
        store.rotate_refresh_token(
            token_hash("rt-1"),
            _refresh(grant, "rt-2"),
            NOW,
            access_token=_access(grant, "at-taken"),
        )
    other = store.create_grant(CLIENT, subject.id, NOW)
    with pytest.raises(ValueError, match="same grant"):
        store.rotate_refresh_token(
            token_hash("rt-1"), _refresh(grant, "rt-2"), NOW, access_token=_access(other, "at-2")
        )
    assert store.get_refresh_token(token_hash("rt-1"), NOW) is not None  # still the live one
    assert store.get_refresh_token(token_hash("rt-2"), NOW) is None
    assert store.get_access_token(token_hash("at-2"), NOW) is None


def test_fifty_concurrent_rotations_succeed_once_and_leave_no_live_token(
    sql_store: SqlStore, grant: Grant
) -> None:
    store: Store = sql_store
    store.save_refresh_token(_refresh(grant, "rt-0"))
    results = _race(
        50,
        lambda i: store.rotate_refresh_token(
            token_hash("rt-0"), _refresh(grant, f"rt-{i + 1}"), NOW
        ),
    )
    won = [result for result in results if isinstance(result, RefreshTokenRecord)]
    reused = [result for result in results if isinstance(result, RefreshTokenReuseError)]
    assert len(won) == 1, results
    assert len(reused) == 49, results
    # The winner's token is dead too: the family was revoked when reuse was detected.
    assert _live_tokens(sql_store, grant.grant_id) == 0
    assert all(store.get_refresh_token(token_hash(f"rt-{i}"), NOW) is None for i in range(51))


def test_each_rotation_leaves_exactly_one_live_token(sql_store: SqlStore, grant: Grant) -> None:
    store: Store = sql_store
    store.save_refresh_token(_refresh(grant, "chain-0"))
    for step in range(5):
        store.rotate_refresh_token(
            token_hash(f"chain-{step}"), _refresh(grant, f"chain-{step + 1}"), NOW
        )
        assert _live_tokens(sql_store, grant.grant_id) == 1


# --- SSO sessions -------------------------------------------------------------------------------


def test_a_session_is_found_until_it_expires(store: Store, subject: Subject) -> None:
    session = _session(subject, expires_at=NOW + 8 * HOUR)
    store.create_session(session)
    assert store.get_session(session.session_hash, NOW) == session
    assert store.get_session(session.session_hash, NOW + 8 * HOUR) is None
    assert store.get_session(token_hash("unknown"), NOW) is None
    with pytest.raises(DuplicateRecordError):
        store.create_session(session)


def test_a_grant_is_read_with_its_session_while_the_session_lives(
    store: Store, subject: Subject
) -> None:
    session = _session(subject, expires_at=NOW + 8 * HOUR)
    store.create_session(session)
    grant = store.create_grant(CLIENT, subject.id, NOW, session_hash=session.session_hash)
    assert store.get_grant_session(grant.grant_id, NOW) == (grant, session)
    assert store.get_grant_session(grant.grant_id, NOW + 8 * HOUR) == (grant, None)
    store.end_session(session.session_hash, NOW + HOUR)
    assert store.get_grant_session(grant.grant_id, NOW + HOUR) == (grant, None)


def test_a_token_is_read_with_its_grants_live_session(store: Store, subject: Subject) -> None:
    session = _session(subject, expires_at=NOW + 8 * HOUR)
    store.create_session(session)
    grant = store.create_grant(CLIENT, subject.id, NOW, session_hash=session.session_hash)
    access, refresh = _access(grant, expires_at=NOW + 9 * HOUR), _refresh(grant)
    store.save_refresh_token(refresh, access_token=access)
    assert store.get_access_token_session(access.token_hash, NOW) == (access, session)
    assert store.get_refresh_token_session(refresh.token_hash, NOW) == (refresh, session)
    # The session expires before the tokens: they are still read, without it.
    later = NOW + 8 * HOUR
    assert store.get_access_token_session(access.token_hash, later) == (access, None)
    assert store.get_refresh_token_session(refresh.token_hash, later) == (refresh, None)
    store.end_session(session.session_hash, NOW + HOUR)
    assert store.get_access_token_session(access.token_hash, NOW + HOUR) == (access, None)
    assert store.get_refresh_token_session(refresh.token_hash, NOW + HOUR) == (refresh, None)


def test_a_token_read_with_its_session_follows_the_token_rules(
    store: Store, subject: Subject
) -> None:
    session = _session(subject)
    store.create_session(session)
    grant = store.create_grant(CLIENT, subject.id, NOW, session_hash=session.session_hash)
    access, refresh = _access(grant, expires_at=NOW + HOUR), _refresh(grant, expires_at=NOW + DAY)
    store.save_refresh_token(refresh, access_token=access)
    assert store.get_access_token_session(token_hash("unknown"), NOW) is None
    assert store.get_refresh_token_session(token_hash("unknown"), NOW) is None
    assert store.get_access_token_session(access.token_hash, NOW + HOUR) is None  # expired
    assert store.get_refresh_token_session(refresh.token_hash, NOW + DAY) is None
    store.rotate_refresh_token(refresh.token_hash, _refresh(grant, "rt-2"), NOW)
    assert store.get_refresh_token_session(refresh.token_hash, NOW) is None  # rotated
    assert store.get_refresh_token_session(token_hash("rt-2"), NOW) is not None
    store.revoke_grant(grant.grant_id, NOW)
    assert store.get_access_token_session(access.token_hash, NOW) is None
    assert store.get_refresh_token_session(token_hash("rt-2"), NOW) is None


def test_a_grant_without_a_session_is_read_alone(store: Store, grant: Grant) -> None:
    assert store.get_grant_session(grant.grant_id, NOW) == (grant, None)
    assert store.get_grant_session("no-such-grant", NOW) is None
    store.revoke_grant(grant.grant_id, NOW)
    revoked = store.get_grant_session(grant.grant_id, NOW)
    assert revoked is not None
    assert revoked[0].revoked_at == NOW


def test_a_step_up_raises_the_assurance_of_a_live_session_only(
    store: Store, subject: Subject
) -> None:
    session = _session(subject)
    store.create_session(session)
    raised = store.raise_session_assurance(session.session_hash, "loa3", ("pwd", "otp"), NOW)
    assert (raised.acr, raised.amr) == ("loa3", ("pwd", "otp"))
    assert raised.auth_time == session.auth_time
    assert store.get_session(session.session_hash, NOW) == raised
    store.end_session(session.session_hash, NOW)
    with pytest.raises(SessionNotFoundError):
        store.raise_session_assurance(session.session_hash, "loa2", ("otp",), NOW)


def test_a_session_needs_a_known_subject(store: Store, subject: Subject) -> None:
    stranger = Subject("no-such-subject", _key("stranger"), NOW)
    with pytest.raises(SubjectNotFoundError):
        store.create_session(_session(stranger))
    assert store.get_session(_session(stranger).session_hash, NOW) is None


def test_a_participant_is_recorded_once_and_keeps_its_first_sid(
    store: Store, subject: Subject
) -> None:
    session = _session(subject)
    store.create_session(session)
    first = store.add_participant(session.session_hash, "portal-a", "sid-1", NOW)
    again = store.add_participant(session.session_hash, "portal-a", "sid-2", NOW + MINUTE)
    assert again == first
    assert first.sid == "sid-1"
    store.add_participant(session.session_hash, "portal-b", "sid-1", NOW + MINUTE)
    assert [p.client_id for p in store.list_participants(session.session_hash)] == [
        "portal-a",
        "portal-b",
    ]


def test_ending_a_session_returns_its_participants_once(store: Store, subject: Subject) -> None:
    session = _session(subject)
    store.create_session(session)
    store.add_participant(session.session_hash, "portal-a", "sid-1", NOW)
    store.add_participant(session.session_hash, "portal-b", "sid-1", NOW + MINUTE)
    ended = store.end_session(session.session_hash, NOW + HOUR)
    assert [(p.client_id, p.sid) for p in ended] == [("portal-a", "sid-1"), ("portal-b", "sid-1")]
    assert store.end_session(session.session_hash, NOW + HOUR) == []
    assert store.get_session(session.session_hash, NOW + HOUR) is None
    assert store.end_session(token_hash("unknown"), NOW) == []
    with pytest.raises(SessionNotFoundError):
        store.add_participant(session.session_hash, "portal-c", "sid-1", NOW + HOUR)


def test_ending_an_expired_session_still_names_its_participants(
    store: Store, subject: Subject
) -> None:
    session = _session(subject, expires_at=NOW + HOUR)
    store.create_session(session)
    store.add_participant(session.session_hash, "portal-a", "sid-1", NOW)
    with pytest.raises(SessionNotFoundError):
        store.add_participant(session.session_hash, "portal-b", "sid-1", NOW + HOUR)
    assert [p.client_id for p in store.end_session(session.session_hash, NOW + DAY)] == ["portal-a"]


def test_concurrent_logouts_fan_out_once(store: Store, subject: Subject) -> None:
    session = _session(subject)
    store.create_session(session)
    store.add_participant(session.session_hash, "portal-a", "sid-1", NOW)
    results = _race(10, lambda _: store.end_session(session.session_hash, NOW))
    assert sorted(len(result) for result in results if isinstance(result, list)) == [0] * 9 + [1]


# --- upstream login transactions ----------------------------------------------------------------


def test_a_login_transaction_is_consumed_once(store: Store) -> None:
    transaction = _transaction()
    store.save_login_transaction(transaction)
    consumed = store.consume_login_transaction(transaction.state_hash, NOW + MINUTE)
    assert consumed == dataclasses.replace(transaction, consumed_at=NOW + MINUTE)
    with pytest.raises(LoginTransactionNotFoundError):
        store.consume_login_transaction(transaction.state_hash, NOW + MINUTE)
    with pytest.raises(DuplicateRecordError):
        store.save_login_transaction(transaction)


def test_an_unknown_or_expired_login_transaction_is_not_found(store: Store) -> None:
    transaction = _transaction(expires_at=NOW + 10 * MINUTE)
    store.save_login_transaction(transaction)
    with pytest.raises(LoginTransactionNotFoundError):
        store.consume_login_transaction(token_hash("forged"), NOW)
    with pytest.raises(LoginTransactionNotFoundError):
        store.consume_login_transaction(transaction.state_hash, NOW + 10 * MINUTE)


def test_twenty_concurrent_callbacks_consume_a_transaction_once(store: Store) -> None:
    store.save_login_transaction(_transaction())
    results = _race(20, lambda _: store.consume_login_transaction(token_hash("state"), NOW))
    assert sum(isinstance(result, LoginTransaction) for result in results) == 1, results
    assert sum(isinstance(r, LoginTransactionNotFoundError) for r in results) == 19, results


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
    store.save_login_transaction(_transaction("state-old", expires_at=NOW + MINUTE))
    store.save_login_transaction(_transaction("state-new", expires_at=NOW + DAY))
    old_session = _session(subject, "sso-old", expires_at=NOW + MINUTE)
    store.create_session(old_session)
    store.add_participant(old_session.session_hash, "portal-a", "sid", NOW)
    in_old_session = store.create_grant(
        CLIENT, subject.id, NOW, session_hash=old_session.session_hash
    )
    store.create_session(_session(subject, "sso-new", expires_at=NOW + DAY))

    later = NOW + HOUR
    # code, 2 access tokens, transaction, participant, session, the spent revoked grant
    assert store.purge_expired(later) == 7
    assert store.purge_expired(later) == 0

    assert store.get_grant(spent_grant.grant_id) is None
    assert store.get_grant(live_grant.grant_id) is not None
    assert store.redeem_code(token_hash("code-new"), later).grant_id == live_grant.grant_id
    with pytest.raises(CodeNotFoundError):
        store.redeem_code(token_hash("code-old"), later)
    assert store.get_access_token(token_hash("at-new"), later) is not None
    assert store.get_refresh_token(token_hash("rt-new"), later) is not None
    assert store.consume_login_transaction(token_hash("state-new"), later).region == "zj"
    assert store.get_session(token_hash("sso-new"), later) is not None
    assert store.end_session(old_session.session_hash, later) == []
    outlived = store.get_grant(in_old_session.grant_id)  # a grant outlives its session
    assert outlived is not None
    assert outlived.session_hash is None


# --- second factor: TOTP credentials ------------------------------------------------------------

SECRET = b"\x01ciphertext-of-a-totp-secret"
OTHER_SECRET = b"\x01ciphertext-of-another-secret"
STEP = 58_000_000  # an RFC 6238 time step of 2025


def _recovery(subject: Subject, count: int = 3) -> list[RecoveryCode]:
    return [
        RecoveryCode(subject.id, i, f"scrypt$256$8$1$salt{i}$hash{i}", NOW)
        for i in range(1, count + 1)
    ]


def _enrolled(store: Store, subject: Subject) -> None:
    store.save_totp_credential(TotpCredential(subject.id, SECRET, NOW))
    assert store.confirm_totp_credential(subject.id, SECRET, STEP, _recovery(subject), NOW)


def test_a_totp_credential_is_pending_until_confirmed_with_its_recovery_codes(
    store: Store, subject: Subject
) -> None:
    assert store.get_totp_credential(subject.id) is None
    store.save_totp_credential(TotpCredential(subject.id, SECRET, NOW))
    assert store.get_totp_credential(subject.id) == TotpCredential(subject.id, SECRET, NOW)
    assert store.list_recovery_codes(subject.id) == []
    assert not store.accept_totp_step(subject.id, STEP, NOW)  # pending: nothing is accepted
    codes = _recovery(subject)
    assert store.confirm_totp_credential(subject.id, SECRET, STEP, codes, NOW + MINUTE)
    confirmed = store.get_totp_credential(subject.id)
    assert confirmed == TotpCredential(
        subject.id, SECRET, NOW, NOW + MINUTE, STEP, last_used_at=NOW + MINUTE
    )
    assert store.list_recovery_codes(subject.id) == codes
    # Confirming twice does nothing.
    assert not store.confirm_totp_credential(subject.id, SECRET, STEP + 1, [], NOW + HOUR)
    assert store.list_recovery_codes(subject.id) == codes


def test_a_pending_enrolment_is_replaced_but_a_confirmed_one_is_not(
    store: Store, subject: Subject
) -> None:
    store.save_totp_credential(TotpCredential(subject.id, SECRET, NOW))
    store.save_totp_credential(TotpCredential(subject.id, OTHER_SECRET, NOW + MINUTE))
    pending = store.get_totp_credential(subject.id)
    assert pending == TotpCredential(subject.id, OTHER_SECRET, NOW + MINUTE)
    # The code was checked against the first secret: that confirmation must not land.
    assert not store.confirm_totp_credential(subject.id, SECRET, STEP, _recovery(subject), NOW)
    assert store.confirm_totp_credential(subject.id, OTHER_SECRET, STEP, [], NOW)
    with pytest.raises(DuplicateRecordError):
        store.save_totp_credential(TotpCredential(subject.id, SECRET, NOW + HOUR))
    confirmed = store.get_totp_credential(subject.id)
    assert confirmed is not None
    assert confirmed.secret == OTHER_SECRET


def test_a_totp_credential_needs_a_known_subject_and_starts_pending(store: Store) -> None:
    with pytest.raises(SubjectNotFoundError):
        store.save_totp_credential(TotpCredential("no-such-subject", SECRET, NOW))
    with pytest.raises(ValueError, match="pending"):
        store.save_totp_credential(TotpCredential("no-such-subject", SECRET, NOW, NOW))


def test_a_time_step_is_accepted_once_and_never_an_older_one(
    store: Store, subject: Subject
) -> None:
    _enrolled(store, subject)
    assert not store.accept_totp_step(subject.id, STEP, NOW)  # the confirmation's own step
    assert store.accept_totp_step(subject.id, STEP + 1, NOW + MINUTE)
    assert not store.accept_totp_step(subject.id, STEP + 1, NOW + MINUTE)
    assert not store.accept_totp_step(subject.id, STEP, NOW + MINUTE)
    assert store.accept_totp_step(subject.id, STEP + 3, NOW + 2 * MINUTE)
    credential = store.get_totp_credential(subject.id)
    assert credential is not None
    assert (credential.last_accepted_step, credential.last_used_at) == (STEP + 3, NOW + 2 * MINUTE)
    assert not store.accept_totp_step("no-such-subject", STEP + 9, NOW)


def test_twenty_concurrent_acceptances_of_one_step_succeed_once(
    store: Store, subject: Subject
) -> None:
    _enrolled(store, subject)
    results = _race(20, lambda _: store.accept_totp_step(subject.id, STEP + 1, NOW))
    assert results.count(True) == 1, results
    assert results.count(False) == 19, results


def test_concurrent_confirmations_confirm_once(store: Store, subject: Subject) -> None:
    store.save_totp_credential(TotpCredential(subject.id, SECRET, NOW))
    results = _race(
        10,
        lambda i: store.confirm_totp_credential(subject.id, SECRET, STEP, _recovery(subject), NOW),
    )
    assert results.count(True) == 1, results
    assert len(store.list_recovery_codes(subject.id)) == 3


# --- second factor: recovery codes --------------------------------------------------------------


def test_a_recovery_code_is_used_once(store: Store, subject: Subject) -> None:
    _enrolled(store, subject)
    assert store.use_recovery_code(subject.id, 2, NOW + MINUTE)
    assert not store.use_recovery_code(subject.id, 2, NOW + HOUR)
    assert not store.use_recovery_code(subject.id, 99, NOW)
    used = [code.used_at for code in store.list_recovery_codes(subject.id)]
    assert used == [None, NOW + MINUTE, None]


def test_ten_concurrent_uses_of_one_recovery_code_succeed_once(
    store: Store, subject: Subject
) -> None:
    _enrolled(store, subject)
    results = _race(10, lambda _: store.use_recovery_code(subject.id, 1, NOW))
    assert results.count(True) == 1, results


def test_recovery_codes_are_replaced_only_for_a_confirmed_credential(
    store: Store, subject: Subject
) -> None:
    with pytest.raises(RecordNotFoundError):
        store.replace_recovery_codes(subject.id, _recovery(subject))
    store.save_totp_credential(TotpCredential(subject.id, SECRET, NOW))
    with pytest.raises(RecordNotFoundError):
        store.replace_recovery_codes(subject.id, _recovery(subject))
    assert store.confirm_totp_credential(subject.id, SECRET, STEP, _recovery(subject), NOW)
    store.use_recovery_code(subject.id, 1, NOW)
    fresh = [RecoveryCode(subject.id, 1, "scrypt$256$8$1$new$new", NOW + DAY)]
    store.replace_recovery_codes(subject.id, fresh)
    assert store.list_recovery_codes(subject.id) == fresh
    with pytest.raises(ValueError, match="unique"):
        store.replace_recovery_codes(subject.id, fresh + fresh)
    with pytest.raises(ValueError, match="belong"):
        store.replace_recovery_codes(subject.id, [dataclasses.replace(fresh[0], subject="x")])
    assert store.list_recovery_codes(subject.id) == fresh


def test_deleting_a_credential_takes_its_recovery_codes_with_it(
    store: Store, subject: Subject
) -> None:
    _enrolled(store, subject)
    assert store.delete_totp_credential(subject.id) is True
    assert store.delete_totp_credential(subject.id) is False
    assert store.get_totp_credential(subject.id) is None
    assert store.list_recovery_codes(subject.id) == []
    store.save_totp_credential(TotpCredential(subject.id, OTHER_SECRET, NOW))  # enrol anew


# --- second factor: attempt counters ------------------------------------------------------------

LOCKOUT = datetime.timedelta(minutes=15)


def test_failures_lock_a_key_at_the_limit_until_the_lockout_ends(store: Store) -> None:
    key = "subject:wang"
    for second in range(4):
        assert store.record_failure(key, NOW + second * MINUTE, 5, LOCKOUT) is None
        assert store.is_locked(key, NOW + second * MINUTE) is None
    locked_at = NOW + 4 * MINUTE
    until = locked_at + LOCKOUT
    assert store.record_failure(key, locked_at, 5, LOCKOUT) == until
    assert store.is_locked(key, locked_at) == until
    assert store.is_locked(key, until - datetime.timedelta(seconds=1)) == until
    # A failure while locked is counted but does not extend the lock.
    assert store.record_failure(key, locked_at + MINUTE, 5, LOCKOUT) == until
    assert store.is_locked(key, until) is None
    # After the lock, counting starts again from one.
    assert store.record_failure(key, until, 5, LOCKOUT) is None
    assert store.is_locked("ip:192.0.2.1", NOW) is None  # keys are independent


def test_failures_outside_the_window_start_counting_again(store: Store) -> None:
    key = "ip:192.0.2.1"
    for _ in range(2):
        assert store.record_failure(key, NOW, 3, LOCKOUT) is None
    # The window runs from the first failure: after it, the two old failures no longer count.
    assert store.record_failure(key, NOW + LOCKOUT, 3, LOCKOUT) is None
    assert store.record_failure(key, NOW + LOCKOUT, 3, LOCKOUT) is None
    assert store.record_failure(key, NOW + LOCKOUT, 3, LOCKOUT) == NOW + 2 * LOCKOUT


def test_resetting_failures_lifts_a_lock(store: Store) -> None:
    key = "subject:wang"
    assert store.record_failure(key, NOW, 1, LOCKOUT) == NOW + LOCKOUT
    assert store.reset_failures(key) is True
    assert store.reset_failures(key) is False
    assert store.is_locked(key, NOW) is None
    assert store.record_failure(key, NOW, 2, LOCKOUT) is None
    with pytest.raises(ValueError, match="limit"):
        store.record_failure(key, NOW, 0, LOCKOUT)
    with pytest.raises(ValueError, match="lockout"):
        store.record_failure(key, NOW, 1, datetime.timedelta(0))


def test_twenty_concurrent_failures_are_all_counted(sql_store: SqlStore) -> None:
    store: Store = sql_store
    results = _race(20, lambda _: store.record_failure("subject:race", NOW, 20, LOCKOUT))
    assert results.count(NOW + LOCKOUT) == 1, results  # exactly the twentieth locked it
    assert results.count(None) == 19, results
    with sql_store.engine.connect() as conn:
        failures = conn.execute(
            select(attempt_counters.c.failures).where(attempt_counters.c.key == "subject:race")
        ).scalar_one()
    assert failures == 20


def test_a_lockout_holds_across_two_replicas_on_one_database(store_url: str) -> None:
    replicas = [SqlStore.from_url(store_url) for _ in range(2)]
    try:
        first, second = replicas
        first.migrate()
        second.migrate()
        key = "subject:wang"
        # Failures on either replica count together...
        for index in range(4):
            assert replicas[index % 2].record_failure(key, NOW, 5, LOCKOUT) is None
        until = second.record_failure(key, NOW, 5, LOCKOUT)
        assert until == NOW + LOCKOUT
        # ...and the lock one of them set is in force on the other.
        assert first.is_locked(key, NOW + MINUTE) == until
        assert first.record_failure(key, NOW + MINUTE, 5, LOCKOUT) == until
        # A step accepted on one replica is spent on the other.
        subject = first.link_subject(_key("wang"), "zj", "zj-1", NOW)
        first.save_totp_credential(TotpCredential(subject.id, SECRET, NOW))
        assert second.confirm_totp_credential(subject.id, SECRET, STEP, [], NOW)
        assert first.accept_totp_step(subject.id, STEP + 1, NOW)
        assert not second.accept_totp_step(subject.id, STEP + 1, NOW)
    finally:
        for replica in replicas:
            replica.close()


def test_purge_forgets_attempt_counters_whose_window_and_lock_have_passed(store: Store) -> None:
    store.record_failure("ip:stale", NOW, 5, LOCKOUT)
    store.record_failure("subject:locked", NOW, 1, 2 * HOUR)
    later = NOW + HOUR
    assert store.purge_expired(later) == 1
    assert store.is_locked("subject:locked", later) == NOW + 2 * HOUR
    assert store.purge_expired(NOW + 2 * HOUR) == 1
    assert store.reset_failures("ip:stale") is False


# --- consents -----------------------------------------------------------------------------------


def test_a_consent_is_remembered_widened_and_revocable(store: Store, subject: Subject) -> None:
    assert store.get_consent(subject.id, "portal-a") is None
    first = store.save_consent(subject.id, "portal-a", frozenset({"name"}), NOW)
    assert first.claims == {"name"}
    wider = store.save_consent(subject.id, "portal-a", frozenset({"phone_number"}), NOW + HOUR)
    assert wider.claims == {"name", "phone_number"}
    assert store.get_consent(subject.id, "portal-a") == wider
    store.save_consent(subject.id, "portal-b", frozenset({"name"}), NOW)
    assert [c.client_id for c in store.list_consents(subject.id)] == ["portal-a", "portal-b"]

    assert store.revoke_consent(subject.id, "portal-a", NOW + DAY) is True
    assert store.revoke_consent(subject.id, "portal-a", NOW + DAY) is False
    assert store.get_consent(subject.id, "portal-a") is None
    assert [c.client_id for c in store.list_consents(subject.id)] == ["portal-b"]
    # Consent given again after a revocation starts afresh: nothing old comes back.
    renewed = store.save_consent(subject.id, "portal-a", frozenset({"name"}), NOW + DAY)
    assert renewed.claims == {"name"}


def test_a_consent_needs_a_known_subject(store: Store) -> None:
    with pytest.raises(SubjectNotFoundError):
        store.save_consent("no-such-subject", "portal-a", frozenset({"name"}), NOW)


# --- client assertions --------------------------------------------------------------------------


def test_a_client_assertion_is_accepted_once_until_it_is_forgotten(store: Store) -> None:
    until = NOW + MINUTE
    assert store.use_assertion(CLIENT, "jti-1", until, NOW) is True
    assert store.use_assertion(CLIENT, "jti-1", until, NOW + MINUTE / 2) is False  # a replay
    assert store.use_assertion("other-portal", "jti-1", until, NOW) is True  # per client
    assert store.use_assertion(CLIENT, "jti-2", until, NOW) is True
    # Remembered until it expires: after that the assertion itself would be refused anyway.
    assert store.use_assertion(CLIENT, "jti-1", until + MINUTE, until) is True
    assert store.use_assertion(CLIENT, "jti-1", until + MINUTE, until) is False


def test_of_concurrent_uses_of_one_assertion_one_is_accepted(sql_store: SqlStore) -> None:
    store: Store = sql_store
    other: Store = SqlStore(sql_store.engine)  # another replica on the same database
    results = _race(
        20,
        lambda i: (store if i % 2 else other).use_assertion(CLIENT, "jti-race", NOW + MINUTE, NOW),
    )
    assert results.count(True) == 1, results
    assert results.count(False) == 19, results


def test_purge_forgets_used_assertions_once_they_expire(sql_store: SqlStore) -> None:
    store: Store = sql_store
    store.use_assertion(CLIENT, "old", NOW + MINUTE, NOW)
    store.use_assertion(CLIENT, "new", NOW + 3 * MINUTE, NOW)
    store.purge_expired(NOW + 2 * MINUTE)
    assert _count(sql_store, "used_assertions") == 1
    assert store.use_assertion(CLIENT, "new", NOW + 3 * MINUTE, NOW + 2 * MINUTE) is False
