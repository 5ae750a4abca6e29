"""Ending sessions by region without sockets: a region's logout by ``sid`` or ``sub``
(Back-Channel Logout 1.0 §2.7) and the end of every session of a disabled region, in batches,
each with its grants. Delivery to real portals is played in
tests/e2e/test_backchannel_logout_from_region.py.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.keys import KeyRing
from gateway.registry import Registry
from gateway.sessions import Sessions
from gateway.store import SqlStore, SsoSession, token_hash

NOW = datetime.datetime(2026, 12, 5, 8, 0, tzinfo=datetime.UTC)
ISSUER = "https://tongxing.example.gov.cn"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def sessions(store: SqlStore) -> Sessions:
    keys = KeyRing.generate(now=NOW - datetime.timedelta(days=1))
    sessions = Sessions(store, keys, Registry(store, cache_seconds=0), ISSUER, b"p" * 32)
    sessions.REGION_BATCH = 2  # several batches with few sessions
    return sessions


def _open(
    store: SqlStore, name: str, region: str = "zj", sid: str | None = None, sub: str = "kc-1"
) -> SsoSession:
    subject = store.link_subject(token_hash(f"person:{sub}"), region, sub, NOW)
    session = SsoSession(
        session_hash=token_hash(name),
        subject=subject.id,
        region=region,
        auth_time=NOW,
        acr="loa1",
        amr=("pwd",),
        created_at=NOW,
        expires_at=NOW + datetime.timedelta(hours=8),
        region_sid=sid,
        region_sub=sub,
    )
    store.create_session(session)
    return session


def _live(store: SqlStore, session: SsoSession) -> bool:
    return store.get_session(session.session_hash, NOW) is not None


def test_a_region_logout_by_sid_ends_that_session_only_with_its_grants(
    sessions: Sessions, store: SqlStore
) -> None:
    mine = _open(store, "s1", sid="kc-sid-1")
    sibling = _open(store, "s2", sid="kc-sid-2")  # the same person, another region session
    grant = store.create_grant("portal-a", mine.subject, NOW, session_hash=mine.session_hash)
    assert sessions.end_region_logout("zj", "kc-sid-1", "kc-1", NOW) == 1
    assert not _live(store, mine)
    assert _live(store, sibling)
    revoked = store.get_grant(grant.grant_id)
    assert revoked is not None
    assert revoked.revoked_at is not None
    assert sessions.end_region_logout("zj", "kc-sid-1", None, NOW) == 0  # once


def test_a_region_logout_by_sub_ends_every_session_of_that_person_at_that_region(
    sessions: Sessions, store: SqlStore
) -> None:
    first, second = _open(store, "s1", sid="a"), _open(store, "s2", sid="b")
    other_region = _open(store, "s3", region="gd", sid="a")
    stranger = _open(store, "s4", sid="c", sub="kc-2")
    assert sessions.end_region_logout("zj", None, "kc-1", NOW) == 2
    assert not _live(store, first)
    assert not _live(store, second)
    assert _live(store, other_region)
    assert _live(store, stranger)
    with pytest.raises(ValueError, match="sid or a sub"):
        sessions.end_region_logout("zj", None, None, NOW)


def test_ending_a_region_ends_all_its_sessions_in_batches(
    sessions: Sessions, store: SqlStore
) -> None:
    zj = [_open(store, f"zj-{i}", sid=f"s{i}", sub=f"kc-{i}") for i in range(5)]
    gd = _open(store, "gd-1", region="gd", sid="s0")
    assert sessions.end_region("zj", NOW) == 5
    assert not any(_live(store, session) for session in zj)
    assert _live(store, gd)
    assert sessions.end_region("zj", NOW) == 0


def test_a_session_keeps_the_region_sid_and_sub_it_was_opened_with(store: SqlStore) -> None:
    session = _open(store, "s1", sid="kc-sid-1")
    found = store.get_session(session.session_hash, NOW)
    assert found == session
    assert dataclasses.replace(session, region_sid=None) != found
