"""Under https every cookie of the gateway carries the ``__Host-`` prefix (RFC 6265bis
§4.1.3.2; issue 13, "Bad input costs no more than a refusal"): a browser then accepts it only
``Secure``, with ``Path=/`` and no ``Domain``, so a sibling host or a plain-HTTP page cannot
plant one (session fixation, login CSRF). On plain HTTP (tests, the demo) the names are bare."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.signin import form_handle

TOKEN = secrets.token_urlsafe(32)
REDIRECT_URI = "https://portal.example.cn/callback"
AUTHORIZE = {
    "response_type": "code",
    "client_id": "conf",
    "redirect_uri": REDIRECT_URI,
    "scope": "openid",
    "state": "s-1",
    "nonce": "n-1",
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    "code_challenge_method": "S256",
}


def _services(tmp_path: Path, issuer: str, insecure: bool) -> Services:
    settings = Settings.model_validate(
        {
            "issuer": issuer,
            "insecure_allow_http": insecure,
            "data_dir": tmp_path,
            "create_keys": True,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": TOKEN,
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    return build_services(settings)


def _client(services: Services, base_url: str) -> FlaskClient:
    client = create_app(services=services).test_client()
    portal: dict[str, Any] = {
        "names": {"zh": "门户", "en": "Portal"},
        "owner": "zj",
        "redirect_uris": [REDIRECT_URI],
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answer = client.put("/admin/v1/portals/conf", json=portal, headers=headers, base_url=base_url)
    assert answer.status_code == 201
    return client


@pytest.fixture
def https(tmp_path: Path) -> Iterator[FlaskClient]:
    services = _services(tmp_path, "https://tongxing.example.cn", insecure=False)
    yield _client(services, "https://tongxing.example.cn")
    services.close()


def _set_cookies(response: Any) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.getlist("Set-Cookie")}


def test_under_https_the_sign_in_cookies_are_host_prefixed_secure_and_host_only(
    https: FlaskClient,
) -> None:
    response = https.get(
        "/authorize", query_string=AUTHORIZE, base_url="https://tongxing.example.cn"
    )
    assert response.status_code == 200, response.text  # the region chooser
    cookies = _set_cookies(response)
    assert "__Host-tongxing_login" in cookies
    assert not [name for name in cookies if not name.startswith("__Host-")]
    for header in cookies.values():
        attributes = [part.strip().lower() for part in header.split(";")[1:]]
        assert "secure" in attributes
        assert "path=/" in attributes
        assert "httponly" in attributes
        assert not [a for a in attributes if a.startswith("domain")]


def test_a_bare_named_cookie_planted_over_http_is_not_read(https: FlaskClient) -> None:
    """A cookie a plain-HTTP page or a sibling host set without the prefix names no pending
    sign-in: the chooser's answer with it is refused; with the prefixed one it is taken."""
    base = "https://tongxing.example.cn"
    started = https.get("/authorize", query_string=AUTHORIZE, base_url=base)
    pending = _set_cookies(started)["__Host-tongxing_login"].split(";")[0].split("=", 1)[1]
    form = form_handle(pending)
    answer = {"pending": form, "region": "nowhere"}
    https.delete_cookie("__Host-tongxing_login", domain="tongxing.example.cn")
    https.set_cookie("tongxing_login", pending, domain="tongxing.example.cn")
    refused = https.get("/authorize", query_string=answer, base_url=base)
    assert refused.status_code == 400
    assert "login_expired" in refused.text or "expired" in refused.text.lower()
    https.set_cookie("__Host-tongxing_login", pending, domain="tongxing.example.cn")
    taken = https.get("/authorize", query_string=answer, base_url=base)
    assert taken.status_code == 200  # the chooser again: no region "nowhere"


def test_on_plain_http_the_names_are_bare(tmp_path: Path) -> None:
    services = _services(tmp_path, "http://127.0.0.1:8080", insecure=True)
    try:
        client = _client(services, "http://127.0.0.1:8080")
        response = client.get(
            "/authorize", query_string=AUTHORIZE, base_url="http://127.0.0.1:8080"
        )
        assert response.status_code == 200
        assert "tongxing_login" in _set_cookies(response)
    finally:
        services.close()
