"""The storage contract, grants and what they yield: codes, access and refresh tokens.

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from gateway.store import (
    CodeNotFoundError,
    CodeRecord,
    CodeReplayedError,
    DuplicateRecordError,
    Grant,
    GrantNotFoundError,
    RefreshTokenNotFoundError,
    RefreshTokenRecord,
    RefreshTokenReuseError,
    RefreshTokenStanding,
    RefreshTokenState,
    RefreshTokenStatus,
    SessionNotFoundError,
    SqlStore,
    Store,
    Subject,
    token_hash,
)

from .support import (
    CLIENT,
    DAY,
    HOUR,
    MINUTE,
    NOW,
    _access,
    _code,
    _count,
    _live_tokens,
    _race,
    _refresh,
    _session,
)

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


# --- tokens read with their SSO session ---------------------------------------------------------


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
    assert store.get_access_token_session(access.token_hash, NOW) == (access, session, None)
    assert store.get_refresh_token_session(refresh.token_hash, NOW) == (refresh, session, None)
    # The session expires before the tokens: they are still read, without it.
    later = NOW + 8 * HOUR
    assert store.get_access_token_session(access.token_hash, later) == (access, None, None)
    assert store.get_refresh_token_session(refresh.token_hash, later) == (refresh, None, None)
    store.end_session(session.session_hash, NOW + HOUR)
    assert store.get_access_token_session(access.token_hash, NOW + HOUR) == (access, None, None)
    assert store.get_refresh_token_session(refresh.token_hash, NOW + HOUR) == (refresh, None, None)


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


# --- refresh token status -----------------------------------------------------------------------


def test_a_refresh_tokens_status_follows_its_rotation_life(store: Store, grant: Grant) -> None:
    first = _refresh(grant, "rt-1", expires_at=NOW + DAY)
    unknown = RefreshTokenStanding(RefreshTokenState.UNKNOWN)
    assert store.refresh_token_status(first.token_hash, NOW) == unknown
    store.save_refresh_token(first)
    active = store.refresh_token_status(first.token_hash, NOW)
    assert active == RefreshTokenStanding(RefreshTokenState.ACTIVE, grant.grant_id)
    assert not active.reused
    store.rotate_refresh_token(first.token_hash, _refresh(grant, "rt-2", expires_at=NOW + DAY), NOW)
    rotated = store.refresh_token_status(first.token_hash, NOW)
    assert rotated == RefreshTokenStanding(RefreshTokenState.ROTATED, grant.grant_id)
    assert rotated.reused
    assert store.refresh_token_status(token_hash("rt-2"), NOW).state is RefreshTokenState.ACTIVE
    # Expired from its expiry instant on; a rotated token stays reuse after its expiry.
    expired = store.refresh_token_status(token_hash("rt-2"), NOW + DAY)
    assert expired == RefreshTokenStanding(RefreshTokenState.EXPIRED, grant.grant_id)
    assert store.refresh_token_status(first.token_hash, NOW + DAY).reused
    # Once purged after its expiry, a token is forgotten.
    store.purge_expired(NOW + DAY)
    assert store.refresh_token_status(first.token_hash, NOW + DAY) == unknown
    with pytest.raises(ValueError, match="timezone-aware"):
        store.refresh_token_status(first.token_hash, datetime.datetime(2025, 3, 1, 8, 0))


def test_a_refresh_token_of_a_revoked_family_is_revoked_and_a_rotated_one_stays_reuse(
    store: Store, grant: Grant
) -> None:
    store.save_refresh_token(_refresh(grant, "rt-1"))
    store.rotate_refresh_token(token_hash("rt-1"), _refresh(grant, "rt-2"), NOW)
    store.revoke_grant(grant.grant_id, NOW)
    revoked = RefreshTokenStanding(RefreshTokenState.REVOKED, grant.grant_id)
    assert store.refresh_token_status(token_hash("rt-2"), NOW) == revoked
    assert store.refresh_token_status(token_hash("rt-2"), NOW + 2 * DAY) == revoked  # and expired
    rotated = store.refresh_token_status(token_hash("rt-1"), NOW)
    assert rotated == RefreshTokenStanding(RefreshTokenState.ROTATED, grant.grant_id)


def test_asking_for_a_refresh_tokens_status_changes_nothing(
    sql_store: SqlStore, grant: Grant
) -> None:
    store: Store = sql_store
    store.save_refresh_token(_refresh(grant, "rt-1"))
    store.rotate_refresh_token(token_hash("rt-1"), _refresh(grant, "rt-2"), NOW)
    assert store.refresh_token_status(token_hash("rt-1"), NOW).reused
    # A read: the family lives until the caller revokes it.
    assert store.get_refresh_token(token_hash("rt-2"), NOW) is not None
    assert _live_tokens(sql_store, grant.grant_id) == 1
    live = store.get_grant(grant.grant_id)
    assert live is not None
    assert live.revoked_at is None


def test_a_rotated_tokens_status_names_the_family_its_reuse_revokes(
    sql_store: SqlStore, grant: Grant
) -> None:
    """What the refresh grant does with a token it could not use (RFC 9700 §4.14.2)."""
    store: Store = sql_store
    store.save_refresh_token(_refresh(grant, "rt-1"))
    store.rotate_refresh_token(token_hash("rt-1"), _refresh(grant, "rt-2"), NOW)
    assert store.get_refresh_token_session(token_hash("rt-1"), NOW) is None
    standing = store.refresh_token_status(token_hash("rt-1"), NOW)
    assert standing.reused
    assert standing.grant_id is not None
    assert store.revoke_grant(standing.grant_id, NOW) is True
    assert _live_tokens(sql_store, grant.grant_id) == 0
    assert store.get_refresh_token(token_hash("rt-2"), NOW) is None  # the other holder is cut off
    assert store.refresh_token_status(token_hash("rt-2"), NOW).state is RefreshTokenState.REVOKED
    with pytest.raises(RefreshTokenReuseError):  # and rotation still calls it reuse
        store.rotate_refresh_token(token_hash("rt-1"), _refresh(grant, "rt-3"), NOW)
