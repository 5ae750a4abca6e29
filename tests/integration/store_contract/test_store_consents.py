"""The storage contract, consents: the claims a person agreed to release to a portal.

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import pytest

from gateway.store import (
    Store,
    Subject,
    SubjectNotFoundError,
)

from .support import (
    DAY,
    HOUR,
    NOW,
)

# --- consents -----------------------------------------------------------------------------------


def test_a_consent_is_remembered_widened_and_revocable(store: Store, subject: Subject) -> None:
    assert store.get_consent(subject.id, "portal-a") is None
    first = store.save_consent(subject.id, "portal-a", frozenset({"name"}), NOW)
    assert first.claims == {"name"}
    wider = store.save_consent(subject.id, "portal-a", frozenset({"phone_number"}), NOW + HOUR)
    assert wider.claims == {"name", "phone_number"}
    assert store.get_consent(subject.id, "portal-a") == wider
    store.save_consent(subject.id, "portal-b", frozenset({"name"}), NOW)
    assert [c.client_id for c in store.list_consents(subject.id)] == ["portal-a", "portal-b"]

    assert store.revoke_consent(subject.id, "portal-a", NOW + DAY) is True
    assert store.revoke_consent(subject.id, "portal-a", NOW + DAY) is False
    assert store.get_consent(subject.id, "portal-a") is None
    assert [c.client_id for c in store.list_consents(subject.id)] == ["portal-b"]
    # Consent given again after a revocation starts afresh: nothing old comes back.
    renewed = store.save_consent(subject.id, "portal-a", frozenset({"name"}), NOW + DAY)
    assert renewed.claims == {"name"}


def test_a_consent_needs_a_known_subject(store: Store) -> None:
    with pytest.raises(SubjectNotFoundError):
        store.save_consent("no-such-subject", "portal-a", frozenset({"name"}), NOW)
