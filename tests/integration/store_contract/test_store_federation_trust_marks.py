"""Federation trust marks (gateway.store.contract.federation), on both engines (issue 17).

OpenID Federation 1.0 §7: each trust mark the gateway issues is kept by its ``jti``; revoking
sets ``revoked_at`` once and never deletes (the status endpoint, §8.4, answers ``revoked``).
"""

from __future__ import annotations

import pytest

from gateway.store import Store
from gateway.store.contract.common import DuplicateRecordError
from gateway.store.contract.federation import FederationTrustMark

from .support import MINUTE, NOW

NATIONAL = "https://tongxing.gov.cn/trust-marks/registered-national-portal"
DENGBAO = "https://tongxing.gov.cn/trust-marks/dengbao-level-3"


def mark(jti: str, trust_mark_type: str = NATIONAL, **extra: object) -> FederationTrustMark:
    values: dict[str, object] = {
        "jti": jti,
        "trust_mark_type": trust_mark_type,
        "kind": "portal",
        "key": "zj-portal",
        "entity_id": "https://zj.example.cn",
        "issued_at": NOW,
        **extra,
    }
    return FederationTrustMark(**values)  # type: ignore[arg-type]


def test_an_issued_mark_is_found_by_its_jti(store: Store) -> None:
    issued = mark("m1", expires_at=NOW + 60 * MINUTE)
    store.add_federation_trust_mark(issued)
    assert store.federation_trust_mark("m1") == issued
    assert store.federation_trust_mark("m2") is None
    with pytest.raises(DuplicateRecordError):
        store.add_federation_trust_mark(mark("m1", DENGBAO))
    assert store.federation_trust_mark("m1") == issued


def test_marks_are_listed_latest_first_and_filtered(store: Store) -> None:
    store.add_federation_trust_mark(mark("old", issued_at=NOW))
    store.add_federation_trust_mark(mark("new", issued_at=NOW + MINUTE))
    store.add_federation_trust_mark(mark("dengbao", DENGBAO, issued_at=NOW + 2 * MINUTE))
    store.add_federation_trust_mark(
        mark("region", kind="region", key="zj", entity_id="https://idp.zj.example.cn")
    )
    assert [m.jti for m in store.federation_trust_marks("portal", "zj-portal", NATIONAL)] == [
        "new",
        "old",
    ]
    assert [m.jti for m in store.federation_trust_marks("portal", "zj-portal")] == [
        "dengbao",
        "new",
        "old",
    ]
    assert {m.jti for m in store.federation_trust_marks(trust_mark_type=NATIONAL)} == {
        "new",
        "old",
        "region",
    }
    assert [m.jti for m in store.federation_trust_marks("region")] == ["region"]
    assert len(store.federation_trust_marks()) == 4


def test_revoking_marks_only_the_live_marks_of_that_type_and_subordinate(store: Store) -> None:
    store.add_federation_trust_mark(mark("a"))
    store.add_federation_trust_mark(mark("b", issued_at=NOW + MINUTE))
    store.add_federation_trust_mark(mark("other-type", DENGBAO))
    store.add_federation_trust_mark(mark("other-key", key="hz-portal"))
    assert store.revoke_federation_trust_marks("portal", "zj-portal", NATIONAL, NOW + MINUTE) == 2
    assert store.federation_trust_mark("a").revoked_at == NOW + MINUTE  # type: ignore[union-attr]
    assert store.federation_trust_mark("b").revoked_at == NOW + MINUTE  # type: ignore[union-attr]
    assert store.federation_trust_mark("other-type").revoked_at is None  # type: ignore[union-attr]
    assert store.federation_trust_mark("other-key").revoked_at is None  # type: ignore[union-attr]
    # A second revocation changes nothing: the first time stays.
    assert (
        store.revoke_federation_trust_marks("portal", "zj-portal", NATIONAL, NOW + MINUTE * 5) == 0
    )
    assert store.federation_trust_mark("a").revoked_at == NOW + MINUTE  # type: ignore[union-attr]


def test_a_mark_needs_aware_times(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        mark("naive", issued_at=NOW.replace(tzinfo=None))
    assert store.federation_trust_marks() == []
