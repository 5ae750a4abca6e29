"""Explicit registrations (gateway.store.contract.federation_registrations), on both engines.

OpenID Federation 1.0 §12.2: one registration per entity (a re-registration replaces the
previous one, §12.2.2), found by its assigned client id until it expires (§12.2.6), then purged
by housekeeping.
"""

from __future__ import annotations

from gateway.store import Store
from gateway.store.contract.federation_registrations import FederationRegistration

from .support import HOUR, MINUTE, NOW

ENTITY = "https://portal.zj.example.cn"


def registration(
    client_id: str, entity_id: str = ENTITY, **extra: object
) -> FederationRegistration:
    values: dict[str, object] = {
        "client_id": client_id,
        "entity_id": entity_id,
        "portal": {"redirect_uris": ["https://portal.zj.example.cn/cb"], "scopes": ["openid"]},
        "created_at": NOW,
        "expires_at": NOW + HOUR,
        **extra,
    }
    return FederationRegistration(**values)  # type: ignore[arg-type]


def test_a_registration_is_found_by_client_id_until_it_expires(store: Store) -> None:
    kept = registration("fedreg:one")
    store.put_federation_registration(kept)
    assert store.federation_registration("fedreg:one", NOW) == kept
    assert store.federation_registration("fedreg:one", NOW + HOUR - MINUTE) == kept
    assert store.federation_registration("fedreg:one", NOW + HOUR) is None
    assert store.federation_registration("fedreg:other", NOW) is None


def test_re_registration_replaces_the_previous_one(store: Store) -> None:
    store.put_federation_registration(registration("fedreg:old"))
    store.put_federation_registration(registration("fedreg:elsewhere", "https://other.example.cn"))
    renewed = registration("fedreg:new", portal={"scopes": ["openid", "phone"]})
    store.put_federation_registration(renewed)
    assert store.federation_registration("fedreg:old", NOW) is None
    assert store.federation_registration("fedreg:new", NOW) == renewed
    assert store.federation_registration("fedreg:elsewhere", NOW) is not None


def test_deleting_an_entitys_registrations(store: Store) -> None:
    store.put_federation_registration(registration("fedreg:one"))
    assert store.delete_federation_registrations(ENTITY) == 1
    assert store.delete_federation_registrations(ENTITY) == 0
    assert store.federation_registration("fedreg:one", NOW) is None


def test_housekeeping_purges_expired_registrations_only(store: Store) -> None:
    store.put_federation_registration(registration("fedreg:short", expires_at=NOW + MINUTE))
    store.put_federation_registration(registration("fedreg:long", "https://other.example.cn"))
    assert store.purge_expired(NOW + 2 * MINUTE) >= 1
    assert store.delete_federation_registrations(ENTITY) == 0  # the expired row is gone
    assert store.federation_registration("fedreg:long", NOW + 2 * MINUTE) is not None
