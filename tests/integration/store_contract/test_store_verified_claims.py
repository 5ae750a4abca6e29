"""The storage contract, verified claims and claims requests (issue 16,
:mod:`gateway.store.contract.verified_claims`).

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.exc import DBAPIError

from gateway.store import SessionNotFoundError, SqlStore, Store, Subject
from gateway.store.contract.verified_claims import (
    MAX_CLAIMS_REQUEST_BYTES,
    VerifiedClaimsRecord,
)

from .support import (
    CLIENT,
    HOUR,
    MIDWAY,
    NOW,
    _count,
    _key,
    _pending,
    _race,
    _session,
    failing_updates,
)

CLAIMS = '{"userinfo":{"verified_claims":{"claims":{"name":null},"verification":{}}}}'


def _record(subject: Subject, name: str = "sso", sealed: str = "c2VhbGVk") -> VerifiedClaimsRecord:
    session = _session(subject, name)
    return VerifiedClaimsRecord(session.session_hash, subject.id, "mps", sealed, NOW)


def test_verified_claims_are_kept_and_raise_the_session_together(
    store: Store, subject: Subject
) -> None:
    session = _session(subject)
    store.create_session(session)
    assert store.get_verified_claims(session.session_hash) is None
    raised = store.attach_verified_claims(_record(subject), "loa3", ("pwd", "otp"), NOW)
    assert (raised.acr, raised.amr) == ("loa3", ("pwd", "otp"))
    kept = store.get_verified_claims(session.session_hash)
    assert kept == _record(subject)
    assert "c2VhbGVk" not in repr(kept)  # the sealed claims never reach a log line
    # A second proofing of the same session replaces the first.
    again = dataclasses.replace(_record(subject), provider="other", sealed="b3RoZXI=")
    store.attach_verified_claims(again, "loa3", ("pwd",), NOW + HOUR)
    assert store.get_verified_claims(session.session_hash) == again


def test_verified_claims_need_the_live_session_of_their_subject(
    sql_store: SqlStore, subject: Subject
) -> None:
    store: Store = sql_store
    with pytest.raises(SessionNotFoundError):
        store.attach_verified_claims(_record(subject), "loa3", (), NOW)
    session = _session(subject)
    store.create_session(session)
    other = store.link_subject(_key("someone-else"), "zj", "zj-sub-2", NOW)
    foreign = dataclasses.replace(_record(subject), subject=other.id)
    with pytest.raises(ValueError, match="another subject"):
        store.attach_verified_claims(foreign, "loa3", (), NOW)
    store.end_session(session.session_hash, NOW)
    with pytest.raises(SessionNotFoundError):
        store.attach_verified_claims(_record(subject), "loa3", (), NOW)
    assert _count(sql_store, "verified_claims") == 0
    assert store.get_session(session.session_hash, NOW) is None


def test_a_failure_midway_keeps_neither_the_claims_nor_the_level(
    sql_store: SqlStore, subject: Subject
) -> None:
    store: Store = sql_store
    session = _session(subject)
    store.create_session(session)
    with failing_updates(sql_store, "sso_sessions"), pytest.raises(DBAPIError, match=MIDWAY):
        store.attach_verified_claims(_record(subject), "loa3", (), NOW)
    assert store.get_verified_claims(session.session_hash) is None
    unchanged = store.get_session(session.session_hash, NOW)
    assert unchanged is not None
    assert unchanged.acr == "loa2"


def test_concurrent_proofings_of_one_session_leave_one_record(
    sql_store: SqlStore, subject: Subject
) -> None:
    store: Store = sql_store
    session = _session(subject)
    store.create_session(session)

    def attach(i: int) -> object:
        record = dataclasses.replace(_record(subject), provider=f"p{i}")
        return store.attach_verified_claims(record, "loa3", (), NOW)

    results = _race(4, attach)
    assert not [r for r in results if isinstance(r, Exception)]
    assert _count(sql_store, "verified_claims") == 1
    kept = store.get_verified_claims(session.session_hash)
    assert kept is not None
    assert kept.provider in {"p0", "p1", "p2", "p3"}


def test_claims_requests_are_kept_per_session_and_portal_replaced_and_removed(
    store: Store, subject: Subject
) -> None:
    session = _session(subject)
    store.create_session(session)
    key = session.session_hash
    assert store.get_claims_request(key, CLIENT) is None
    store.save_claims_request(key, CLIENT, CLAIMS, NOW)
    store.save_claims_request(key, "other-portal", '{"id_token":{"name":null}}', NOW)
    assert store.get_claims_request(key, CLIENT) == CLAIMS
    store.save_claims_request(key, CLIENT, '{"userinfo":{}}', NOW)
    assert store.get_claims_request(key, CLIENT) == '{"userinfo":{}}'
    store.save_claims_request(key, CLIENT, None, NOW)
    assert store.get_claims_request(key, CLIENT) is None
    assert store.get_claims_request(key, "other-portal") == '{"id_token":{"name":null}}'


def test_a_claims_request_is_bounded_and_needs_a_live_session(
    sql_store: SqlStore, subject: Subject
) -> None:
    store: Store = sql_store
    with pytest.raises(ValueError, match="longer"):
        store.save_claims_request("x" * 64, CLIENT, "x" * (MAX_CLAIMS_REQUEST_BYTES + 1), NOW)
    store.save_claims_request("unknown-session", CLIENT, CLAIMS, NOW)
    assert _count(sql_store, "claims_requests") == 0


def test_both_go_with_their_session(sql_store: SqlStore, subject: Subject) -> None:
    store: Store = sql_store
    session = _session(subject, expires_at=NOW + HOUR)
    store.create_session(session)
    store.attach_verified_claims(_record(subject), "loa3", (), NOW)
    store.save_claims_request(session.session_hash, CLIENT, CLAIMS, NOW)
    store.purge_expired(NOW + 2 * HOUR)
    assert store.get_verified_claims(session.session_hash) is None
    assert store.get_claims_request(session.session_hash, CLIENT) is None
    assert _count(sql_store, "verified_claims") == _count(sql_store, "claims_requests") == 0


def test_a_pending_authorization_keeps_the_claims_parameter(store: Store) -> None:
    record = _pending(claims=CLAIMS)
    store.save_pending_authorization(record)
    found = store.get_pending_authorization(record.id_hash, NOW)
    assert found is not None
    assert found.request.claims == CLAIMS
