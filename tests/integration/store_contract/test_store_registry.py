"""The storage contract, the registry: regions and portals with optimistic concurrency.

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import pytest

from gateway.store import (
    RegistryKind,
    RevisionConflictError,
    Store,
)

from .support import (
    CLIENT,
    HOUR,
    NOW,
    _race,
)

# --- registry -----------------------------------------------------------------------------------


def test_a_document_is_created_at_revision_one_and_read_back(store: Store) -> None:
    document = {"code": "zj", "names": {"zh": "浙江", "en": "Zhejiang"}, "enabled": True}
    stored = store.put_document(RegistryKind.REGION, "zj", document, NOW)
    assert (stored.kind, stored.key, stored.revision) == (RegistryKind.REGION, "zj", 1)
    assert stored.document == document
    assert stored.created_at == stored.updated_at == NOW
    assert store.get_document(RegistryKind.REGION, "zj") == stored


def test_replacing_a_document_bumps_its_revision_and_keeps_its_creation_time(
    store: Store,
) -> None:
    store.put_document(RegistryKind.PORTAL, CLIENT, {"v": 1}, NOW)
    replaced = store.put_document(RegistryKind.PORTAL, CLIENT, {"v": 2}, NOW + HOUR)
    assert replaced.revision == 2
    assert replaced.document == {"v": 2}
    assert (replaced.created_at, replaced.updated_at) == (NOW, NOW + HOUR)


def test_regions_and_portals_are_listed_by_key_in_separate_namespaces(store: Store) -> None:
    for code in ("zj", "bj", "sh"):
        store.put_document(RegistryKind.REGION, code, {"code": code}, NOW)
    store.put_document(RegistryKind.PORTAL, "zj", {"client_id": "zj"}, NOW)
    assert [doc.key for doc in store.list_documents(RegistryKind.REGION)] == ["bj", "sh", "zj"]
    portals = store.list_documents(RegistryKind.PORTAL)
    assert [(doc.key, doc.document) for doc in portals] == [("zj", {"client_id": "zj"})]


def test_deleting_a_document_twice_returns_false_the_second_time(store: Store) -> None:
    store.put_document(RegistryKind.REGION, "zj", {}, NOW)
    assert store.delete_document(RegistryKind.REGION, "zj") is True
    assert store.delete_document(RegistryKind.REGION, "zj") is False
    assert store.get_document(RegistryKind.REGION, "zj") is None


def test_a_create_only_put_refuses_an_existing_key(store: Store) -> None:
    created = store.put_document(RegistryKind.REGION, "zj", {"v": 1}, NOW, expected_revision=0)
    assert created.revision == 1
    with pytest.raises(RevisionConflictError) as raised:
        store.put_document(RegistryKind.REGION, "zj", {"v": 2}, NOW, expected_revision=0)
    assert raised.value.actual == 1
    assert store.get_document(RegistryKind.REGION, "zj") == created


def test_a_replacement_of_a_stale_revision_is_refused(store: Store) -> None:
    store.put_document(RegistryKind.REGION, "zj", {"v": 1}, NOW)
    second = store.put_document(RegistryKind.REGION, "zj", {"v": 2}, NOW, expected_revision=1)
    assert second.revision == 2
    with pytest.raises(RevisionConflictError) as raised:
        store.put_document(RegistryKind.REGION, "zj", {"v": 3}, NOW, expected_revision=1)
    assert (raised.value.expected, raised.value.actual) == (1, 2)
    with pytest.raises(RevisionConflictError) as missing:
        store.put_document(RegistryKind.REGION, "sh", {"v": 1}, NOW, expected_revision=4)
    assert missing.value.actual is None


def test_a_delete_of_the_revision_read_deletes_it(store: Store) -> None:
    store.put_document(RegistryKind.PORTAL, CLIENT, {"v": 1}, NOW)
    read = store.put_document(RegistryKind.PORTAL, CLIENT, {"v": 2}, NOW)
    assert store.delete_document(RegistryKind.PORTAL, CLIENT, expected_revision=read.revision)
    assert store.get_document(RegistryKind.PORTAL, CLIENT) is None


def test_a_delete_of_a_stale_revision_is_refused_and_deletes_nothing(store: Store) -> None:
    store.put_document(RegistryKind.PORTAL, CLIENT, {"v": 1}, NOW)
    current = store.put_document(RegistryKind.PORTAL, CLIENT, {"v": 2}, NOW + HOUR)
    with pytest.raises(RevisionConflictError) as raised:
        store.delete_document(RegistryKind.PORTAL, CLIENT, expected_revision=1)
    assert (raised.value.kind, raised.value.key) == (RegistryKind.PORTAL, CLIENT)
    assert (raised.value.expected, raised.value.actual) == (1, 2)
    assert store.get_document(RegistryKind.PORTAL, CLIENT) == current


def test_a_conditional_delete_of_a_missing_document_is_a_conflict(store: Store) -> None:
    with pytest.raises(RevisionConflictError) as raised:
        store.delete_document(RegistryKind.REGION, "zj", expected_revision=1)
    assert raised.value.actual is None
    store.put_document(RegistryKind.REGION, "zj", {"v": 1}, NOW)
    with pytest.raises(ValueError, match="expected_revision"):
        store.delete_document(RegistryKind.REGION, "zj", expected_revision=0)
    assert store.get_document(RegistryKind.REGION, "zj") is not None


def test_of_concurrent_replaces_and_deletes_of_one_revision_one_succeeds(store: Store) -> None:
    store.put_document(RegistryKind.REGION, "zj", {"v": 0}, NOW)

    def act(index: int) -> str:
        if index % 2:
            store.delete_document(RegistryKind.REGION, "zj", expected_revision=1)
            return "deleted"
        store.put_document(RegistryKind.REGION, "zj", {"v": index}, NOW, expected_revision=1)
        return f"replaced {index}"

    results = _race(20, act)
    won = [result for result in results if isinstance(result, str)]
    assert len(won) == 1, results
    assert all(
        isinstance(result, RevisionConflictError) for result in results if result not in won
    ), results
    after = store.get_document(RegistryKind.REGION, "zj")
    if won[0] == "deleted":
        assert after is None
    else:
        assert after is not None
        assert (after.revision, f"replaced {after.document['v']}") == (2, won[0])


def test_a_document_that_is_not_json_is_refused_and_nothing_is_stored(store: Store) -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        store.put_document(RegistryKind.REGION, "zj", {"when": NOW}, NOW)
    assert store.get_document(RegistryKind.REGION, "zj") is None


# --- keyset pages -------------------------------------------------------------------------------


def _owned(key: str, principal: str | None) -> dict[str, object]:
    return {"client_id": key} | (
        {} if principal is None else {"managed_by": {"principal": principal}}
    )


def test_pages_after_a_key_together_are_the_whole_listing_in_order(store: Store) -> None:
    keys = [f"portal-{n:03d}" for n in range(23)] + ["a-first", "zz-last", "m_mid", "m-mid"]
    for key in keys:
        store.put_document(RegistryKind.PORTAL, key, _owned(key, None), NOW)
    store.put_document(RegistryKind.REGION, "zj", {"code": "zj"}, NOW)
    listing = [doc.key for doc in store.list_documents(RegistryKind.PORTAL)]
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = store.list_page(RegistryKind.PORTAL, after=after, limit=5)
        pages += 1
        assert len(page.documents) <= 5
        seen.extend(doc.key for doc in page.documents)
        if page.next_after is None:
            break
        assert page.next_after == page.documents[-1].key
        after = page.next_after
    assert seen == listing
    assert pages == 6  # 27 portals: five full pages and one of two; never the region


def test_a_page_that_ends_exactly_at_the_last_key_says_no_more(store: Store) -> None:
    for key in ("a", "b", "c", "d"):
        store.put_document(RegistryKind.PORTAL, key, _owned(key, None), NOW)
    first = store.list_page(RegistryKind.PORTAL, limit=2)
    assert ([d.key for d in first.documents], first.next_after) == (["a", "b"], "b")
    last = store.list_page(RegistryKind.PORTAL, after="b", limit=2)
    assert ([d.key for d in last.documents], last.next_after) == (["c", "d"], None)
    gone = store.list_page(RegistryKind.PORTAL, after="bb", limit=2)  # a key that is not there
    assert [d.key for d in gone.documents] == ["c", "d"]
    assert store.list_page(RegistryKind.PORTAL, after="d", limit=2).documents == []


def test_a_principals_pages_hold_only_what_it_manages(store: Store) -> None:
    for n in range(12):
        owner = ("operator", "platform", None)[n % 3]
        key = f"p{n:02d}"
        store.put_document(RegistryKind.PORTAL, key, _owned(key, owner), NOW)
    store.put_document(
        RegistryKind.PORTAL, "x-looks-alike", {"client_id": "x", "principal": "operator"}, NOW
    )
    seen: list[str] = []
    after: str | None = None
    while True:
        page = store.list_page(RegistryKind.PORTAL, after=after, limit=3, principal="operator")
        seen.extend(doc.key for doc in page.documents)
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == ["p00", "p03", "p06", "p09"]
    assert store.list_page(RegistryKind.PORTAL, limit=3, principal="nobody").documents == []


def test_a_page_needs_a_positive_limit(store: Store) -> None:
    for limit in (0, -1):
        with pytest.raises(ValueError, match="limit"):
            store.list_page(RegistryKind.PORTAL, limit=limit)
