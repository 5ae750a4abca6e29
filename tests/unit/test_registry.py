"""Region and portal models refuse what the admin API must answer with a 400."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.registry import Portal, Region, hash_secret

NAMES = {"zh": "浙江政务服务网", "en": "Zhejiang Government Services"}


def portal(**overrides: Any) -> Portal:
    data: dict[str, Any] = {
        "client_id": "zj-portal",
        "names": NAMES,
        "owner": "zj",
        "redirect_uris": ["https://portal.zj.example.cn/callback"],
        "client_secret_hash": hash_secret("s" * 43),
    }
    data.update(overrides)
    return Portal.model_validate(data)


def region(**overrides: Any) -> Region:
    data: dict[str, Any] = {
        "code": "zj",
        "names": {"zh": "浙江", "en": "Zhejiang"},
        "kind": "province",
        "issuer": "https://idp.zj.example.cn/realms/zj/",
        "client_id": "tongxing",
        "client_secret": "upstream-secret",
    }
    data.update(overrides)
    return Region.model_validate(data)


@pytest.mark.parametrize(
    "uri",
    [
        "https://*.zj.example.cn/callback",
        "https://portal.zj.example.cn/callback#frag",
        "https://user@portal.zj.example.cn/callback",
        "https://a@b@portal.zj.example.cn/callback",
        "http://portal.zj.example.cn/callback",
        "javascript:alert(1)",
        "/relative/callback",
        "https://portal.zj.example.cn/a/../callback",
        "https://portal.zj.example.cn/a/..;/callback",
        "https://portal.zj.example.cn/call back",
    ],
)
def test_a_redirect_uri_that_is_not_exact_and_safe_is_refused(uri: str) -> None:
    with pytest.raises(ValidationError, match="redirect URI"):
        portal(redirect_uris=[uri])


def test_loopback_http_redirect_uris_are_allowed() -> None:
    assert portal(redirect_uris=["http://127.0.0.1:8080/cb"]).redirect_uris == [
        "http://127.0.0.1:8080/cb"
    ]


def test_field_errors_name_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        portal(client_id="x", owner="Not A Code")
    fields = {error["loc"][0] for error in info.value.errors()}
    assert fields == {"client_id", "owner"}


def test_secret_methods_need_a_secret_and_private_key_jwt_needs_keys() -> None:
    with pytest.raises(ValidationError, match="needs a client secret"):
        portal(client_secret_hash=None)
    with pytest.raises(ValidationError, match="needs jwks"):
        portal(token_endpoint_auth_method="private_key_jwt", jwks={"keys": []})


def test_public_clients_cannot_use_client_credentials() -> None:
    with pytest.raises(ValidationError, match="public client"):
        portal(token_endpoint_auth_method="none", grant_types=["client_credentials"])


def test_secret_check_is_against_the_hash() -> None:
    registered = portal()
    assert registered.check_secret("s" * 43)
    assert not registered.check_secret("s" * 42)


def test_region_issuer_is_normalised_and_needs_openid() -> None:
    assert region().issuer == "https://idp.zj.example.cn/realms/zj"
    with pytest.raises(ValidationError, match="openid"):
        region(scopes=["profile"])
    with pytest.raises(ValidationError, match="code"):
        region(code="ZJ!")


def test_region_secret_is_hidden_in_repr_but_kept_in_the_document() -> None:
    upstream = region()
    assert "upstream-secret" not in repr(upstream)
    assert upstream.document()["client_secret"] == "upstream-secret"
