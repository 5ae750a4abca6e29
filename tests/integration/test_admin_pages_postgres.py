"""``tongxing_api.client`` pages through 2,500 portals of a gateway on PostgreSQL, over HTTP.

The gateway's listings are keyset pages (``limit``, ``after``, an RFC 8288 ``rel="next"``
link); ``GatewayClient.list_all``, what the operator and ``tongxing admin`` call, follows them to
the end. An operator's pages hold only what it manages, filtered by the store's query
(THREAT_MODEL row 1); bad page parameters are a 400, never a 5xx (row 7).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from gateway_fixtures import RunningGateway, start_gateway
from pydantic import SecretStr
from tongxing_dev.postgres import PostgresEndpoint

from gateway.registry import ManagedBy, Names, Portal, hash_secret
from tongxing_api.client import GatewayClient, GatewayRejectedError

TOTAL = 2500
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _portal(n: int) -> Portal:
    """Every fifth portal is the operator's (two resources), the rest the platform's."""
    owner = (
        ManagedBy(principal="operator", kind="Portal", namespace=f"ns{n % 2}", name=f"p{n}")
        if n % 5 == 0
        else ManagedBy(principal="platform")
    )
    return Portal(
        client_id=f"portal-{n:05d}",
        names=Names(zh="门户", en="Portal"),
        owner="zj",
        redirect_uris=[f"https://p{n}.example.cn/callback"],
        client_secret_hash=hash_secret(f"secret-{n}"),
        managed_by=owner,
    )


@pytest.fixture(scope="module")
def gateway(
    postgres: PostgresEndpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    name = f"pages_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    try:
        data_dir: Path = tmp_path_factory.mktemp("pages")
        for running in start_gateway(data_dir, postgres.sqlalchemy_url(name)):
            for n in range(TOTAL):
                running.services.registry.put_portal(_portal(n), NOW)
            yield running
    finally:
        postgres.drop_database(name)


def _client(gateway: RunningGateway, token: str) -> tuple[GatewayClient, list[str]]:
    """A client of the gateway over HTTP, and the query of every request it sends."""
    session = requests.Session()
    queries: list[str] = []
    session.hooks["response"].append(lambda r, *a, **k: queries.append(r.request.url or ""))
    return GatewayClient(gateway.issuer, SecretStr(token), session=session), queries


def test_the_client_pages_through_all_2500_portals_once_in_order(gateway: RunningGateway) -> None:
    client, sent = _client(gateway, gateway.admin_token)
    listed = client.list_all("portals", page_size=300)
    assert [p["client_id"] for p in listed] == [f"portal-{n:05d}" for n in range(TOTAL)]
    assert len(sent) == 9  # eight full pages of 300, and one of 100
    assert all("limit=300" in url for url in sent)
    assert listed == client.list_all("portals")  # the default page size, 500: five pages


def test_an_operators_pages_hold_only_its_own_portals(gateway: RunningGateway) -> None:
    client, sent = _client(gateway, gateway.operator_token)
    listed = client.list_all("portals", page_size=100)
    assert [p["client_id"] for p in listed] == [f"portal-{n:05d}" for n in range(0, TOTAL, 5)]
    assert {p["managed_by"]["principal"] for p in listed} == {"operator"}
    # Filtered in the query: 500 portals of its own are five pages, not 25 pages of everyone's.
    assert len(sent) == 5


@pytest.mark.parametrize("limit", ["0", "1001"])
def test_a_limit_out_of_bounds_is_refused(gateway: RunningGateway, limit: str) -> None:
    answer = gateway.admin("GET", f"/portals?limit={limit}")
    assert answer.status_code == 400
    assert [f["field"] for f in answer.json()["fields"]] == ["limit"]


def test_an_after_that_names_no_key_is_refused_and_never_reaches_the_store(
    gateway: RunningGateway,
) -> None:
    # PostgreSQL refuses a NUL in text with an error: the gateway must not send it one.
    for after in ("a%00b", "%E2%80%AE", "x" * 300):
        answer = gateway.admin("GET", f"/portals?after={after}")
        assert answer.status_code == 400, after
        assert [f["field"] for f in answer.json()["fields"]] == ["after"]
    with pytest.raises(GatewayRejectedError):
        GatewayClient(gateway.issuer, SecretStr(gateway.admin_token)).list_all(
            "portals", page_size=0
        )


def test_one_page_of_1000_comes_back_within_a_second(gateway: RunningGateway) -> None:
    answer = gateway.admin("GET", "/portals?limit=1000&after=portal-00999")
    assert answer.status_code == 200
    assert len(answer.json()) == 1000
    assert answer.json()[0]["client_id"] == "portal-01000"
    assert 'after=portal-01999>; rel="next"' in answer.headers["Link"]
    assert answer.elapsed.total_seconds() < 1.0
