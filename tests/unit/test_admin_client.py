"""The one admin API client (tongxing_api.client) against the gateway's real admin API, in-process.

The operator and ``tongxing admin`` both call through this client; here it meets the Flask app
with a real SQLite store (no sockets): what it sends (``managed_by`` in a PUT body, the resource
in the query of a GET or DELETE), and what each refusal becomes (a typed error with the status,
the gateway's field messages and a known error code, never anything else of a body).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from pydantic import SecretStr
from requests.structures import CaseInsensitiveDict

from gateway.app import create_app
from gateway.services import build_services
from gateway.settings import Settings
from tongxing_api.client import (
    GatewayClient,
    GatewayConflictError,
    GatewayForbiddenError,
    GatewayRejectedError,
    GatewayUnauthorizedError,
    GatewayUnavailableError,
    InvalidKeyError,
)

GATEWAY = "https://tongxing.example.cn"
PLATFORM = secrets.token_urlsafe(32)
OPERATOR = secrets.token_urlsafe(32)
READER = secrets.token_urlsafe(32)
MARKER = "tx-leak-9c1e"  # what a body says beyond the gateway's field messages
OWNER = {"kind": "Region", "namespace": "zj-gov", "name": "zj", "uid": "uid-zj-1"}
INTRUDER = {"kind": "Region", "namespace": "tenant", "name": "zj", "uid": "uid-tenant-1"}
REGION = {
    "code": "zj",
    "names": {"zh": "浙江", "en": "Zhejiang"},
    "kind": "province",
    "issuer": "https://idp.zj.example.cn/realms/zj",
    "client_id": "tongxing-gateway",
    "client_secret": "upstream-secret-value",
}


class WsgiAdapter(requests.adapters.BaseAdapter):
    """requests -> the Flask app in-process; records each request's method, path and query."""

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.client = app.test_client()
        self.sent: list[tuple[str, str, str]] = []

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = urlsplit(request.url or "")
        self.sent.append((request.method or "", url.path, url.query))
        answer = self.client.open(
            url.path,
            method=request.method or "GET",
            query_string=url.query,
            headers=dict(request.headers),
            data=request.body,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response._content = answer.get_data()
        response.headers = CaseInsensitiveDict(dict(answer.headers))
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def adapter(tmp_path: Path) -> Iterator[WsgiAdapter]:
    settings = Settings.model_validate(
        {
            "issuer": GATEWAY,
            "data_dir": tmp_path,
            "create_keys": True,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
            "admin_token": PLATFORM,
            "operator_token": OPERATOR,
            "admin_clients": [
                {
                    "name": "audit",
                    "role": "reader",
                    "token_sha256": hashlib.sha256(READER.encode()).hexdigest(),
                }
            ],
        }
    )
    services = build_services(settings)
    yield WsgiAdapter(create_app(services=services))
    services.close()


def client_for(adapter: WsgiAdapter, token: str, url: str = GATEWAY) -> GatewayClient:
    session = requests.Session()
    session.mount("https://", adapter)
    return GatewayClient(url, SecretStr(token), session=session)


def region(owner: Mapping[str, str] | None = OWNER, **extra: Any) -> dict[str, Any]:
    document = {**REGION, **extra}
    if owner is not None:
        document["managed_by"] = dict(owner)
    return document


def test_the_operator_registers_reads_and_deletes_as_the_resource_it_acts_for(
    adapter: WsgiAdapter,
) -> None:
    operator = client_for(adapter, OPERATOR)
    assert operator.put_region("zj", region()) is True
    assert operator.put_region("zj", region()) is False  # replaced, not duplicated
    shown = operator.region("zj", OWNER)
    assert shown is not None
    assert shown["managed_by"] == {"principal": "operator", **OWNER}
    assert "client_secret" not in shown
    assert operator.delete_region("zj", OWNER) is True
    assert operator.delete_region("zj", OWNER) is False  # 404 is as good as deleted
    assert operator.region("zj", OWNER) is None
    query = "kind=Region&namespace=zj-gov&name=zj&uid=uid-zj-1"
    assert [(method, path, q) for method, path, q in adapter.sent] == [
        ("PUT", "/admin/v1/regions/zj", ""),
        ("PUT", "/admin/v1/regions/zj", ""),
        ("GET", "/admin/v1/regions/zj", query),
        ("DELETE", "/admin/v1/regions/zj", query),
        ("DELETE", "/admin/v1/regions/zj", query),
        ("GET", "/admin/v1/regions/zj", query),
    ]


def test_another_owners_registration_is_a_typed_refusal_with_the_gateways_words_only(
    adapter: WsgiAdapter,
) -> None:
    operator = client_for(adapter, OPERATOR)
    operator.put_region("zj", region())

    with pytest.raises(GatewayConflictError) as taken:
        operator.put_region("zj", region(INTRUDER))
    assert taken.value.status == 409
    assert taken.value.code == "registration_taken"
    assert taken.value.fields == [
        {"field": "code", "message": "region zj is managed by another owner"}
    ]
    assert taken.value.message == (
        "the gateway refused region zj (409): code: region zj is managed by another owner"
    )
    with pytest.raises(GatewayForbiddenError) as hidden:
        operator.region("zj", INTRUDER)
    assert (hidden.value.status, hidden.value.code) == (403, "insufficient_scope")
    assert hidden.value.message == "the gateway refused region zj (403)"
    with pytest.raises(GatewayConflictError):
        operator.delete_region("zj", INTRUDER)
    assert operator.region("zj", OWNER) is not None  # the owner's registration is intact


def test_roles_bad_documents_and_tokens_each_have_their_error(adapter: WsgiAdapter) -> None:
    with pytest.raises(GatewayRejectedError) as bad:
        client_for(adapter, PLATFORM).put("regions", "zj", region(None, kind="planet"))
    assert bad.value.status == 400
    assert bad.value.code == "invalid_request"
    assert [f["field"] for f in bad.value.fields] == ["kind"]
    with pytest.raises(GatewayForbiddenError) as reader:
        client_for(adapter, READER).put("regions", "zj", region(None))
    assert reader.value.code == "insufficient_scope"
    with pytest.raises(GatewayUnauthorizedError) as refused:
        client_for(adapter, "not-a-token-of-this-gateway-at-all-0000").list_all("regions")
    assert refused.value.status == 401
    assert "not-a-token" not in refused.value.message


def test_the_platform_lists_and_a_put_answers_the_document_with_the_secret_once(
    adapter: WsgiAdapter,
) -> None:
    platform = client_for(adapter, PLATFORM, url=f"{GATEWAY}/admin/v1/")
    assert platform.api_url == f"{GATEWAY}/admin/v1"
    portal = {
        "client_id": "zj-services",
        "names": {"zh": "浙江政务服务网", "en": "Zhejiang services"},
        "owner": "zj",
        "redirect_uris": ["https://portal.zj.example.cn/callback"],
    }
    first = platform.put("portals", "zj-services", portal)
    assert first.created
    assert first.document is not None
    assert len(first.document["client_secret"]) >= 32
    again = platform.put("portals", "zj-services", portal)
    assert again.document is not None
    assert not again.created
    assert "client_secret" not in again.document
    assert [p["client_id"] for p in platform.list_all("portals")] == ["zj-services"]
    assert platform.get("portals", "zj-services") is not None


def test_a_key_that_is_not_one_url_segment_is_refused_before_anything_is_sent(
    adapter: WsgiAdapter,
) -> None:
    platform = client_for(adapter, PLATFORM)
    for key in ("", ".", "..", "zj/../portals"):
        with pytest.raises(InvalidKeyError, match="not a valid region key"):
            platform.get("regions", key)
    assert adapter.sent == []
    with pytest.raises(ValueError, match="must start with https://"):
        GatewayClient("gateway.example.cn", SecretStr(PLATFORM))
    assert PLATFORM not in repr(platform)


class Answering(requests.adapters.BaseAdapter):
    """Whatever answers at the gateway's URL: one fixed status and body."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__()
        self.status, self.body = status, body

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        response = requests.Response()
        response.status_code = self.status
        response._content = self.body.encode()
        response.reason = MARKER
        response.request = request
        return response

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (400, f'{{"error": "{MARKER}", "error_description": "{MARKER}"}}', GatewayRejectedError),
        (
            409,
            f'{{"error": "registration_taken", "error_description": "{MARKER}"}}',
            GatewayConflictError,
        ),
        (422, f"<html>{MARKER}</html>", GatewayRejectedError),
        (502, f'{{"error_description": "{MARKER}"}}', GatewayUnavailableError),
        (200, f"<html>{MARKER}</html>", GatewayUnavailableError),
    ],
)
def test_nothing_a_server_says_beyond_field_messages_and_known_codes_is_kept(
    status: int, body: str, kind: type[Exception]
) -> None:
    session = requests.Session()
    session.mount("https://", Answering(status, body))
    client = GatewayClient(GATEWAY, SecretStr(PLATFORM), session=session)
    with pytest.raises(kind) as caught:
        client.region("zj")
    error = caught.value
    assert MARKER not in str(error)
    assert MARKER not in repr(vars(error))
    assert getattr(error, "status", None) == status


def test_region_health_reads_the_gateway_s_status_and_never_raises(adapter: WsgiAdapter) -> None:
    """The operator's ``Reachable`` condition comes from here (issue 14): a registered region
    is reported with its circuit; an unknown code, or a gateway that cannot say, is None."""
    client = client_for(adapter, OPERATOR)
    client_for(adapter, PLATFORM).put_region("zj", region(owner=None))
    health = client.region_health("zj")
    assert health is not None
    assert (health["state"], health["failures"]) == ("closed", 0)
    assert client.region_health("nowhere") is None
