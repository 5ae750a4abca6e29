"""SSO sessions without sockets: finding one, the logout token, and ending one with its grants.

Back-channel delivery to real portals is played end to end in tests/e2e/test_gateway_federation.py.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.keys import KeyRing
from gateway.registry import AuthMethod, Names, Portal, Registry
from gateway.sessions import (
    BACKCHANNEL_EVENT,
    LOGOUT_TOKEN_LIFETIME,
    LogoutReport,
    Sessions,
    sends_sid,
)
from gateway.store import SqlStore, SsoSession, token_hash

NOW = datetime.datetime(2026, 12, 5, 8, 0, tzinfo=datetime.UTC)
ISSUER = "https://tongxing.example.gov.cn"


@pytest.fixture(scope="module")
def keys() -> KeyRing:
    return KeyRing.generate(now=NOW - datetime.timedelta(days=1))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def sessions(store: SqlStore, keys: KeyRing) -> Sessions:
    return Sessions(store, keys, Registry(store, cache_seconds=0), ISSUER, b"p" * 32)


def _session(store: SqlStore, session_id: str = "sso-1") -> SsoSession:
    subject = store.link_subject("k" * 64, "zj", "zj-sub-1", NOW)
    session = SsoSession(
        session_hash=token_hash(session_id),
        subject=subject.id,
        region="zj",
        auth_time=NOW,
        acr="loa1",
        amr=("pwd",),
        created_at=NOW,
        expires_at=NOW + datetime.timedelta(hours=8),
        claims={},
    )
    store.create_session(session)
    return session


def test_a_logout_token_says_what_back_channel_logout_2_4_requires(
    sessions: Sessions, keys: KeyRing
) -> None:
    token = sessions.logout_token("portal-a", "sub-1", "sid-1", NOW)
    claims = keys.verify(token, now=NOW, typ="logout+jwt")  # §2.4: typed logout+jwt
    assert claims["iss"] == ISSUER
    assert claims["aud"] == "portal-a"
    assert claims["sub"] == "sub-1"
    assert claims["sid"] == "sid-1"
    assert claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert claims["iat"] == int(NOW.timestamp())
    assert claims["exp"] == claims["iat"] + LOGOUT_TOKEN_LIFETIME
    assert "nonce" not in claims  # §2.4: a logout token must not carry one
    other = keys.verify(sessions.logout_token("portal-a", "sub-1", "sid-1", NOW), now=NOW)
    assert other["jti"] != claims["jti"]


@pytest.mark.parametrize("session_id", [None, "", "x" * 129, "unknown"])
def test_no_session_is_found_for_a_missing_oversized_or_unknown_id(
    sessions: Sessions, store: SqlStore, session_id: str | None
) -> None:
    _session(store)
    assert sessions.find(session_id, NOW) is None


def test_a_session_is_found_by_its_id_until_it_ends(sessions: Sessions, store: SqlStore) -> None:
    session = _session(store)
    assert sessions.find("sso-1", NOW) == session
    sessions.end(session.session_hash, NOW)
    assert sessions.find("sso-1", NOW) is None


def test_ending_a_session_revokes_its_grants_only_and_a_second_end_does_nothing(
    sessions: Sessions, store: SqlStore
) -> None:
    session = _session(store)
    Registry(store).put_portal(
        Portal(
            client_id="portal-quiet",
            names=Names(zh="门户", en="Portal"),
            owner="zj",
            redirect_uris=["https://portal.example.gov.cn/cb"],
            token_endpoint_auth_method=AuthMethod.NONE,
        ),
        NOW,
    )  # no backchannel_logout_uri: nobody to tell, no request made
    store.add_participant(session.session_hash, "portal-quiet", "sid-1", NOW)
    in_session = store.create_grant(
        "portal-quiet", session.subject, NOW, session_hash=session.session_hash
    )
    elsewhere = store.create_grant("portal-quiet", session.subject, NOW)

    report = sessions.end(session.session_hash, NOW)
    assert (report.notified, report.failed) == ((), ())
    revoked = store.get_grant(in_session.grant_id)
    assert revoked is not None
    assert revoked.revoked_at is not None
    untouched = store.get_grant(elsewhere.grant_id)
    assert untouched is not None
    assert untouched.revoked_at is None
    assert report.ended
    second = sessions.end(session.session_hash, NOW)  # a second logout ends nothing
    assert second == LogoutReport((), (), ended=False)


def _portal(required: bool | None) -> Portal:
    return Portal(
        client_id="portal-broker",
        names=Names(zh="门户", en="Portal"),
        owner="zj",
        redirect_uris=["https://broker.example.gov.cn/cb"],
        token_endpoint_auth_method=AuthMethod.NONE,
        backchannel_logout_session_required=required,
    )


@pytest.mark.parametrize(("required", "sid"), [(None, True), (True, True), (False, False)])
def test_a_logout_token_carries_sid_unless_the_portal_registered_it_is_not_required(
    sessions: Sessions, keys: KeyRing, required: bool | None, sid: bool
) -> None:
    """Back-Channel Logout 1.0 §2.2/§2.4: ``false`` gets ``sub`` alone (a Keycloak broker, whose
    bug #12142 ignores a token with ``sid``), ``true`` and unset get ``sid`` as well."""
    portal = _portal(required)
    assert sends_sid(portal) is sid
    token = sessions.logout_token(portal.client_id, "sub-1", "sid-1" if sid else None, NOW)
    claims = keys.verify(token, now=NOW, typ="logout+jwt")
    assert claims["sub"] == "sub-1"
    assert ("sid" in claims) is sid
