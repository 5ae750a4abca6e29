"""The storage contract, the second factor: TOTP credentials and recovery codes.

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import dataclasses

import pytest

from gateway.store import (
    DuplicateRecordError,
    Store,
    Subject,
    SubjectNotFoundError,
)
from gateway.store.contract import RecordNotFoundError, RecoveryCode, TotpCredential

from .support import (
    DAY,
    HOUR,
    MINUTE,
    NOW,
    OTHER_SECRET,
    SECRET,
    STEP,
    _enrolled,
    _race,
    _recovery,
)

# --- TOTP credentials ---------------------------------------------------------------------------


def test_a_totp_credential_is_pending_until_confirmed_with_its_recovery_codes(
    store: Store, subject: Subject
) -> None:
    assert store.get_totp_credential(subject.id) is None
    store.save_totp_credential(TotpCredential(subject.id, SECRET, NOW))
    assert store.get_totp_credential(subject.id) == TotpCredential(subject.id, SECRET, NOW)
    assert store.list_recovery_codes(subject.id) == []
    assert not store.accept_totp_step(subject.id, STEP, NOW)  # pending: nothing is accepted
    codes = _recovery(subject)
    assert store.confirm_totp_credential(subject.id, SECRET, STEP, codes, NOW + MINUTE)
    confirmed = store.get_totp_credential(subject.id)
    assert confirmed == TotpCredential(
        subject.id, SECRET, NOW, NOW + MINUTE, STEP, last_used_at=NOW + MINUTE
    )
    assert store.list_recovery_codes(subject.id) == codes
    # Confirming twice does nothing.
    assert not store.confirm_totp_credential(subject.id, SECRET, STEP + 1, [], NOW + HOUR)
    assert store.list_recovery_codes(subject.id) == codes


def test_a_pending_enrolment_is_replaced_but_a_confirmed_one_is_not(
    store: Store, subject: Subject
) -> None:
    store.save_totp_credential(TotpCredential(subject.id, SECRET, NOW))
    store.save_totp_credential(TotpCredential(subject.id, OTHER_SECRET, NOW + MINUTE))
    pending = store.get_totp_credential(subject.id)
    assert pending == TotpCredential(subject.id, OTHER_SECRET, NOW + MINUTE)
    # The code was checked against the first secret: that confirmation must not land.
    assert not store.confirm_totp_credential(subject.id, SECRET, STEP, _recovery(subject), NOW)
    assert store.confirm_totp_credential(subject.id, OTHER_SECRET, STEP, [], NOW)
    with pytest.raises(DuplicateRecordError):
        store.save_totp_credential(TotpCredential(subject.id, SECRET, NOW + HOUR))
    confirmed = store.get_totp_credential(subject.id)
    assert confirmed is not None
    assert confirmed.secret == OTHER_SECRET


def test_a_totp_credential_needs_a_known_subject_and_starts_pending(store: Store) -> None:
    with pytest.raises(SubjectNotFoundError):
        store.save_totp_credential(TotpCredential("no-such-subject", SECRET, NOW))
    with pytest.raises(ValueError, match="pending"):
        store.save_totp_credential(TotpCredential("no-such-subject", SECRET, NOW, NOW))


def test_a_time_step_is_accepted_once_and_never_an_older_one(
    store: Store, subject: Subject
) -> None:
    _enrolled(store, subject)
    assert not store.accept_totp_step(subject.id, STEP, NOW)  # the confirmation's own step
    assert store.accept_totp_step(subject.id, STEP + 1, NOW + MINUTE)
    assert not store.accept_totp_step(subject.id, STEP + 1, NOW + MINUTE)
    assert not store.accept_totp_step(subject.id, STEP, NOW + MINUTE)
    assert store.accept_totp_step(subject.id, STEP + 3, NOW + 2 * MINUTE)
    credential = store.get_totp_credential(subject.id)
    assert credential is not None
    assert (credential.last_accepted_step, credential.last_used_at) == (STEP + 3, NOW + 2 * MINUTE)
    assert not store.accept_totp_step("no-such-subject", STEP + 9, NOW)


def test_twenty_concurrent_acceptances_of_one_step_succeed_once(
    store: Store, subject: Subject
) -> None:
    _enrolled(store, subject)
    results = _race(20, lambda _: store.accept_totp_step(subject.id, STEP + 1, NOW))
    assert results.count(True) == 1, results
    assert results.count(False) == 19, results


def test_concurrent_confirmations_confirm_once(store: Store, subject: Subject) -> None:
    store.save_totp_credential(TotpCredential(subject.id, SECRET, NOW))
    results = _race(
        10,
        lambda i: store.confirm_totp_credential(subject.id, SECRET, STEP, _recovery(subject), NOW),
    )
    assert results.count(True) == 1, results
    assert len(store.list_recovery_codes(subject.id)) == 3


# --- recovery codes -----------------------------------------------------------------------------


def test_a_recovery_code_is_used_once(store: Store, subject: Subject) -> None:
    _enrolled(store, subject)
    assert store.use_recovery_code(subject.id, 2, NOW + MINUTE)
    assert not store.use_recovery_code(subject.id, 2, NOW + HOUR)
    assert not store.use_recovery_code(subject.id, 99, NOW)
    used = [code.used_at for code in store.list_recovery_codes(subject.id)]
    assert used == [None, NOW + MINUTE, None]


def test_ten_concurrent_uses_of_one_recovery_code_succeed_once(
    store: Store, subject: Subject
) -> None:
    _enrolled(store, subject)
    results = _race(10, lambda _: store.use_recovery_code(subject.id, 1, NOW))
    assert results.count(True) == 1, results


def test_recovery_codes_are_replaced_only_for_a_confirmed_credential(
    store: Store, subject: Subject
) -> None:
    with pytest.raises(RecordNotFoundError):
        store.replace_recovery_codes(subject.id, _recovery(subject))
    store.save_totp_credential(TotpCredential(subject.id, SECRET, NOW))
    with pytest.raises(RecordNotFoundError):
        store.replace_recovery_codes(subject.id, _recovery(subject))
    assert store.confirm_totp_credential(subject.id, SECRET, STEP, _recovery(subject), NOW)
    store.use_recovery_code(subject.id, 1, NOW)
    fresh = [RecoveryCode(subject.id, 1, "scrypt$256$8$1$new$new", NOW + DAY)]
    store.replace_recovery_codes(subject.id, fresh)
    assert store.list_recovery_codes(subject.id) == fresh
    with pytest.raises(ValueError, match="unique"):
        store.replace_recovery_codes(subject.id, fresh + fresh)
    with pytest.raises(ValueError, match="belong"):
        store.replace_recovery_codes(subject.id, [dataclasses.replace(fresh[0], subject="x")])
    assert store.list_recovery_codes(subject.id) == fresh


def test_deleting_a_credential_takes_its_recovery_codes_with_it(
    store: Store, subject: Subject
) -> None:
    _enrolled(store, subject)
    assert store.delete_totp_credential(subject.id) is True
    assert store.delete_totp_credential(subject.id) is False
    assert store.get_totp_credential(subject.id) is None
    assert store.list_recovery_codes(subject.id) == []
    store.save_totp_credential(TotpCredential(subject.id, OTHER_SECRET, NOW))  # enrol anew
