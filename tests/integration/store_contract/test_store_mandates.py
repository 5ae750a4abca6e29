"""The storage contract, enterprises and mandates: an enterprise keyed once, an invitation
accepted once and only by the agent it names, a revocation by its own enterprise only, and the
choice of whom a person acts for, gone with the SSO session.

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from gateway.housekeeping import MANDATE_RETENTION, ExpiredRecordPurge
from gateway.store import SqlStore, Store, Subject, token_hash
from gateway.store.contract.mandates import ActingFor, Mandate, MandateNotFoundError

from .support import DAY, HOUR, NOW, _key, _race, _session


def _mandates(store: Store) -> SqlStore:
    # MandateStore is implemented by the SQL store; the union Store protocol does not name it.
    assert isinstance(store, SqlStore)
    return store


def _mandate(
    enterprise_id: str, granted_by: str, name: str = "m1", *, agent: str = "agent"
) -> Mandate:
    return Mandate(
        id=f"mandate-{name}",
        enterprise_id=enterprise_id,
        granted_by=granted_by,
        agent_key=_key(agent),
        invitation_hash=token_hash(f"invitation:{name}"),
        invitation_expires_at=NOW + DAY,
        portals=("portal-a",),
        sectors=("tax",),
        valid_until=NOW + 30 * DAY,
        created_at=NOW,
    )


def test_an_enterprise_is_keyed_once_and_keeps_what_was_asserted_last(store: Store) -> None:
    mandates = _mandates(store)
    first = mandates.save_enterprise(_key("acme"), "甲公司", "有限责任公司", "sealed-1", NOW)
    again = mandates.save_enterprise(
        _key("acme"), "甲有限公司", "股份有限公司", "sealed-1", NOW + DAY
    )
    assert again.id == first.id
    assert (again.name, again.kind, again.created_at, again.updated_at) == (
        "甲有限公司",
        "股份有限公司",
        NOW,
        NOW + DAY,
    )
    assert mandates.get_enterprise(first.id) == again
    assert mandates.get_enterprise("nobody") is None
    other = mandates.save_enterprise(_key("other"), "乙公司", "个人独资企业", "sealed-2", NOW)
    assert other.id != first.id


def test_concurrent_first_sign_ins_of_an_enterprise_make_one(store: Store) -> None:
    mandates = _mandates(store)
    results = _race(
        6, lambda i: mandates.save_enterprise(_key("race"), f"名{i}", "企业", "sealed", NOW)
    )
    ids = {r.id for r in results if not isinstance(r, Exception)}
    assert len(ids) == 1, results


def test_the_people_of_an_enterprise_are_recorded_with_their_role(
    store: Store, subject: Subject
) -> None:
    mandates = _mandates(store)
    enterprise = mandates.save_enterprise(_key("acme"), "甲公司", "企业", "sealed", NOW)
    mandates.record_enterprise_person(enterprise.id, subject.id, "legal_representative", NOW)
    seen = mandates.record_enterprise_person(
        enterprise.id, subject.id, "legal_representative", NOW + DAY
    )
    assert (seen.first_seen, seen.last_seen) == (NOW, NOW + DAY)
    assert [(p.subject, p.role) for p in mandates.list_enterprise_people(enterprise.id)] == [
        (subject.id, "legal_representative")
    ]


def test_an_invitation_is_accepted_once_by_the_agent_it_names(
    store: Store, subject: Subject
) -> None:
    mandates = _mandates(store)
    enterprise = mandates.save_enterprise(_key("acme"), "甲公司", "企业", "sealed", NOW)
    agent = store.link_subject(_key("agent"), "gd", "gd-sub-1", NOW)
    stranger = store.link_subject(_key("stranger"), "gd", "gd-sub-2", NOW)
    mandate = _mandate(enterprise.id, subject.id)
    mandates.create_mandate(mandate)
    assert not mandate.live(NOW)
    assert mandates.list_agent_mandates(agent.id, NOW) == []

    # Someone else holding the invitation cannot take it: the agent's identity key must match.
    with pytest.raises(MandateNotFoundError):
        mandates.accept_mandate(mandate.invitation_hash, _key("stranger"), stranger.id, NOW)
    accepted = mandates.accept_mandate(mandate.invitation_hash, _key("agent"), agent.id, NOW)
    assert accepted.agent_subject == agent.id
    assert accepted.accepted_at == NOW
    assert accepted.live(NOW)
    assert accepted.covers("portal-a", "general")
    assert accepted.covers("portal-x", "tax")
    assert not accepted.covers("portal-x", "health")
    # Once only.
    with pytest.raises(MandateNotFoundError):
        mandates.accept_mandate(mandate.invitation_hash, _key("agent"), agent.id, NOW)
    assert [m.id for m in mandates.list_agent_mandates(agent.id, NOW)] == [mandate.id]
    assert mandates.list_agent_mandates(agent.id, NOW + 30 * DAY) == []  # expired
    assert mandates.get_mandate(mandate.id) == accepted
    assert [m.id for m in mandates.list_enterprise_mandates(enterprise.id)] == [mandate.id]


def test_an_expired_invitation_cannot_be_accepted(store: Store, subject: Subject) -> None:
    mandates = _mandates(store)
    enterprise = mandates.save_enterprise(_key("acme"), "甲公司", "企业", "sealed", NOW)
    agent = store.link_subject(_key("agent"), "gd", "gd-sub-1", NOW)
    mandate = _mandate(enterprise.id, subject.id)
    mandates.create_mandate(mandate)
    with pytest.raises(MandateNotFoundError):
        mandates.accept_mandate(mandate.invitation_hash, _key("agent"), agent.id, NOW + DAY)


def test_concurrent_acceptances_of_one_invitation_accept_it_once(
    store: Store, subject: Subject
) -> None:
    mandates = _mandates(store)
    enterprise = mandates.save_enterprise(_key("acme"), "甲公司", "企业", "sealed", NOW)
    agent = store.link_subject(_key("agent"), "gd", "gd-sub-1", NOW)
    mandate = _mandate(enterprise.id, subject.id)
    mandates.create_mandate(mandate)
    results = _race(
        6, lambda i: mandates.accept_mandate(mandate.invitation_hash, _key("agent"), agent.id, NOW)
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, MandateNotFoundError) for r in results if isinstance(r, Exception))


def test_a_mandate_is_revoked_once_and_only_by_its_enterprise(
    store: Store, subject: Subject
) -> None:
    mandates = _mandates(store)
    enterprise = mandates.save_enterprise(_key("acme"), "甲公司", "企业", "sealed", NOW)
    other = mandates.save_enterprise(_key("other"), "乙公司", "企业", "sealed", NOW)
    agent = store.link_subject(_key("agent"), "gd", "gd-sub-1", NOW)
    mandate = _mandate(enterprise.id, subject.id)
    mandates.create_mandate(mandate)
    mandates.accept_mandate(mandate.invitation_hash, _key("agent"), agent.id, NOW)

    assert mandates.revoke_mandate(mandate.id, other.id, NOW + HOUR) is None
    revoked = mandates.revoke_mandate(mandate.id, enterprise.id, NOW + HOUR)
    assert revoked is not None
    assert revoked.revoked_at == NOW + HOUR
    assert not revoked.live(NOW + HOUR)
    assert mandates.revoke_mandate(mandate.id, enterprise.id, NOW + 2 * HOUR) is None
    assert mandates.list_agent_mandates(agent.id, NOW + HOUR) == []
    # A revoked invitation is not accepted either.
    second = _mandate(enterprise.id, subject.id, "m2")
    mandates.create_mandate(second)
    mandates.revoke_mandate(second.id, enterprise.id, NOW)
    with pytest.raises(MandateNotFoundError):
        mandates.accept_mandate(second.invitation_hash, _key("agent"), agent.id, NOW)


def test_a_mandate_id_and_invitation_are_unique(store: Store, subject: Subject) -> None:
    mandates = _mandates(store)
    enterprise = mandates.save_enterprise(_key("acme"), "甲公司", "企业", "sealed", NOW)
    mandate = _mandate(enterprise.id, subject.id)
    mandates.create_mandate(mandate)
    with pytest.raises(Exception, match="already exists"):
        mandates.create_mandate(mandate)
    with pytest.raises(Exception, match="already exists"):
        mandates.create_mandate(dataclasses.replace(mandate, id="mandate-other"))


def test_the_choice_of_whom_to_act_for_is_replaced_and_goes_with_the_session(
    store: Store, subject: Subject
) -> None:
    mandates = _mandates(store)
    session = _session(subject)
    store.create_session(session)
    enterprise = mandates.save_enterprise(_key("acme"), "甲公司", "企业", "sealed", NOW)
    choice = ActingFor(
        session_hash=session.session_hash,
        client_id="portal-a",
        pending_hash=token_hash("pending-1"),
        enterprise_id=enterprise.id,
        role="agent",
        mandate_id="mandate-m1",
        chosen_at=NOW,
    )
    assert mandates.get_acting_for(session.session_hash, "portal-a") is None
    mandates.choose_acting_for(choice)
    assert mandates.get_acting_for(session.session_hash, "portal-a") == choice
    themselves = dataclasses.replace(
        choice,
        pending_hash=token_hash("pending-2"),
        enterprise_id=None,
        role=None,
        mandate_id=None,
        chosen_at=NOW + HOUR,
    )
    mandates.choose_acting_for(themselves)
    assert mandates.get_acting_for(session.session_hash, "portal-a") == themselves
    assert mandates.get_acting_for(session.session_hash, "portal-b") is None

    with pytest.raises(MandateNotFoundError):
        mandates.choose_acting_for(dataclasses.replace(choice, session_hash=token_hash("gone")))
    store.purge_expired(session.expires_at)
    assert mandates.get_acting_for(session.session_hash, "portal-a") is None


# --- housekeeping: never an unbounded row (THREAT_MODEL row 7) ----------------------------------

RETENTION = 30 * DAY


def test_mandates_nobody_can_use_are_purged_and_ended_ones_after_the_retention(
    store: Store, subject: Subject
) -> None:
    mandates = _mandates(store)
    enterprise = mandates.save_enterprise(_key("acme"), "甲公司", "企业", "sealed", NOW)
    made = {
        "lapsed": _mandate(enterprise.id, subject.id, "lapsed"),  # invitation ends NOW + DAY
        "open": dataclasses.replace(
            _mandate(enterprise.id, subject.id, "open"),
            invitation_expires_at=NOW + 40 * DAY,
            valid_until=NOW + 90 * DAY,
        ),
        "live": dataclasses.replace(
            _mandate(enterprise.id, subject.id, "live"), valid_until=NOW + 90 * DAY
        ),
        "revoked": _mandate(enterprise.id, subject.id, "revoked"),
        "short": dataclasses.replace(
            _mandate(enterprise.id, subject.id, "short"), valid_until=NOW + 2 * DAY
        ),
    }
    for mandate in made.values():
        mandates.create_mandate(mandate)
    for name in ("live", "revoked", "short"):
        mandates.accept_mandate(made[name].invitation_hash, _key("agent"), subject.id, NOW)
    assert mandates.revoke_mandate(made["revoked"].id, enterprise.id, NOW + HOUR) is not None

    def left() -> set[str]:
        return {
            m.id.removeprefix("mandate-") for m in mandates.list_enterprise_mandates(enterprise.id)
        }

    second = datetime.timedelta(seconds=1)
    assert mandates.purge_mandates(NOW + DAY - second, RETENTION) == 0
    # An invitation that expired unaccepted goes at once: it can never become a mandate.
    assert mandates.purge_mandates(NOW + DAY, RETENTION) == 1
    assert left() == {"open", "live", "revoked", "short"}
    assert mandates.get_mandate(made["lapsed"].id) is None
    # A revoked mandate stays listed for the retention, then goes.
    assert mandates.purge_mandates(NOW + HOUR + RETENTION - second, RETENTION) == 0
    assert mandates.purge_mandates(NOW + HOUR + RETENTION, RETENTION) == 1
    assert left() == {"open", "live", "short"}
    # So does an expired one, from its valid_until.
    assert mandates.purge_mandates(NOW + 2 * DAY + RETENTION, RETENTION) == 1
    assert left() == {"open", "live"}
    # An open invitation stays until it expires; a live mandate until it ends.
    assert mandates.purge_mandates(NOW + 40 * DAY, RETENTION) == 1
    assert left() == {"live"}
    assert mandates.purge_mandates(NOW + 40 * DAY, RETENTION) == 0
    assert [m.id for m in mandates.list_agent_mandates(subject.id, NOW + 40 * DAY)] == [
        made["live"].id
    ]
    with pytest.raises(ValueError, match="retention"):
        mandates.purge_mandates(NOW, -DAY)


def test_the_expired_record_purge_takes_ended_mandates_with_it(
    store: Store, subject: Subject
) -> None:
    mandates = _mandates(store)
    enterprise = mandates.save_enterprise(_key("acme"), "甲公司", "企业", "sealed", NOW)
    mandates.create_mandate(_mandate(enterprise.id, subject.id, "lapsed"))
    mandates.create_mandate(_mandate(enterprise.id, subject.id, "revoked"))
    mandates.revoke_mandate("mandate-revoked", enterprise.id, NOW)
    later = NOW + DAY
    without = ExpiredRecordPurge(store, interval=60, clock=lambda: later)
    assert without.run_once() == 0  # a purge not given the mandate store leaves them
    purge = ExpiredRecordPurge(store, interval=60, clock=lambda: later, mandates=mandates)
    assert purge.mandate_retention == MANDATE_RETENTION == 30 * DAY
    assert purge.run_once() == 2  # both invitations lapsed unaccepted
    assert mandates.list_enterprise_mandates(enterprise.id) == []
