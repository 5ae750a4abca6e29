"""Federation subordinates (gateway.store.contract.federation), on both engines (issue 17)."""

from __future__ import annotations

import pytest

from gateway.store import Store
from gateway.store.contract.federation import EntityIdTakenError, FederationSubordinate

from .support import MINUTE, NOW, _race

JWKS = {"keys": [{"kty": "EC", "crv": "P-256", "x": "eA", "y": "eQ", "kid": "k1"}]}


def subordinate(kind: str, key: str, entity_id: str, **extra: object) -> FederationSubordinate:
    values: dict[str, object] = {
        "kind": kind,
        "key": key,
        "entity_id": entity_id,
        "jwks": JWKS,
        "metadata_policy": {},
        "created_at": NOW,
        "updated_at": NOW,
        **extra,
    }
    return FederationSubordinate(**values)  # type: ignore[arg-type]


def test_a_subordinate_is_found_by_its_key_and_by_its_entity_id(store: Store) -> None:
    policy = {"openid_relying_party": {"scope": {"subset_of": ["openid", "手机"]}}}
    stored = store.put_federation_subordinate(
        subordinate("portal", "zj-portal", "https://zj.example.cn", metadata_policy=policy)
    )
    assert store.federation_subordinate("portal", "zj-portal") == stored
    assert store.federation_subordinate_by_entity("https://zj.example.cn") == stored
    assert stored.metadata_policy == policy
    assert stored.jwks == JWKS
    assert store.federation_subordinate("region", "zj-portal") is None
    assert store.federation_subordinate_by_entity("https://zj.example.cn/") is None


def test_a_replacement_keeps_the_creation_time(store: Store) -> None:
    store.put_federation_subordinate(subordinate("region", "zj", "https://idp.zj.example.cn"))
    later = subordinate(
        "region",
        "zj",
        "https://idp2.zj.example.cn",
        created_at=NOW + MINUTE,
        updated_at=NOW + MINUTE,
    )
    stored = store.put_federation_subordinate(later)
    assert (stored.created_at, stored.updated_at) == (NOW, NOW + MINUTE)
    assert store.federation_subordinate_by_entity("https://idp.zj.example.cn") is None
    assert stored.entity_id == "https://idp2.zj.example.cn"


def test_an_entity_id_belongs_to_one_subordinate(store: Store) -> None:
    store.put_federation_subordinate(subordinate("region", "zj", "https://shared.example.cn"))
    store.put_federation_subordinate(subordinate("portal", "p", "https://p.example.cn"))
    with pytest.raises(EntityIdTakenError):
        store.put_federation_subordinate(subordinate("portal", "q", "https://shared.example.cn"))
    with pytest.raises(EntityIdTakenError):
        store.put_federation_subordinate(subordinate("portal", "p", "https://shared.example.cn"))
    assert store.federation_subordinate("portal", "q") is None
    assert store.federation_subordinate("portal", "p").entity_id == "https://p.example.cn"  # type: ignore[union-attr]


def test_subordinates_are_listed_by_kind_in_entity_id_order(store: Store) -> None:
    store.put_federation_subordinate(subordinate("portal", "b", "https://b.example.cn"))
    store.put_federation_subordinate(subordinate("region", "zj", "https://c.example.cn"))
    store.put_federation_subordinate(subordinate("portal", "a", "https://a.example.cn"))
    assert [s.entity_id for s in store.federation_subordinates()] == [
        "https://a.example.cn",
        "https://b.example.cn",
        "https://c.example.cn",
    ]
    assert [s.key for s in store.federation_subordinates("portal")] == ["a", "b"]
    assert [s.key for s in store.federation_subordinates("region")] == ["zj"]


def test_a_deleted_subordinate_is_gone_and_a_second_delete_says_so(store: Store) -> None:
    store.put_federation_subordinate(subordinate("portal", "p", "https://p.example.cn"))
    assert store.delete_federation_subordinate("portal", "p") is True
    assert store.delete_federation_subordinate("portal", "p") is False
    assert store.federation_subordinate_by_entity("https://p.example.cn") is None


def test_of_concurrent_claims_on_one_entity_id_exactly_one_wins(store: Store) -> None:
    results = _race(
        6,
        lambda index: store.put_federation_subordinate(
            subordinate("portal", f"p{index}", "https://contested.example.cn")
        ),
    )
    winners = [result for result in results if isinstance(result, FederationSubordinate)]
    assert len(winners) == 1
    assert all(
        isinstance(result, EntityIdTakenError) for result in results if result not in winners
    )
    assert len(store.federation_subordinates()) == 1
