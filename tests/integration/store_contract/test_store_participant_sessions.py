"""The storage contract, a session found by a portal's ``sid``: what an ``id_token_hint``'s
``aud`` and ``sid`` name at the end-session endpoint (RP-Initiated Logout 1.0 §2).

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

from gateway.store import Store, Subject

from .support import HOUR, MINUTE, NOW, _session


def test_a_portals_sid_names_the_live_session_it_was_given_in(
    store: Store, subject: Subject
) -> None:
    mine, other = _session(subject, "mine"), _session(subject, "other")
    store.create_session(mine)
    store.create_session(other)
    store.add_participant(mine.session_hash, "portal-a", "sid-a", NOW)
    store.add_participant(mine.session_hash, "portal-b", "sid-b", NOW)
    store.add_participant(other.session_hash, "portal-a", "sid-other", NOW)

    assert store.find_participant_session("portal-a", "sid-a", NOW + MINUTE) == mine
    assert store.find_participant_session("portal-a", "sid-other", NOW + MINUTE) == other
    # A sid is the portal's own: another portal's sid names nothing for this one.
    assert store.find_participant_session("portal-a", "sid-b", NOW + MINUTE) is None
    assert store.find_participant_session("portal-c", "sid-a", NOW + MINUTE) is None
    assert store.find_participant_session("portal-a", "no-such-sid", NOW + MINUTE) is None


def test_an_ended_or_expired_session_is_not_found_by_its_sid(
    store: Store, subject: Subject
) -> None:
    ended, expiring = _session(subject, "ended"), _session(subject, "expiring")
    store.create_session(ended)
    store.create_session(expiring)
    store.add_participant(ended.session_hash, "portal-a", "sid-ended", NOW)
    store.add_participant(expiring.session_hash, "portal-a", "sid-expiring", NOW)
    store.end_session_and_revoke_grants(ended.session_hash, NOW + MINUTE)

    assert store.find_participant_session("portal-a", "sid-ended", NOW + MINUTE) is None
    assert store.find_participant_session("portal-a", "sid-expiring", NOW + MINUTE) == expiring
    assert store.find_participant_session("portal-a", "sid-expiring", expiring.expires_at) is None
    assert store.find_participant_session("portal-a", "sid-expiring", NOW + 9 * HOUR) is None
