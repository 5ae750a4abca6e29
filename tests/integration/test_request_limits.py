"""Floods are answered 429 with ``Retry-After`` before they reach the store (THREAT_MODEL row 7,
RFC 6585 §4, issue 14 "Limits").

A real gateway on loopback behind one trusted proxy hop (as behind the chart's Ingress), so each
request's ``X-Forwarded-For`` is its client address. Every class of limited endpoint is flooded
from one address: the (limit+1)th request is 429 with ``Retry-After``, runs no SQL statement on
the store's engine, another address (or client, or principal) is not affected, and after
``Retry-After`` seconds the first address passes again.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import sqlalchemy
from gateway_fixtures import RunningGateway, start_gateway

LIMIT = 3
WINDOW = 2  # seconds
TIGHT = f"{LIMIT} per {WINDOW} seconds"
ROOMY = "1000 per minute"
HOSTS = itertools.count(100)


class StoreStatements:
    """Counts the SQL statements request threads run on the gateway's own engine (the
    housekeeping threads, ``tongxing-*``, are not requests)."""

    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.count = 0
        self._lock = threading.Lock()
        sqlalchemy.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: object) -> None:
        if not threading.current_thread().name.startswith("tongxing-"):
            with self._lock:
                self.count += 1


@dataclass
class Limited:
    gateway: RunningGateway
    statements: StoreStatements


def _gateway(data_dir: Path, **limits: str) -> Iterator[RunningGateway]:
    rate_limits = {
        "authorize": ROOMY,
        "callback": ROOMY,
        "token": ROOMY,
        "introspect": ROOMY,
        "token_address": ROOMY,
        "mfa": ROOMY,
        "admin": ROOMY,
        **limits,
    }
    yield from start_gateway(data_dir, proxy_hops=1, rate_limits=rate_limits)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    tight = dict.fromkeys(("authorize", "callback", "token", "introspect", "mfa"), TIGHT)
    for gateway in _gateway(tmp_path_factory.mktemp("limits"), **tight, admin=TIGHT):
        engine = gateway.services.store._engine  # type: ignore[attr-defined]
        yield Limited(gateway, StoreStatements(engine))


Send = Callable[[RunningGateway, str], requests.Response]


def _from(address: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": address, **headers}


def _basic(client_id: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:not-the-secret".encode()).decode()


def authorize(gateway: RunningGateway, address: str) -> requests.Response:
    return requests.get(
        f"{gateway.issuer}/authorize",
        params={"client_id": "nobody", "response_type": "code", "scope": "openid"},
        headers=_from(address, Accept="text/html"),
        allow_redirects=False,
        timeout=10,
    )


def callback(gateway: RunningGateway, address: str) -> requests.Response:
    return requests.get(
        f"{gateway.issuer}/callback/zj",
        params={"state": "s", "code": "c"},
        headers=_from(address, Accept="text/html"),
        allow_redirects=False,
        timeout=10,
    )


def mfa(gateway: RunningGateway, address: str) -> requests.Response:
    return requests.post(
        f"{gateway.issuer}/mfa/verify",
        data={"code": "123456"},
        headers=_from(address, Accept="text/html"),
        allow_redirects=False,
        timeout=10,
    )


def second_factor(gateway: RunningGateway, address: str) -> requests.Response:
    return requests.post(
        f"{gateway.issuer}/consents/second-factor/enrol",
        headers=_from(address, Accept="text/html"),
        allow_redirects=False,
        timeout=10,
    )


def token(gateway: RunningGateway, address: str, client_id: str = "portal-a") -> requests.Response:
    return requests.post(
        f"{gateway.issuer}/token",
        data={"grant_type": "authorization_code", "code": "c", "redirect_uri": "https://x/cb"},
        headers=_from(address, Authorization=_basic(client_id)),
        timeout=10,
    )


def introspect(
    gateway: RunningGateway, address: str, client_id: str = "portal-a"
) -> requests.Response:
    return requests.post(
        f"{gateway.issuer}/introspect",
        data={"token": "t", "client_id": client_id},
        headers=_from(address),
        timeout=10,
    )


def admin(gateway: RunningGateway, address: str) -> requests.Response:
    return requests.get(
        f"{gateway.issuer}/admin/v1/regions",
        headers=_from(address, Authorization=f"Bearer {gateway.admin_token}"),
        timeout=10,
    )


def _assert_limited(answer: requests.Response, *, json_body: bool) -> int:
    assert answer.status_code == 429, answer.text
    retry_after = int(answer.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW
    if json_body:
        assert answer.json()["error"] == "too_many_requests"
        assert answer.json()["retry_after"] == retry_after
    else:
        assert answer.headers["Content-Type"].startswith("text/html")
        assert "请求过于频繁" in answer.text
        assert "Too many requests" in answer.text
    return retry_after


@pytest.mark.parametrize(
    ("send", "json_body"),
    [
        (authorize, False),
        (callback, False),
        (mfa, False),
        (second_factor, False),
        (token, True),
        (introspect, True),
        (admin, True),
    ],
    ids=["authorize", "callback", "mfa", "second-factor", "token", "introspect", "admin"],
)
def test_a_flood_is_refused_with_retry_after_before_the_store_and_alone(
    limited: Limited, send: Send, json_body: bool
) -> None:
    gateway = limited.gateway
    # Each class its own addresses: /mfa* and /consents/second-factor/* share one budget.
    flooder, other = f"203.0.113.{next(HOSTS)}", f"198.51.100.{next(HOSTS)}"
    first = [send(gateway, flooder) for _ in range(LIMIT)]
    assert [a.status_code for a in first if a.status_code == 429] == []

    before = limited.statements.count
    refused = send(gateway, flooder)
    assert limited.statements.count == before, "a refused request reached the store"
    retry_after = _assert_limited(refused, json_body=json_body)

    if send is not admin:  # the admin API counts per principal: the next test
        assert send(gateway, other).status_code != 429  # another address is not affected
    time.sleep(retry_after + 0.1)
    assert send(gateway, flooder).status_code != 429  # the window moved on


def test_a_portals_id_named_from_elsewhere_does_not_use_up_the_portals_own_budget(
    limited: Limited,
) -> None:
    """The client id is not verified before the limit: it splits buckets, never merges them."""
    gateway = limited.gateway
    attacker, portal = "203.0.113.20", "198.51.100.20"
    answers = [token(gateway, attacker, "portal-victim") for _ in range(LIMIT + 1)]
    assert answers[-1].status_code == 429
    assert token(gateway, portal, "portal-victim").status_code != 429
    assert token(gateway, attacker, "portal-other").status_code != 429


def test_another_admin_principal_is_not_limited_by_the_first(limited: Limited) -> None:
    gateway = limited.gateway
    address = "203.0.113.30"
    assert [admin(gateway, address).status_code for _ in range(LIMIT + 1)][-1] == 429
    as_operator = requests.get(
        f"{gateway.issuer}/admin/v1/regions",
        headers=_from(address, Authorization=f"Bearer {gateway.operator_token}"),
        timeout=10,
    )
    assert as_operator.status_code != 429
    # A token the settings do not know counts against its address, not a principal's bucket.
    unknown = [
        requests.get(
            f"{gateway.issuer}/admin/v1/regions",
            headers=_from(address, Authorization=f"Bearer invented-{n}"),
            timeout=10,
        ).status_code
        for n in range(LIMIT + 1)
    ]
    assert unknown == [401] * LIMIT + [429]


def test_an_ipv6_host_is_limited_by_its_64_prefix(limited: Limited) -> None:
    gateway = limited.gateway
    answers = [authorize(gateway, f"2001:db8:1:2::{n + 1}") for n in range(LIMIT + 1)]
    assert answers[-1].status_code == 429  # a new address in the same /64 is the same host
    assert authorize(gateway, "2001:db8:1:3::1").status_code != 429


def test_invented_client_ids_share_one_budget_per_address(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    for gateway in _gateway(tmp_path_factory.mktemp("ids"), token_address=TIGHT):
        answers = [token(gateway, "203.0.113.40", f"invented-{n}") for n in range(LIMIT + 1)]
        assert [a.status_code == 429 for a in answers] == [False] * LIMIT + [True]
        assert token(gateway, "203.0.113.41", "invented-0").status_code != 429


def test_the_default_limits_admit_a_burst_of_ordinary_use(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The shipped defaults are generous: the test suite's own bursts are never limited."""
    for gateway in start_gateway(tmp_path_factory.mktemp("defaults")):
        statuses = {authorize(gateway, "127.0.0.1").status_code for _ in range(60)}
        statuses |= {token(gateway, "127.0.0.1").status_code for _ in range(60)}
        assert 429 not in statuses
