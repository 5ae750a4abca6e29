"""Bad input the property test (tests/integration/test_no_server_errors.py) found answering 500,
each now a refusal (THREAT_MODEL row 7, issue 13)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.registry import Registry
from gateway.services import Services, build_services
from gateway.settings import Settings

TOKEN = secrets.token_urlsafe(32)
REDIRECT_URI = "https://portal.example.cn/callback"


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
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    built = build_services(settings)
    yield built
    built.close()


@pytest.fixture
def client(services: Services) -> FlaskClient:
    client = create_app(services=services).test_client()
    portal = {
        "names": {"zh": "门户", "en": "Portal"},
        "owner": "zj",
        "redirect_uris": [REDIRECT_URI],
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.put("/admin/v1/portals/conf", json=portal, headers=headers).status_code == 201
    return client


def test_a_non_ascii_response_type_is_unsupported_at_the_redirect_uri(client: FlaskClient) -> None:
    # Was 500: Authlib quotes response_type in an error_description, which must be ASCII.
    response = client.get(
        "/authorize",
        query_string={"response_type": "é", "client_id": "conf", "redirect_uri": REDIRECT_URI},
    )
    assert response.status_code in (302, 303)
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["unsupported_response_type"]


def test_a_non_ascii_response_type_of_an_unknown_client_gets_a_page(client: FlaskClient) -> None:
    response = client.get("/authorize", query_string={"response_type": "é", "client_id": "nobody"})
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_a_non_ascii_redirect_uri_gets_a_page(client: FlaskClient) -> None:
    # Was 500: Authlib quotes the unregistered redirect_uri in its error_description.
    query = {"response_type": "code", "client_id": "conf", "redirect_uri": REDIRECT_URI + "é"}
    response = client.get("/authorize", query_string=query)
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_a_query_string_of_raw_bytes_that_are_not_utf8_is_an_invalid_request(
    client: FlaskClient,
) -> None:
    # Was 500: Werkzeug's request.args raises UnicodeDecodeError on raw (unencoded) bytes.
    response = client.get(
        "/authorize",
        environ_overrides={"QUERY_STRING": b"acr_values=\x80".decode("latin-1")},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/authorize", "/logout", "/consents", "/callback/zj"])
def test_raw_non_utf8_bytes_get_a_page_not_a_500(client: FlaskClient, path: str) -> None:
    # Was 500 for people (the page, not JSON): the page's language was read from request.values.
    response = client.get(
        path,
        environ_overrides={"QUERY_STRING": b"ui_locales=\x80en".decode("latin-1")},
        headers={"Accept": "text/html"},
    )
    assert response.status_code == 400
    assert "text/html" in response.content_type


@pytest.mark.parametrize(
    "header",
    [
        "Basic ",
        "Basic  ",
        " ",
        "Bearer ",
        "Basic é",
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Basic !!!!",
    ],
)
@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect"])
def test_a_malformed_basic_authorization_is_invalid_client(
    client: FlaskClient, path: str, header: str
) -> None:
    # Was 500: Authlib's Basic parser raises on these instead of finding no credentials.
    response = client.post(
        path,
        data={"grant_type": "client_credentials", "token": "x"},
        headers={"Authorization": header},
    )
    assert response.status_code in (400, 401)
    assert response.get_json()["error"] == "invalid_client"


class _UnreachableStore:
    def get_document(self, *_: Any) -> None:
        raise AssertionError("a key no registration can have must not reach the store")


@pytest.mark.parametrize("key", ["\x00", "zj\x00", "ZJ", "é", "x" * 300, ""])
def test_a_key_no_registration_can_have_names_nothing_without_a_store_query(key: str) -> None:
    # Was 500 on PostgreSQL: a NUL in /callback/<region> or client_id is a DataError there.
    registry = Registry(_UnreachableStore())  # type: ignore[arg-type]
    assert registry.region(key) is None
    assert registry.portal(key) is None
