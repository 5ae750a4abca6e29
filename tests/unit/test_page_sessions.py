"""The forms' cookie session is a page's business only (:class:`gateway.app.PageSessionInterface`).

Machine endpoints (token, userinfo, introspection, revocation, discovery, JWKS, probes, the
admin API) neither open nor save Flask's session: a forms cookie sent to them is not even
verified, and they never answer with ``Set-Cookie`` or ``Vary: Cookie``. The pages that hold a
CSRF token keep theirs.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, session
from flask.sessions import SecureCookieSessionInterface

from gateway.app import PageSessionInterface, create_app
from gateway.provider import csrf
from gateway.services import build_services
from gateway.settings import Settings

API_CALLS = [
    ("POST", "/token"),
    ("GET", "/userinfo"),
    ("POST", "/userinfo"),
    ("POST", "/introspect"),
    ("POST", "/revoke"),
    ("GET", "/jwks"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/admin/v1/regions"),
]
PAGES = ["/consents", "/mfa", "/authorize", "/logout", "/account/mandates"]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    settings = Settings.model_validate(
        {
            "issuer": "http://127.0.0.1:9",
            "insecure_allow_http": True,  # a plain cookie name, no __Host- (test client)
            "data_dir": tmp_path,
            "create_keys": True,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": secrets.token_urlsafe(32),
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    services = build_services(settings)
    yield create_app(services=services)
    services.close()


def _forms_cookie(app: Flask, **values: str) -> str:
    """A forms cookie the gateway itself signed (``name=value``)."""
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return f"{app.config['SESSION_COOKIE_NAME']}={serializer.dumps(values)}"


def test_the_gateway_uses_the_page_session_interface(app: Flask) -> None:
    assert isinstance(app.session_interface, PageSessionInterface)
    assert isinstance(app.session_interface, SecureCookieSessionInterface)


@pytest.mark.parametrize(("method", "path"), API_CALLS)
def test_api_endpoints_neither_open_nor_save_the_forms_session(
    app: Flask, method: str, path: str
) -> None:
    cookie = _forms_cookie(app, consent_csrf="kept")
    with app.test_request_context(path, method=method, headers={"Cookie": cookie}):
        assert app.session_interface.is_null_session(session)
        assert session.get("consent_csrf") is None  # the cookie was not even read
        with pytest.raises(RuntimeError):  # and nothing can be written to it
            session["x"] = "y"
    response = app.test_client().open(path, method=method, headers={"Cookie": cookie})
    assert response.status_code < 500
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")


@pytest.mark.parametrize("path", PAGES)
def test_pages_keep_their_session(app: Flask, path: str) -> None:
    cookie = _forms_cookie(app, consent_csrf="kept")
    with app.test_request_context(path, headers={"Cookie": cookie}):
        assert not app.session_interface.is_null_session(session)
        assert session.get("consent_csrf") == "kept"


def test_a_pages_csrf_token_round_trips_through_the_cookie(app: Flask) -> None:
    with app.test_request_context("/consents"):
        token = csrf.token("consent")
        response = app.make_response("page")
        app.session_interface.save_session(app, session, response)
    cookie = response.headers["Set-Cookie"].split(";", 1)[0]
    form = {csrf.FIELD: token}
    with app.test_request_context("/consent", method="POST", data=form, headers={"Cookie": cookie}):
        assert csrf.matches("consent")
    with app.test_request_context("/token", method="POST", data=form, headers={"Cookie": cookie}):
        assert not csrf.matches("consent")  # no session on an API endpoint: never a match
