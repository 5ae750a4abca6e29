"""The storage contract, national subjects: one subject per person, however many regions.

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gateway.store import (
    SqlStore,
    Store,
    Subject,
    SubjectLinkConflictError,
)
from gateway.store.schema import subjects

from .support import (
    DAY,
    NOW,
    _key,
    _race,
)

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
