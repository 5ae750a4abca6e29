"""The storage contract, pending authorizations: the sign-in's one record, from ``/authorize`` to
the portal's answer. It expires by time, moves by compare-and-set, its round trip to a region is
answered once, it is taken once, and it is bounded in size.

Every test runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.housekeeping import ExpiredRecordPurge
from gateway.store import (
    DuplicateRecordError,
    PendingAuthorization,
    PendingAuthorizationNotFoundError,
    PendingStage,
    SqlStore,
    Store,
    token_hash,
)

from .support import MINUTE, NOW, _count, _leg, _pending, _race

CHOOSING, AT_REGION = PendingStage.CHOOSING, PendingStage.AT_REGION
STEP_UP, CONSENT = PendingStage.STEP_UP, PendingStage.CONSENT
PORTAL_STATE = "portal-state-Xy12"


def test_a_pending_authorization_reads_back_as_it_was_saved(store: Store) -> None:
    saved = _pending()
    store.save_pending_authorization(saved)
    assert store.get_pending_authorization(saved.id_hash, NOW) == saved
    waiting = dataclasses.replace(
        _pending("consent", CONSENT, prompt=(), max_age=None, hinted_subject=None),
        session_hash=token_hash("sso"),
        consent_claims=("name", "phone_number"),
    )
    store.save_pending_authorization(waiting)
    assert store.get_pending_authorization(waiting.id_hash, NOW) == waiting
    assert store.get_pending_authorization(token_hash("unknown"), NOW) is None


def test_the_portal_state_is_hidden_from_logs(store: Store) -> None:
    pending = _pending()
    assert PORTAL_STATE not in repr(pending)
    assert "upstream-nonce" not in repr(pending)
    assert pending.upstream is not None
    assert pending.upstream.code_verifier not in repr(pending)


def test_an_expired_pending_authorization_is_gone_for_every_operation(store: Store) -> None:
    pending = _pending(expires_in=10)
    store.save_pending_authorization(pending)
    later = NOW + 10 * MINUTE
    assert store.get_pending_authorization(pending.id_hash, later) is None
    with pytest.raises(PendingAuthorizationNotFoundError):
        store.update_pending_authorization(pending, [AT_REGION], later)
    with pytest.raises(PendingAuthorizationNotFoundError):
        store.take_upstream_leg(token_hash("upstream-state"), later)
    with pytest.raises(PendingAuthorizationNotFoundError):
        store.consume_pending_authorization(pending.id_hash, [AT_REGION], later)


def test_an_id_or_a_state_is_taken_once(store: Store) -> None:
    store.save_pending_authorization(_pending("one"))
    with pytest.raises(DuplicateRecordError):
        store.save_pending_authorization(_pending("one", CHOOSING))
    with pytest.raises(DuplicateRecordError):  # another record, the same upstream state
        store.save_pending_authorization(_pending("two"))


def test_a_move_is_a_compare_and_set_on_the_stage(store: Store) -> None:
    choosing = _pending(stage=CHOOSING)
    store.save_pending_authorization(choosing)
    at_region = dataclasses.replace(
        choosing, stage=AT_REGION, upstream=_leg(), expires_at=NOW + 20 * MINUTE
    )
    with pytest.raises(PendingAuthorizationNotFoundError):
        store.update_pending_authorization(at_region, [STEP_UP, CONSENT], NOW)
    store.update_pending_authorization(at_region, [CHOOSING], NOW)
    assert store.get_pending_authorization(choosing.id_hash, NOW + 15 * MINUTE) == at_region
    with pytest.raises(PendingAuthorizationNotFoundError):
        store.update_pending_authorization(at_region, [CHOOSING], NOW)


def test_of_twenty_concurrent_moves_from_one_stage_one_wins(store: Store) -> None:
    choosing = _pending(stage=CHOOSING)
    store.save_pending_authorization(choosing)

    def move(index: int) -> None:
        moved = dataclasses.replace(choosing, stage=AT_REGION, upstream=_leg(f"state-{index}"))
        store.update_pending_authorization(moved, [CHOOSING], NOW)

    results = _race(20, move)
    assert sum(result is None for result in results) == 1, results
    assert all(
        isinstance(r, PendingAuthorizationNotFoundError) for r in results if r is not None
    ), results


def test_the_region_answer_takes_the_round_trip_once(store: Store) -> None:
    pending = _pending()
    store.save_pending_authorization(pending)
    assert store.take_upstream_leg(token_hash("upstream-state"), NOW) == pending
    with pytest.raises(PendingAuthorizationNotFoundError):
        store.take_upstream_leg(token_hash("upstream-state"), NOW)
    after = store.get_pending_authorization(pending.id_hash, NOW)
    assert after == dataclasses.replace(pending, upstream=None)
    # A new round trip (the person chose again) is answered by its own state only.
    store.update_pending_authorization(
        dataclasses.replace(pending, upstream=_leg("second")), [AT_REGION], NOW
    )
    with pytest.raises(PendingAuthorizationNotFoundError):
        store.take_upstream_leg(token_hash("upstream-state"), NOW)
    assert store.take_upstream_leg(token_hash("second"), NOW).id_hash == pending.id_hash


def test_twenty_concurrent_region_answers_take_the_round_trip_once(store: Store) -> None:
    store.save_pending_authorization(_pending())
    results = _race(20, lambda _: store.take_upstream_leg(token_hash("upstream-state"), NOW))
    assert sum(isinstance(r, PendingAuthorization) for r in results) == 1, results
    assert sum(isinstance(r, PendingAuthorizationNotFoundError) for r in results) == 19


def test_only_a_record_at_the_region_answers_a_state(store: Store) -> None:
    moved_on = dataclasses.replace(_pending(), stage=STEP_UP)
    store.save_pending_authorization(moved_on)
    with pytest.raises(PendingAuthorizationNotFoundError):
        store.take_upstream_leg(token_hash("upstream-state"), NOW)


def test_the_answer_takes_the_record_once_and_deletes_it(sql_store: SqlStore) -> None:
    store: Store = sql_store
    pending = _pending()
    store.save_pending_authorization(pending)
    with pytest.raises(PendingAuthorizationNotFoundError):
        store.consume_pending_authorization(pending.id_hash, [CONSENT], NOW)
    assert store.consume_pending_authorization(pending.id_hash, [AT_REGION], NOW) == pending
    with pytest.raises(PendingAuthorizationNotFoundError):
        store.consume_pending_authorization(pending.id_hash, [AT_REGION], NOW)
    assert _count(sql_store, "pending_authorizations") == 0  # the portal's state is gone


def test_twenty_concurrent_answers_take_the_record_once(store: Store) -> None:
    pending = _pending(stage=CONSENT)
    store.save_pending_authorization(pending)
    results = _race(
        20, lambda _: store.consume_pending_authorization(pending.id_hash, [CONSENT], NOW)
    )
    assert sum(isinstance(r, PendingAuthorization) for r in results) == 1, results
    assert sum(isinstance(r, PendingAuthorizationNotFoundError) for r in results) == 19


def test_a_record_larger_than_the_bound_is_refused(sql_store: SqlStore) -> None:
    store: Store = sql_store
    huge = _pending(state="国" * 40_000)  # 120 kB of UTF-8
    with pytest.raises(ValueError, match="limited"):
        store.save_pending_authorization(huge)
    store.save_pending_authorization(_pending(stage=CHOOSING))
    with pytest.raises(ValueError, match="limited"):
        store.update_pending_authorization(
            dataclasses.replace(huge, stage=CHOOSING), [CHOOSING], NOW
        )
    assert _count(sql_store, "pending_authorizations") == 1


def test_purge_deletes_expired_pending_authorizations(sql_store: SqlStore) -> None:
    store: Store = sql_store
    store.save_pending_authorization(_pending("old", CHOOSING, expires_in=1))
    store.save_pending_authorization(_pending("new", CHOOSING, expires_in=60))
    assert store.purge_expired(NOW + 2 * MINUTE) == 1
    assert store.get_pending_authorization(token_hash("new"), NOW + 2 * MINUTE) is not None
    with sql_store.engine.connect() as conn:
        rows = conn.execute(text("SELECT id_hash FROM pending_authorizations")).all()
    assert [row.id_hash for row in rows] == [token_hash("new")]


def test_the_gateways_purge_timer_deletes_abandoned_sign_ins(sql_store: SqlStore) -> None:
    """Sign-ins started and never finished leave the store on the gateway's timer (row 7)."""
    store: Store = sql_store
    for n in range(5):
        store.save_pending_authorization(_pending(f"abandoned-{n}", CHOOSING, expires_in=1))
    store.save_pending_authorization(_pending("live", CHOOSING, expires_in=60))
    clock = iter([NOW + 2 * MINUTE] * 100)
    purge = ExpiredRecordPurge(store, interval=0.05, clock=lambda: next(clock))
    purge.start()
    try:
        deadline = time.monotonic() + 10
        while _count(sql_store, "pending_authorizations") > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        purge.stop()
    assert _count(sql_store, "pending_authorizations") == 1
    assert store.get_pending_authorization(token_hash("live"), NOW) is not None


def test_a_purge_that_fails_is_logged_and_does_not_end_the_timer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = SqlStore.from_url(f"sqlite:///{tmp_path / 'missing' / 'store.db'}")
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the driver says
        unreachable.purge_expired(NOW)
    purge = ExpiredRecordPurge(unreachable, interval=60, clock=lambda: NOW)
    assert purge.run_once() == 0
    assert "purging expired records failed" in caplog.text
