"""The storage contract, SSO sessions: participants, step-up, logout.

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.exc import DBAPIError

from gateway.store import (
    CodeNotFoundError,
    CodeRecord,
    DuplicateRecordError,
    EndedSession,
    Grant,
    SessionNotFoundError,
    SqlStore,
    Store,
    Subject,
    SubjectNotFoundError,
    token_hash,
)

from .support import (
    CLIENT,
    DAY,
    HOUR,
    MIDWAY,
    MINUTE,
    NOW,
    _access,
    _code,
    _key,
    _race,
    _refresh,
    _session,
    failing_updates,
)

# --- SSO sessions -------------------------------------------------------------------------------


def test_a_session_is_found_until_it_expires(store: Store, subject: Subject) -> None:
    session = _session(subject, expires_at=NOW + 8 * HOUR)
    store.create_session(session)
    assert store.get_session(session.session_hash, NOW) == session
    assert store.get_session(session.session_hash, NOW + 8 * HOUR) is None
    assert store.get_session(token_hash("unknown"), NOW) is None
    with pytest.raises(DuplicateRecordError):
        store.create_session(session)


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


# --- logout: the session and its grants at once -------------------------------------------------

LOGOUT = NOW + MINUTE / 2  # before the codes of the tests expire


def _code_template(subject: Subject) -> CodeRecord:
    return dataclasses.replace(_code(Grant("-", CLIENT, subject.id, None, NOW)), grant_id="-")


def test_a_logout_ends_the_session_and_revokes_its_grants_at_once(
    store: Store, subject: Subject
) -> None:
    session = _session(subject)
    store.create_session(session)
    code, issued = store.issue_code(
        _code_template(subject), subject.id, NOW, session_hash=session.session_hash, sid="sid-1"
    )
    made = store.create_grant("portal-b", subject.id, NOW, session_hash=session.session_hash)
    store.add_participant(session.session_hash, "portal-b", "sid-2", NOW + MINUTE / 4)
    elsewhere = store.create_grant("portal-c", subject.id, NOW)
    for grant in (issued, made, elsewhere):
        store.save_refresh_token(
            _refresh(grant, f"rt-{grant.grant_id}"),
            access_token=_access(grant, f"at-{grant.grant_id}"),
        )

    ended = store.end_session_and_revoke_grants(session.session_hash, LOGOUT)
    assert ended.session == dataclasses.replace(session, ended_at=LOGOUT)
    assert [(p.client_id, p.sid) for p in ended.participants] == [
        (CLIENT, "sid-1"),
        ("portal-b", "sid-2"),
    ]
    assert ended.revoked_grants == sorted([issued.grant_id, made.grant_id])
    # No grant of the session is live: nothing issued under one works any more.
    assert store.get_session(session.session_hash, LOGOUT) is None
    for grant in (issued, made):
        revoked = store.get_grant(grant.grant_id)
        assert revoked is not None
        assert revoked.revoked_at == LOGOUT
        assert store.get_refresh_token(token_hash(f"rt-{grant.grant_id}"), LOGOUT) is None
        assert store.get_access_token(token_hash(f"at-{grant.grant_id}"), LOGOUT) is None
    with pytest.raises(CodeNotFoundError):
        store.redeem_code(code.code_hash, LOGOUT)
    with pytest.raises(SessionNotFoundError):
        store.create_grant(CLIENT, subject.id, LOGOUT, session_hash=session.session_hash)
    # A grant made outside the session lives on.
    assert store.get_refresh_token(token_hash(f"rt-{elsewhere.grant_id}"), LOGOUT) is not None
    # Twice, or for an unknown session: nobody to tell, nothing to revoke.
    nothing = EndedSession(None, [], [])
    assert store.end_session_and_revoke_grants(session.session_hash, LOGOUT) == nothing
    assert store.end_session_and_revoke_grants(token_hash("unknown"), LOGOUT) == nothing


def test_a_logout_of_an_expired_session_names_its_participants_and_revokes_its_grants(
    store: Store, subject: Subject
) -> None:
    session = _session(subject, expires_at=NOW + HOUR)
    store.create_session(session)
    grant = store.create_grant(CLIENT, subject.id, NOW, session_hash=session.session_hash)
    store.add_participant(session.session_hash, CLIENT, "sid-1", NOW)
    store.save_refresh_token(_refresh(grant))
    ended = store.end_session_and_revoke_grants(session.session_hash, NOW + DAY)
    assert ended.session is None  # it was no longer live
    assert [p.client_id for p in ended.participants] == [CLIENT]
    assert ended.revoked_grants == [grant.grant_id]
    assert store.get_refresh_token(token_hash("rt"), NOW) is None


@pytest.mark.parametrize("failing", ["sso_sessions", "grants", "refresh_tokens"])
def test_a_logout_that_fails_midway_leaves_the_session_and_its_grants_as_they_were(
    sql_store: SqlStore, subject: Subject, failing: str
) -> None:
    store: Store = sql_store
    session = _session(subject)
    store.create_session(session)
    grant = store.create_grant(CLIENT, subject.id, NOW, session_hash=session.session_hash)
    store.add_participant(session.session_hash, CLIENT, "sid-1", NOW)
    store.save_refresh_token(_refresh(grant))
    with failing_updates(sql_store, failing), pytest.raises(DBAPIError, match=MIDWAY):
        store.end_session_and_revoke_grants(session.session_hash, LOGOUT)
    assert store.get_session(session.session_hash, LOGOUT) == session
    assert store.get_grant(grant.grant_id) == grant
    assert store.get_refresh_token(token_hash("rt"), LOGOUT) == _refresh(grant)
    # Once the database works again, the logout happens whole.
    ended = store.end_session_and_revoke_grants(session.session_hash, LOGOUT)
    assert [p.client_id for p in ended.participants] == [CLIENT]
    assert ended.revoked_grants == [grant.grant_id]
    assert store.get_refresh_token(token_hash("rt"), LOGOUT) is None


def test_grants_made_while_their_session_ends_are_refused_or_revoked(
    store: Store, subject: Subject
) -> None:
    session = _session(subject)
    store.create_session(session)
    logout = 10

    def act(index: int) -> EndedSession | Grant:
        if index == logout:
            return store.end_session_and_revoke_grants(session.session_hash, NOW)
        code = dataclasses.replace(
            _code_template(subject),
            client_id=f"portal-{index}",
            code_hash=token_hash(f"code-{index}"),
        )
        return store.issue_code(
            code, subject.id, NOW, session_hash=session.session_hash, sid=f"sid-{index}"
        )[1]

    results = _race(20, act)
    ended = results[logout]
    assert isinstance(ended, EndedSession), results
    assert ended.session is not None
    issued = [result for result in results if isinstance(result, Grant)]
    refused = [result for result in results if isinstance(result, SessionNotFoundError)]
    assert len(issued) + len(refused) == 19, results
    # Every grant made in the session is revoked by the logout, and its portal is told.
    assert ended.revoked_grants == sorted(grant.grant_id for grant in issued)
    assert {p.client_id for p in ended.participants} == {grant.client_id for grant in issued}
    for grant in issued:
        after = store.get_grant(grant.grant_id)
        assert after is not None
        assert after.revoked_at == NOW


def test_concurrent_logouts_revoke_and_fan_out_once(store: Store, subject: Subject) -> None:
    session = _session(subject)
    store.create_session(session)
    grant = store.create_grant(CLIENT, subject.id, NOW, session_hash=session.session_hash)
    store.add_participant(session.session_hash, CLIENT, "sid-1", NOW)
    results = _race(10, lambda _: store.end_session_and_revoke_grants(session.session_hash, NOW))
    assert all(isinstance(result, EndedSession) for result in results), results
    told = [result for result in results if isinstance(result, EndedSession) and result.session]
    assert len(told) == 1, results
    assert [p.client_id for p in told[0].participants] == [CLIENT]
    assert told[0].revoked_grants == [grant.grant_id]
    assert [result for result in results if result is not told[0]] == [
        EndedSession(None, [], [])
    ] * 9
