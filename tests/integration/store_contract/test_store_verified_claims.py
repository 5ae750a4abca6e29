"""The storage contract, verified claims (issue 16, :mod:`gateway.store.contract.verified_claims`)
and the ``claims`` request kept with its grant (:attr:`gateway.store.Grant.claims_request`).

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.exc import DBAPIError

from gateway.store import (
    CodeRecord,
    Grant,
    SessionNotFoundError,
    SqlStore,
    Store,
    Subject,
    token_hash,
)
from gateway.store.contract.tokens import MAX_CLAIMS_REQUEST_BYTES
from gateway.store.contract.verified_claims import VerifiedClaimsRecord

from .support import (
    CLIENT,
    HOUR,
    MIDWAY,
    NOW,
    _access,
    _code,
    _count,
    _key,
    _pending,
    _race,
    _refresh,
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


def _issue(
    store: Store, subject: Subject, session_hash: str | None, name: str, claims: str | None
) -> tuple[CodeRecord, Grant]:
    """An authorization response's writes (``issue_code``), with the portal's claims request."""
    template = _code(Grant("-", CLIENT, subject.id, None, NOW), name)
    return store.issue_code(
        template,
        subject.id,
        NOW,
        session_hash=session_hash,
        sid=f"sid-{name}",
        claims_request=claims,
    )


def test_a_claims_request_is_kept_with_its_grant_and_read_with_every_token(
    store: Store, subject: Subject
) -> None:
    session = _session(subject)
    store.create_session(session)
    code, grant = _issue(store, subject, session.session_hash, "code", CLAIMS)
    assert grant.claims_request == CLAIMS
    assert store.get_grant_session(grant.grant_id, NOW) == (grant, session)
    # The code exchange reads it with the code (OIDC Core §3.1.3.3: the ID token).
    _, redeemed_grant, _ = store.redeem_code_session(code.code_hash, NOW)
    assert redeemed_grant == grant
    access, refresh = _access(grant, expires_at=NOW + 9 * HOUR), _refresh(grant)
    store.save_refresh_token(refresh, access_token=access)
    # Userinfo (§5.3) and the refresh grant (§12.2) read it with their token.
    assert store.get_access_token_session(access.token_hash, NOW) == (access, session, CLAIMS)
    assert store.get_refresh_token_session(refresh.token_hash, NOW) == (refresh, session, CLAIMS)
    rotated = _refresh(grant, "rt-2")
    store.rotate_refresh_token(refresh.token_hash, rotated, NOW)
    found = store.get_refresh_token_session(rotated.token_hash, NOW)
    assert found is not None
    assert found[2] == CLAIMS
    # After the session expired: still the grant's, and read (it releases nothing without one).
    later = NOW + 8 * HOUR
    assert store.get_access_token_session(access.token_hash, later) == (access, None, CLAIMS)


def test_a_claims_request_belongs_to_one_authorization_not_to_the_session(
    store: Store, subject: Subject
) -> None:
    session = _session(subject)
    store.create_session(session)
    _, first = _issue(store, subject, session.session_hash, "code-1", CLAIMS)
    _, second = _issue(store, subject, session.session_hash, "code-2", None)
    _, third = _issue(store, subject, session.session_hash, "code-3", '{"userinfo":{}}')
    store.save_access_token(_access(first, "at-1"))
    store.save_access_token(_access(second, "at-2"))
    store.save_access_token(_access(third, "at-3"))
    # Each grant of the same portal in the same session keeps its own (or none).
    read = [store.get_access_token_session(token_hash(f"at-{i}"), NOW) for i in (1, 2, 3)]
    assert [r[2] if r is not None else "missing" for r in read] == [
        CLAIMS,
        None,
        '{"userinfo":{}}',
    ]
    # Grants made otherwise (client credentials, create_grant) have none.
    assert store.create_grant(CLIENT, subject.id, NOW).claims_request is None


def test_a_claims_request_is_bounded_and_a_refused_one_writes_nothing(
    sql_store: SqlStore, subject: Subject
) -> None:
    store: Store = sql_store
    session = _session(subject)
    store.create_session(session)
    for bad in (
        "x" * (MAX_CLAIMS_REQUEST_BYTES + 1),
        "é" * (MAX_CLAIMS_REQUEST_BYTES // 2 + 1),
        "",
    ):
        with pytest.raises(ValueError, match="longer"):
            _issue(store, subject, session.session_hash, "code", bad)
    assert _count(sql_store, "grants") == _count(sql_store, "authorization_codes") == 0
    _, grant = _issue(store, subject, session.session_hash, "code", "x" * MAX_CLAIMS_REQUEST_BYTES)
    assert grant.claims_request == "x" * MAX_CLAIMS_REQUEST_BYTES


def test_verified_claims_go_with_their_session(sql_store: SqlStore, subject: Subject) -> None:
    store: Store = sql_store
    session = _session(subject, expires_at=NOW + HOUR)
    store.create_session(session)
    store.attach_verified_claims(_record(subject), "loa3", (), NOW)
    store.purge_expired(NOW + 2 * HOUR)
    assert store.get_verified_claims(session.session_hash) is None
    assert _count(sql_store, "verified_claims") == 0


def test_a_pending_authorization_keeps_the_claims_parameter(store: Store) -> None:
    record = _pending(claims=CLAIMS)
    store.save_pending_authorization(record)
    found = store.get_pending_authorization(record.id_hash, NOW)
    assert found is not None
    assert found.request.claims == CLAIMS
