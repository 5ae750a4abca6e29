"""The storage contract, a logout at the region: sessions found by the region's ``sid`` or
``sub`` (Back-Channel Logout 1.0 §2.7), and the deliveries to portals kept to try again (§2.8).

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from gateway.store import DuplicateRecordError, SqlStore, SsoSession, Store, Subject
from gateway.store.contract.deliveries import LogoutDelivery

from .support import CLIENT, HOUR, MINUTE, NOW, _count, _key, _race, _session

SECOND = datetime.timedelta(seconds=1)
LEASE = MINUTE


def _region_session(
    subject: Subject,
    name: str,
    sid: str | None,
    sub: str | None,
    *,
    region: str = "zj",
    created_at: datetime.datetime = NOW,
) -> SsoSession:
    return dataclasses.replace(
        _session(subject, name),
        region_sid=sid,
        region_sub=sub,
        region=region,
        created_at=created_at,
    )


def _delivery(
    name: str = "d1", *, due: datetime.datetime = NOW, attempts: int = 1
) -> LogoutDelivery:
    return LogoutDelivery(
        delivery_id=name,
        client_id=CLIENT,
        subject="pairwise-sub-1",
        sid="portal-sid-1",
        attempts=attempts,
        created_at=NOW,
        next_attempt_at=due,
        expires_at=NOW + 24 * HOUR,
        last_status="http 500",
    )


# --- sessions by the region's sid or sub --------------------------------------------------------


def test_a_session_keeps_the_region_sid_and_sub(store: Store, subject: Subject) -> None:
    session = _region_session(subject, "s1", "kc-sid-1", "kc-sub-1")
    store.create_session(session)
    assert store.get_session(session.session_hash, NOW) == session
    assert (session.region_sid, session.region_sub) == ("kc-sid-1", "kc-sub-1")


def test_a_region_sid_finds_its_live_session_only(store: Store, subject: Subject) -> None:
    mine = _region_session(subject, "s1", "kc-sid-1", "kc-sub-1")
    other_sid = _region_session(subject, "s2", "kc-sid-2", "kc-sub-1")
    other_region = _region_session(subject, "s3", "kc-sid-1", "kc-sub-1", region="gd")
    for session in (mine, other_sid, other_region):
        store.create_session(session)
    found = store.find_region_sessions("zj", NOW, region_sid="kc-sid-1")
    assert [s.session_hash for s in found] == [mine.session_hash]
    # With a sid, a sub does not widen the match (§2.7: the sid names the session).
    assert store.find_region_sessions("zj", NOW, region_sid="kc-sid-9", region_sub="kc-sub-1") == []
    store.end_session(mine.session_hash, NOW)
    assert store.find_region_sessions("zj", NOW, region_sid="kc-sid-1") == []
    assert store.find_region_sessions("zj", NOW + 8 * HOUR, region_sid="kc-sid-2") == []


def test_a_region_sub_finds_every_live_session_of_that_person(
    store: Store, subject: Subject
) -> None:
    first = _region_session(subject, "s1", "kc-sid-1", "kc-sub-1")
    second = _region_session(subject, "s2", None, "kc-sub-1", created_at=NOW + MINUTE)
    stranger = _region_session(subject, "s3", "kc-sid-3", "kc-sub-2")
    old = dataclasses.replace(_session(subject, "s4"), region_sub=None)  # opened before 0007
    for session in (first, second, stranger, old):
        store.create_session(session)
    found = store.find_region_sessions("zj", NOW, region_sub="kc-sub-1")
    assert [s.session_hash for s in found] == [first.session_hash, second.session_hash]
    every = store.find_region_sessions("zj", NOW)
    assert len(every) == 4
    assert len(store.find_region_sessions("zj", NOW, limit=2)) == 2
    with pytest.raises(ValueError, match="limit"):
        store.find_region_sessions("zj", NOW, limit=0)
    with pytest.raises(ValueError, match="limit"):
        store.find_region_sessions("zj", NOW, limit=10**6)


def test_a_subject_s_live_sessions_are_found_across_regions_and_no_one_else_s(
    store: Store, subject: Subject
) -> None:
    """What a help-desk reset of the person's factor ends (THREAT_MODEL row 4)."""
    other = store.link_subject(_key("someone else"), "zj", "zj-sub-2", NOW)
    at_zj = _region_session(subject, "s1", "kc-sid-1", "kc-sub-1")
    at_gd = _region_session(subject, "s2", None, None, region="gd", created_at=NOW + MINUTE)
    theirs = _region_session(other, "s3", "kc-sid-3", "kc-sub-3")
    for session in (at_zj, at_gd, theirs):
        store.create_session(session)
    found = store.find_subject_sessions(subject.id, NOW)
    assert [s.session_hash for s in found] == [at_zj.session_hash, at_gd.session_hash]
    assert len(store.find_subject_sessions(subject.id, NOW, limit=1)) == 1
    store.end_session(at_zj.session_hash, NOW)
    assert [s.session_hash for s in store.find_subject_sessions(subject.id, NOW)] == [
        at_gd.session_hash
    ]
    assert store.find_subject_sessions(subject.id, NOW + 8 * HOUR) == []  # expired
    with pytest.raises(ValueError, match="limit"):
        store.find_subject_sessions(subject.id, NOW, limit=0)


# --- logout deliveries --------------------------------------------------------------------------


def test_a_failed_delivery_is_recorded_once(store: Store) -> None:
    delivery = _delivery()
    store.record_logout_delivery(delivery)
    assert store.list_logout_deliveries() == [delivery]
    with pytest.raises(DuplicateRecordError):
        store.record_logout_delivery(delivery)


def test_a_delivery_is_claimed_when_due_and_not_again_while_its_lease_runs(store: Store) -> None:
    store.record_logout_delivery(_delivery("d1", due=NOW + 10 * SECOND))
    assert store.claim_logout_deliveries(NOW, LEASE, 10) == []  # not due yet
    claimed = store.claim_logout_deliveries(NOW + 10 * SECOND, LEASE, 10)
    assert [d.delivery_id for d in claimed] == ["d1"]
    assert claimed[0].attempts == 1
    # Claimed: nobody else takes it until the lease has passed (a claimant that died).
    assert store.claim_logout_deliveries(NOW + 20 * SECOND, LEASE, 10) == []
    again = store.claim_logout_deliveries(NOW + 10 * SECOND + LEASE, LEASE, 10)
    assert [d.delivery_id for d in again] == ["d1"]


def test_a_failed_retry_is_rescheduled_and_the_last_one_gives_up(store: Store) -> None:
    store.record_logout_delivery(_delivery())
    store.claim_logout_deliveries(NOW, LEASE, 10)
    later = NOW + 5 * MINUTE
    assert store.logout_delivery_failed(
        "d1",
        attempts=2,
        status="ConnectTimeout",
        next_attempt_at=later,
        now=NOW,
        expires_at=NOW + 24 * HOUR,
    )
    (kept,) = store.list_logout_deliveries()
    assert (kept.attempts, kept.last_status, kept.next_attempt_at) == (2, "ConnectTimeout", later)
    assert kept.given_up_at is None
    assert [d.delivery_id for d in store.claim_logout_deliveries(later, LEASE, 10)] == ["d1"]
    assert store.logout_delivery_failed(
        "d1",
        attempts=6,
        status="http 503",
        next_attempt_at=None,
        now=later,
        expires_at=later + 24 * HOUR,
    )
    (given_up,) = store.list_logout_deliveries()
    assert given_up.given_up_at == later
    # Given up: never claimed again, only kept as a record until it expires.
    assert store.claim_logout_deliveries(later + 48 * HOUR, LEASE, 10) == []
    assert (
        store.logout_delivery_failed(
            "unknown", attempts=1, status="x", next_attempt_at=None, now=NOW, expires_at=NOW
        )
        is False
    )


def test_a_delivered_retry_is_forgotten(store: Store) -> None:
    store.record_logout_delivery(_delivery())
    assert store.logout_delivered("d1") is True
    assert store.logout_delivered("d1") is False
    assert store.list_logout_deliveries() == []


def test_claims_take_the_oldest_due_first_and_at_most_the_limit(store: Store) -> None:
    for i in range(5):
        store.record_logout_delivery(_delivery(f"d{i}", due=NOW - i * SECOND))
    claimed = store.claim_logout_deliveries(NOW, LEASE, 3)
    assert [d.delivery_id for d in claimed] == ["d4", "d3", "d2"]
    with pytest.raises(ValueError, match="limit"):
        store.claim_logout_deliveries(NOW, LEASE, 0)
    with pytest.raises(ValueError, match="lease"):
        store.claim_logout_deliveries(NOW, datetime.timedelta(0), 1)


def test_of_replicas_claiming_at_once_each_delivery_goes_to_one(sql_store: SqlStore) -> None:
    store: Store = sql_store
    other: Store = SqlStore(sql_store.engine)  # another replica on the same database
    for i in range(30):
        store.record_logout_delivery(_delivery(f"d{i:02}"))
    results = _race(
        8, lambda i: (store if i % 2 else other).claim_logout_deliveries(NOW, LEASE, 10)
    )
    claimed = [d.delivery_id for r in results if isinstance(r, list) for d in r]
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(claimed) == [f"d{i:02}" for i in range(30)]  # each once, none twice


def test_purge_removes_deliveries_once_they_expire(sql_store: SqlStore) -> None:
    store: Store = sql_store
    store.record_logout_delivery(_delivery("d1"))
    store.record_logout_delivery(dataclasses.replace(_delivery("d2"), expires_at=NOW + 48 * HOUR))
    store.purge_expired(NOW + 24 * HOUR)
    assert _count(sql_store, "logout_deliveries") == 1
    assert [d.delivery_id for d in store.list_logout_deliveries()] == ["d2"]
