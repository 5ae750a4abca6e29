"""Federation intermediates (revision 0016, I20), on both engines.

OpenID Federation 1.0 §1.2: an Intermediate Entity is a subordinate that vouches for its own
subordinates; the anchor's statement about it carries ``constraints`` (§3.1.3, §6.2), kept with
the record. Revision 0016 widens the kind check and adds the column; a row of 0015 reads with
no constraints, and going back to 0015 removes the intermediates the old kind check refuses.
"""

from __future__ import annotations

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from gateway.store import SqlStore, Store, migrations
from gateway.store.contract.federation import EntityIdTakenError, FederationSubordinate
from gateway.store.schema import federation_subordinates

from .support import MINUTE, NOW

JWKS = {"keys": [{"kty": "EC", "crv": "P-256", "x": "eA", "y": "eQ", "kid": "k1"}]}
CONSTRAINTS = {
    "max_path_length": 1,
    "naming_constraints": {"permitted": [".zj.example.cn"], "excluded": ["bad.zj.example.cn"]},
    "allowed_entity_types": ["openid_relying_party"],
}


def intermediate(key: str, entity_id: str, **extra: object) -> FederationSubordinate:
    values: dict[str, object] = {
        "kind": "intermediate",
        "key": key,
        "entity_id": entity_id,
        "jwks": JWKS,
        "metadata_policy": {},
        "created_at": NOW,
        "updated_at": NOW,
        "constraints": CONSTRAINTS,
        **extra,
    }
    return FederationSubordinate(**values)  # type: ignore[arg-type]


def test_an_intermediate_keeps_its_constraints_and_is_listed_by_its_kind(store: Store) -> None:
    stored = store.put_federation_subordinate(intermediate("ZJ", "https://fed.zj.example.cn"))
    assert stored.constraints == CONSTRAINTS
    assert store.federation_subordinate("intermediate", "ZJ") == stored
    assert store.federation_subordinate_by_entity("https://fed.zj.example.cn") == stored
    portal = FederationSubordinate(
        kind="portal",
        key="p",
        entity_id="https://p.example.cn",
        jwks=JWKS,
        metadata_policy={},
        created_at=NOW,
        updated_at=NOW,
    )
    assert store.put_federation_subordinate(portal).constraints == {}
    assert [s.key for s in store.federation_subordinates("intermediate")] == ["ZJ"]
    assert len(store.federation_subordinates()) == 2
    changed = store.put_federation_subordinate(
        intermediate("ZJ", "https://fed.zj.example.cn", constraints={}, updated_at=NOW + MINUTE)
    )
    assert (changed.constraints, changed.created_at) == ({}, NOW)
    assert store.delete_federation_subordinate("intermediate", "ZJ")
    assert store.federation_subordinate("intermediate", "ZJ") is None


def test_an_intermediate_shares_the_entity_ids_of_every_subordinate(store: Store) -> None:
    store.put_federation_subordinate(intermediate("ZJ", "https://fed.zj.example.cn"))
    with pytest.raises(EntityIdTakenError):
        store.put_federation_subordinate(
            FederationSubordinate(
                kind="portal",
                key="p",
                entity_id="https://fed.zj.example.cn",
                jwks=JWKS,
                metadata_policy={},
                created_at=NOW,
                updated_at=NOW,
            )
        )
    assert store.federation_subordinate("portal", "p") is None


def test_the_kind_check_still_refuses_an_unknown_kind(sql_store: SqlStore) -> None:
    with pytest.raises(IntegrityError), sql_store._engine.begin() as conn:
        conn.execute(
            insert(federation_subordinates),
            {
                "kind": "province",
                "key": "x",
                "entity_id": "https://x.example.cn",
                "jwks": JWKS,
                "metadata_policy": {},
                "constraints": {},
                "created_at": NOW,
                "updated_at": NOW,
            },
        )


def test_revision_0016_upgrades_0015_rows_and_downgrades_without_intermediates(
    store_url: str,
) -> None:
    migrations.upgrade(store_url, "0015")
    store = SqlStore.from_url(store_url)
    try:
        with store._engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO federation_subordinates (kind, key, entity_id, jwks, "
                    "metadata_policy, created_at, updated_at) VALUES ('region', 'zj', "
                    "'https://idp.zj.example.cn', '{}', '{}', :at, :at)"
                ),
                {"at": NOW.isoformat()},
            )
        migrations.upgrade(store_url, "0016")
        region = store.federation_subordinate("region", "zj")
        assert region is not None
        assert region.constraints == {}
        store.put_federation_subordinate(intermediate("ZJ", "https://fed.zj.example.cn"))
        migrations.downgrade(store_url, "0015")
        with store._engine.begin() as conn:
            kinds = conn.execute(text("SELECT kind FROM federation_subordinates")).scalars()
            assert list(kinds) == ["region"]
        migrations.upgrade(store_url, "0016")
        assert store.federation_subordinate("intermediate", "ZJ") is None
    finally:
        store.close()
