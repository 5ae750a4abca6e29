"""Pushed authorization requests (gateway.store.contract.pushed_requests), on both engines.

RFC 9126 §4: a ``request_uri`` is used once, by the portal that pushed it, until it expires;
housekeeping purges it after.
"""

from __future__ import annotations

import threading

import pytest

from gateway.store import Store
from gateway.store.contract import DuplicateRecordError, token_hash
from gateway.store.contract.pushed_requests import (
    MAX_PUSHED_BYTES,
    PushedRequest,
    PushedRequestTooLargeError,
)

from .support import MINUTE, NOW

REFERENCE = token_hash("urn:ietf:params:oauth:request_uri:one")
PARAMETERS = {"redirect_uri": "https://portal.example.cn/cb", "scope": "openid", "state": "s"}


def pushed(
    reference: str = REFERENCE, client_id: str = "portal-a", **extra: object
) -> PushedRequest:
    values: dict[str, object] = {
        "reference_hash": reference,
        "client_id": client_id,
        "parameters": PARAMETERS,
        "expires_at": NOW + MINUTE,
        **extra,
    }
    return PushedRequest(**values)  # type: ignore[arg-type]


def test_a_pushed_request_is_taken_once_by_its_portal(store: Store) -> None:
    store.save_pushed_request(pushed())
    taken = store.take_pushed_request(REFERENCE, "portal-a", NOW)
    assert taken == pushed()
    assert store.take_pushed_request(REFERENCE, "portal-a", NOW) is None


def test_another_portal_cannot_take_it_nor_spend_it(store: Store) -> None:
    store.save_pushed_request(pushed())
    assert store.take_pushed_request(REFERENCE, "portal-b", NOW) is None
    assert store.take_pushed_request(REFERENCE, "portal-a", NOW) == pushed()


def test_an_expired_request_is_not_taken(store: Store) -> None:
    store.save_pushed_request(pushed())
    assert store.take_pushed_request(REFERENCE, "portal-a", NOW + MINUTE) is None
    assert store.take_pushed_request(token_hash("unknown"), "portal-a", NOW) is None


def test_a_reference_is_kept_once(store: Store) -> None:
    store.save_pushed_request(pushed())
    with pytest.raises(DuplicateRecordError):
        store.save_pushed_request(pushed(client_id="portal-b"))


def test_oversized_parameters_are_refused(store: Store) -> None:
    with pytest.raises(PushedRequestTooLargeError):
        store.save_pushed_request(pushed(parameters={"claims": "x" * (MAX_PUSHED_BYTES + 1)}))
    assert store.take_pushed_request(REFERENCE, "portal-a", NOW) is None


def test_of_concurrent_takes_exactly_one_wins(store: Store) -> None:
    store.save_pushed_request(pushed())
    results: list[PushedRequest | None] = []
    lock = threading.Lock()

    def take() -> None:
        found = store.take_pushed_request(REFERENCE, "portal-a", NOW)
        with lock:
            results.append(found)

    threads = [threading.Thread(target=take) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(found is not None for found in results) == 1


def test_housekeeping_purges_expired_pushed_requests_only(store: Store) -> None:
    store.save_pushed_request(pushed())
    store.save_pushed_request(pushed(token_hash("long"), expires_at=NOW + 10 * MINUTE))
    assert store.purge_expired(NOW + 2 * MINUTE) >= 1
    assert store.take_pushed_request(REFERENCE, "portal-a", NOW) is None
    assert store.take_pushed_request(token_hash("long"), "portal-a", NOW) is not None
