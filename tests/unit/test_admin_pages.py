"""The admin API's listings page by key (keyset pagination), over a real SQLite store, through
Flask's test client (no sockets).

A page is a JSON array of at most ``limit`` registrations; an RFC 8288 ``Link: <...>;
rel="next"`` header names the next page while more follow. An operator's pages hold only what
it manages (THREAT_MODEL row 1); a bad ``limit`` or ``after`` is a 400 naming the field, never a
5xx (row 7).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.registry import PAGE_DEFAULT, PAGE_MAX, ManagedBy, Names, Portal, hash_secret
from gateway.services import Services, build_services
from gateway.settings import Settings

TOKEN = secrets.token_urlsafe(32)
OPERATOR = secrets.token_urlsafe(32)
NOW = datetime(2026, 12, 1, tzinfo=UTC)
TOTAL = 250  # every third portal is the operator's
LINK = re.compile(r'^<([^>]+)>; rel="next"$')


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = Settings.model_validate(
        {
            "issuer": "https://tongxing.example.cn",
            "data_dir": tmp_path,
            "create_keys": True,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": TOKEN,
            "operator_token": OPERATOR,
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    built = build_services(settings)
    for n in range(TOTAL):
        built.registry.put_portal(portal(n), NOW)
    yield built
    built.close()


@pytest.fixture
def client(services: Services) -> FlaskClient:
    return create_app(services=services).test_client()


def portal(n: int) -> Portal:
    operators = n % 3 == 0
    owner = (
        ManagedBy(principal="operator", kind="Portal", namespace="ns", name=f"p{n}", uid=f"u{n}")
        if operators
        else ManagedBy(principal="platform")
    )
    return Portal(
        client_id=f"portal-{n:04d}",
        names=Names(zh="门户", en="Portal"),
        owner="zj",
        redirect_uris=[f"https://p{n}.example.cn/callback"],
        client_secret_hash=hash_secret(f"secret-{n}"),
        managed_by=owner,
    )


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def every_page(client: FlaskClient, url: str, token: str = TOKEN) -> list[list[dict[str, Any]]]:
    """Follow ``rel="next"`` from ``url`` until it is absent; every page's body."""
    pages: list[list[dict[str, Any]]] = []
    next_url: str | None = url
    while next_url is not None:
        answer = client.get(next_url, headers=auth(token))
        assert answer.status_code == 200, answer.get_json()
        pages.append(answer.get_json())
        link = answer.headers.get("Link")
        next_url = None
        if link is not None:
            found = LINK.match(link)
            assert found is not None, link
            next_url = found.group(1)
        assert len(pages) <= TOTAL, "the pages do not end"
    return pages


def test_the_platform_pages_through_every_portal_once_in_order(client: FlaskClient) -> None:
    pages = every_page(client, "/admin/v1/portals?limit=40")
    assert [len(page) for page in pages] == [40] * 6 + [10]
    ids = [p["client_id"] for page in pages for p in page]
    assert ids == [f"portal-{n:04d}" for n in range(TOTAL)]
    assert all("client_secret_hash" not in p for page in pages for p in page)


def test_the_default_page_is_100_and_the_link_keeps_the_limit(client: FlaskClient) -> None:
    first = client.get("/admin/v1/portals", headers=auth())
    assert len(first.get_json()) == PAGE_DEFAULT
    found = LINK.match(first.headers["Link"])
    assert found is not None
    url = urlsplit(found.group(1))
    assert url.path == "/admin/v1/portals"
    assert parse_qs(url.query) == {"limit": ["100"], "after": ["portal-0099"]}
    everything = client.get(f"/admin/v1/portals?limit={PAGE_MAX}", headers=auth())
    assert len(everything.get_json()) == TOTAL
    assert "Link" not in everything.headers


def test_an_operators_pages_hold_only_the_portals_it_manages(client: FlaskClient) -> None:
    pages = every_page(client, "/admin/v1/portals?limit=30", OPERATOR)
    ids = [p["client_id"] for page in pages for p in page]
    assert ids == [f"portal-{n:04d}" for n in range(0, TOTAL, 3)]
    assert all(len(page) == 30 for page in pages[:-1])
    assert all(p["managed_by"]["principal"] == "operator" for page in pages for p in page)


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten", "1e2", "", "٣"])
def test_a_limit_outside_1_to_1000_is_a_400_on_the_field(client: FlaskClient, limit: str) -> None:
    answer = client.get("/admin/v1/portals", query_string={"limit": limit}, headers=auth())
    assert answer.status_code == 400
    assert [f["field"] for f in answer.get_json()["fields"]] == ["limit"]


@pytest.mark.parametrize(
    ("collection", "after"),
    [("portals", "bad key!"), ("portals", "a\x00b"), ("portals", "x" * 300), ("regions", "ZJ")],
)
def test_an_after_that_is_no_key_is_a_400_on_the_field(
    client: FlaskClient, collection: str, after: str
) -> None:
    answer = client.get(f"/admin/v1/{collection}", query_string={"after": after}, headers=auth())
    assert answer.status_code == 400
    assert [f["field"] for f in answer.get_json()["fields"]] == ["after"]


def test_an_after_past_the_last_key_is_an_empty_last_page(client: FlaskClient) -> None:
    answer = client.get("/admin/v1/portals?after=zzzz", headers=auth())
    assert (answer.status_code, answer.get_json(), answer.headers.get("Link")) == (200, [], None)


def test_the_openapi_document_describes_the_pages(client: FlaskClient) -> None:
    document = client.get("/admin/v1/openapi.json").get_json()
    for path in ("/portals", "/regions"):
        listing = document["paths"][path]["get"]
        parameters = {p["name"]: p["schema"] for p in listing["parameters"]}
        assert parameters["limit"] == {
            "type": "integer",
            "minimum": 1,
            "maximum": PAGE_MAX,
            "default": PAGE_DEFAULT,
        }
        assert "after" in parameters
        assert "Link" in listing["responses"]["200"]["headers"]
        assert "400" in listing["responses"]
