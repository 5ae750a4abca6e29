"""The authorization request, validated once by the oauth package: what it refuses with a page
(an unverified client or redirect URI), what it refuses for the portal, and the typed request
the sign-in keeps. No sockets."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask

from gateway.app import create_app
from gateway.errors import UnknownClient, UnregisteredRedirectUri, UnsupportedResponseType
from gateway.keys import KeyRing
from gateway.policy import default_policy_dir
from gateway.provider.oauth import current_oauth
from gateway.provider.oauth.authorization import MAX_PARAMETER_LENGTH
from gateway.registry import AuthMethod, Names, Portal, hash_secret
from gateway.services import Services, wire
from gateway.settings import Settings
from gateway.signin import RefusedRequest
from gateway.store import AuthorizationRequest, SqlStore

REDIRECT = "https://portal.zj.gov.cn/callback"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    folder: Path = tmp_path_factory.mktemp("authorization")
    settings = Settings.model_validate(
        {
            "issuer": "https://tongxing.example.cn",
            "data_dir": folder,
            "policy_dir": default_policy_dir(),
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": secrets.token_urlsafe(32),
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    store = SqlStore.from_url(settings.sqlalchemy_url)
    store.migrate()
    built = wire(settings, store, KeyRing.generate(now=datetime.now(UTC)))
    for client_id, method in (
        ("portal-a", AuthMethod.CLIENT_SECRET_BASIC),
        ("app", AuthMethod.NONE),
    ):
        built.registry.put_portal(
            Portal(
                client_id=client_id,
                names=Names(zh="门户", en="Portal"),
                owner="zj",
                redirect_uris=[REDIRECT],
                token_endpoint_auth_method=method,
                client_secret_hash=hash_secret("s" * 32) if method is not AuthMethod.NONE else None,
            ),
            datetime.now(UTC),
        )
    yield built
    built.close()


@pytest.fixture(scope="module")
def app(services: Services) -> Flask:
    return create_app(services=services)


def params(**changes: str | None) -> dict[str, str]:
    values: dict[str, str | None] = {
        "response_type": "code",
        "client_id": "portal-a",
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": "portal-state",
        "nonce": "portal-nonce",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def parse(app: Flask, query: Any, method: str = "GET") -> AuthorizationRequest:
    encoded = urlencode(query)
    if method == "POST":
        with app.test_request_context(
            "/authorize",
            method="POST",
            data=encoded,
            content_type="application/x-www-form-urlencoded",
        ):
            return current_oauth().parse_authorization_request()
    with app.test_request_context(f"/authorize?{encoded}"):
        return current_oauth().parse_authorization_request()


def refused(app: Flask, query: Any) -> RefusedRequest:
    with pytest.raises(RefusedRequest) as caught:
        parse(app, query)
    return caught.value


def test_a_valid_request_becomes_the_typed_request_the_sign_in_keeps(
    app: Flask, services: Services
) -> None:
    hint = services.keys.sign({"iss": "https://tongxing.example.cn", "sub": "portal-sub-1"})
    parsed = parse(
        app,
        params(
            prompt="login consent",
            max_age="300",
            login_hint="zhangsan",
            acr_values="loa2",
            ui_locales="zh-CN",
            id_token_hint=hint,
            region="zj",
        ),
    )
    assert parsed == AuthorizationRequest(
        client_id="portal-a",
        redirect_uri=REDIRECT,
        scope="openid profile",
        state="portal-state",
        nonce="portal-nonce",
        code_challenge=CHALLENGE,
        code_challenge_method="S256",
        prompt=("login", "consent"),
        max_age=300,
        login_hint="zhangsan",
        acr_values="loa2",
        ui_locales="zh-CN",
        hinted_subject="portal-sub-1",
        region="zj",
    )
    assert parse(app, params(), method="POST") == parse(app, params())


def test_a_hint_that_is_not_ours_names_nobody(app: Flask) -> None:
    assert parse(app, params(id_token_hint="not.a.token")).hinted_subject == ""
    assert parse(app, params()).hinted_subject is None


@pytest.mark.parametrize(
    ("changes", "page"),
    [
        ({"client_id": "nobody"}, UnknownClient),
        ({"client_id": None}, UnknownClient),
        ({"redirect_uri": f"{REDIRECT}/"}, UnregisteredRedirectUri),
        ({"redirect_uri": None}, UnregisteredRedirectUri),
        ({"response_type": None, "client_id": "nobody"}, UnsupportedResponseType),
    ],
)
def test_an_unverified_client_or_redirect_uri_gets_a_page(
    app: Flask, changes: dict[str, str | None], page: type[Exception]
) -> None:
    with pytest.raises(page):
        parse(app, params(**changes))


def test_a_repeated_redirect_uri_gets_a_page(app: Flask) -> None:
    with pytest.raises(UnregisteredRedirectUri):
        parse(app, [*params().items(), ("redirect_uri", "https://evil.example/cb")])


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (
            {"client_id": "app", "code_challenge": None, "code_challenge_method": None},
            "invalid_request",
        ),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"max_age": "soon"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"state": "s" * (MAX_PARAMETER_LENGTH + 1)}, "invalid_request"),
        ({"login_hint": "h" * (MAX_PARAMETER_LENGTH + 1)}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
def test_a_bad_request_of_a_verified_client_is_refused_for_the_portal(
    app: Flask, changes: dict[str, str | None], error: str
) -> None:
    refusal = refused(app, params(**changes))
    assert refusal.error == error
    assert refusal.redirect_uri == REDIRECT
    expected_state = changes.get("state", "portal-state")
    assert refusal.state == expected_state


# --- the scope is what the portal is registered for (THREAT_MODEL row 6) ---------------------


def test_the_request_keeps_only_the_scopes_the_portal_is_registered_for(app: Flask) -> None:
    """portal-a is registered for ``openid profile`` (the default) and the refresh grant."""
    asked = params(scope="openid profile phone payments:write profile offline_access")
    assert parse(app, asked).scope == "openid profile offline_access"


@pytest.mark.parametrize("scope", ["profile phone", "payments:write", "", "OPENID profile"])
def test_a_request_left_without_openid_is_invalid_scope_at_the_redirect_uri(
    app: Flask, scope: str
) -> None:
    refusal = refused(app, params(scope=scope or None))
    assert refusal.error == "invalid_scope"
    assert refusal.redirect_uri == REDIRECT
    assert refusal.state == "portal-state"


def test_a_portal_not_registered_for_openid_cannot_ask_for_it(
    app: Flask, services: Services
) -> None:
    services.registry.put_portal(
        Portal(
            client_id="no-openid",
            names=Names(zh="门户", en="Portal"),
            owner="zj",
            redirect_uris=[REDIRECT],
            client_secret_hash=hash_secret("s" * 32),
            scopes=["profile"],
        ),
        datetime.now(UTC),
    )
    refusal = refused(app, params(client_id="no-openid"))
    assert refusal.error == "invalid_scope"
