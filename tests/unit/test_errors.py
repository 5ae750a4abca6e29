"""The one error model (gateway.errors): every named error has a code, a status and both
languages, and the one handler answers people with a page and API callers with JSON.

Also the single CSRF helper (gateway.provider.csrf), whose refusal is one of these errors.
"""

from __future__ import annotations

import datetime
import logging
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from flask import Flask, session
from flask.testing import FlaskClient
from werkzeug.exceptions import RequestEntityTooLarge

import gateway.broker.errors as broker_errors
import gateway.errors as errors
import gateway.mfa as mfa
from gateway.app import create_app
from gateway.errors import TongxingError
from gateway.policy import default_policy_dir
from gateway.provider import csrf
from gateway.services import Services, build_services
from gateway.settings import Settings

CJK = re.compile(r"[\u4e00-\u9fff]")
CODE = re.compile(r"^[a-z][a-z0-9_]*$")
SECRET_DETAIL = "operators-only-4f1c9e"


def every_error_class() -> list[type[TongxingError]]:
    """Every subclass of the base, however deep, in the modules that define them."""
    found: list[type[TongxingError]] = []
    pending = list(TongxingError.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


CLASSES = every_error_class()


def test_the_model_covers_the_gateway_broker_mfa_and_admin_errors() -> None:
    modules = {cls.__module__ for cls in CLASSES}
    assert {"gateway.errors", "gateway.broker.errors", "gateway.mfa"} <= modules
    for cls in (
        broker_errors.BrokerError,
        mfa.MfaError,
        errors.InvalidToken,
        errors.InsufficientScope,
        errors.RegistrationTaken,
        errors.IdentityConflict,
        errors.LoginExpired,
    ):
        assert cls in CLASSES


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__qualname__)
def test_every_error_has_a_code_a_status_and_both_languages(cls: type[TongxingError]) -> None:
    assert CODE.match(cls.code), cls.code
    assert 400 <= cls.status <= 599
    for text in (cls.title_zh, cls.message_zh):
        assert CJK.search(text), f"{cls.__qualname__}: {text!r} is not zh-CN"
    for text in (cls.title_en, cls.message_en):
        assert text.strip()
        assert not CJK.search(text), f"{cls.__qualname__}: {text!r} is not English"


def test_a_class_without_its_texts_is_refused_when_it_is_defined() -> None:
    with pytest.raises(TypeError, match="lacks title_zh, title_en, message_zh, message_en"):

        class HalfNamed(TongxingError):  # noqa: N818 - a test fixture
            code = "half_named"
            status = 400


def test_the_base_is_never_raised_itself() -> None:
    with pytest.raises(TypeError, match="subclass"):
        TongxingError()


def test_there_is_one_login_expired() -> None:
    """The region's transaction timeout is the same named error as the pages' expiries."""
    for cls in (errors.SignInLinkExpired, errors.ConsentRequestExpired, broker_errors.LoginExpired):
        assert issubclass(cls, errors.LoginExpired)
        assert cls.code == "login_expired"
    timed_out = broker_errors.LoginExpired("zj", "older than its time to live")
    assert timed_out.title_en == broker_errors.BrokerError.title_en
    assert timed_out.region == "zj"


def test_an_instance_names_what_it_is_about_and_keeps_the_class_texts_otherwise() -> None:
    taken = errors.RegistrationTaken("portal", "client_id", "p1")
    assert taken.message_en == "portal p1 is managed by another owner; nothing was changed."
    assert taken.message_zh == "portal p1 由其他所有者管理，未作任何更改。"
    assert taken.details == {
        "fields": [{"field": "client_id", "message": "portal p1 is managed by another owner"}]
    }
    assert errors.RegistrationTaken.message_en != taken.message_en  # the class is untouched
    changed = errors.RegistrationChanged("region", "code", "zj")
    assert (changed.code, changed.status, changed.title_en) == (
        "registration_taken",
        409,
        "Registration changed",
    )
    assert changed.message_en == "region zj changed while this request was decided; try again."
    refused = errors.RoleRefused("reader", "write registrations")
    assert refused.message("en") == "The role reader may not write registrations."
    assert refused.title() == "权限不足"


def test_the_detail_is_for_operators_and_the_message_for_people() -> None:
    error = errors.SignInFromAnotherBrowser(SECRET_DETAIL)
    assert error.detail == SECRET_DETAIL
    assert str(error) == f"[login_csrf] {SECRET_DETAIL}"
    assert SECRET_DETAIL not in error.message_en + error.message_zh
    assert str(errors.NotFound()) == "[not_found] The address you opened does not exist."


# --- the handler ----------------------------------------------------------------------------


def _raise(error: Exception) -> NoReturn:
    raise error


RAISED: dict[str, Any] = {
    "taken": lambda: errors.RegistrationTaken("portal", "client_id", "p1"),
    "region": lambda: broker_errors.RegionUnavailable("zj", SECRET_DETAIL),
    "locked": lambda: mfa.LockedOutError(datetime.datetime(2025, 3, 1, tzinfo=datetime.UTC)),
    "conflict": lambda: errors.IdentityConflict(SECRET_DETAIL),
    "too-large": RequestEntityTooLarge,
    "bug": lambda: RuntimeError(SECRET_DETAIL),
}


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    folder: Path = tmp_path_factory.mktemp("errors")
    built = build_services(
        Settings.model_validate(
            {
                "policy_dir": default_policy_dir(),
                "issuer": "https://tongxing.example.cn",
                "data_dir": folder,
                "create_keys": True,
                "national_secret": secrets.token_urlsafe(32),
                "pairwise_secret": secrets.token_urlsafe(32),
                "admin_token": secrets.token_urlsafe(32),
                "session_secret": secrets.token_urlsafe(32),
                "mfa_secret": secrets.token_urlsafe(32),
            }
        )
    )
    yield built
    built.close()


@pytest.fixture(scope="module")
def app(services: Services) -> Flask:
    app = create_app(services=services)
    app.add_url_rule(
        "/test-raise/<name>",
        "test_raise",
        lambda name: _raise(RAISED[name]()),
        methods=["GET", "POST"],
    )
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


PAGE = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}


def test_people_get_a_page_with_both_languages_and_the_code(client: FlaskClient) -> None:
    response = client.get("/test-raise/taken", headers=PAGE)
    assert response.status_code == 409
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for text in (
        "登记已被占用",
        "Registration taken",
        "portal p1 由其他所有者管理，未作任何更改。",
        "portal p1 is managed by another owner; nothing was changed.",
        "<code>registration_taken</code>",
    ):
        assert text in page


def test_api_callers_get_json_with_the_code_the_english_text_and_the_details(
    client: FlaskClient,
) -> None:
    response = client.get("/test-raise/taken", headers=JSON)
    assert response.status_code == 409
    assert response.get_json() == {
        "error": "registration_taken",
        "error_description": "portal p1 is managed by another owner; nothing was changed.",
        "fields": [{"field": "client_id", "message": "portal p1 is managed by another owner"}],
    }
    locked = client.get("/test-raise/locked", headers=JSON)
    assert locked.status_code == 429
    assert locked.get_json()["locked_until"] == "2025-03-01T00:00:00+00:00"


def test_a_region_failure_gets_the_region_page_without_a_converter(client: FlaskClient) -> None:
    response = client.get("/test-raise/region", headers=PAGE)
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "地区登录失败" in page
    assert "Sign-in at your region failed" in page
    assert "<code>region_unavailable</code>" in page


@pytest.mark.parametrize("name", ["region", "conflict", "bug"])
def test_the_detail_reaches_the_log_and_never_the_person(
    client: FlaskClient, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.app"):
        page = client.get(f"/test-raise/{name}", headers=PAGE)
        body = client.get(f"/test-raise/{name}", headers=JSON)
    assert SECRET_DETAIL not in page.get_data(as_text=True)
    assert SECRET_DETAIL not in body.get_data(as_text=True)
    assert SECRET_DETAIL in caplog.text


def test_an_unexpected_exception_is_a_server_error_page_or_json(client: FlaskClient) -> None:
    page = client.get("/test-raise/bug", headers=PAGE)
    assert page.status_code == 500
    assert "<code>server_error</code>" in page.get_data(as_text=True)
    body = client.get("/test-raise/bug", headers=JSON)
    assert body.status_code == 500
    assert body.get_json()["error"] == "server_error"


def test_werkzeug_refusals_keep_their_status_in_the_gateway_s_words(client: FlaskClient) -> None:
    missing = client.get("/no-such-page", headers=PAGE)
    assert missing.status_code == 404
    assert "<code>not_found</code>" in missing.get_data(as_text=True)
    wrong_method = client.post("/jwks", headers=JSON)
    assert wrong_method.status_code == 405
    assert wrong_method.get_json()["error"] == "invalid_request"
    too_large = client.get("/test-raise/too-large", headers=JSON)
    assert too_large.status_code == 413
    assert too_large.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "title"),
    [
        ("GET", "/callback/nowhere", 400, "invalid_request", "请求无效"),
        ("POST", "/consent", 400, "login_expired", "请求已失效"),
        ("GET", "/mfa", 400, "login_expired", "登录已过期"),
        ("GET", "/mfa/continue", 400, "login_expired", "登录已过期"),
        ("GET", "/consents", 401, "login_required", "请先登录"),
        ("GET", "/logout?id_token_hint=junk", 400, "invalid_request", "无法退出登录"),
        (
            "GET",
            "/authorize?client_id=nobody&response_type=code",
            400,
            "invalid_client",
            "无法完成登录",
        ),
        ("GET", "/authorize?client_id=nobody", 400, "unsupported_response_type", "无法完成登录"),
    ],
)
def test_the_views_raise_named_errors(
    client: FlaskClient, method: str, path: str, status: int, code: str, title: str
) -> None:
    response = client.open(path, method=method, headers=PAGE)
    assert response.status_code == status
    page = response.get_data(as_text=True)
    assert f"<code>{code}</code>" in page
    assert f"<h1>{title}</h1>" in page


# --- the CSRF helper --------------------------------------------------------------------------


def test_a_form_token_matches_only_the_session_that_issued_it(app: Flask) -> None:
    with app.test_request_context("/"):
        issued = csrf.token("consent")
        assert csrf.token("consent") == issued  # reused until the session ends
        assert session["consent_csrf"] == issued  # the key forms rendered before used
    with app.test_request_context("/", method="POST", data={"csrf": issued}):
        assert not csrf.matches("consent")  # another session: it holds no token
        session["consent_csrf"] = issued
        assert csrf.matches("consent")
        assert not csrf.matches("stepup")
        csrf.require("consent")


@pytest.mark.parametrize("sent", ["", "-", "wrong", "é令牌", "\x00"])
def test_a_missing_or_odd_token_is_refused_never_an_error(app: Flask, sent: str) -> None:
    with app.test_request_context("/", method="POST", data={"csrf": sent}):
        assert not csrf.matches("stepup")  # no token in the session: nothing matches, not "-"
        session["stepup_csrf"] = "the-real-token"
        assert not csrf.matches("stepup")
        with pytest.raises(errors.FormExpired) as refused:
            csrf.require("stepup")
    assert (refused.value.code, refused.value.status) == ("invalid_request", 400)


def test_a_one_shot_token_is_spent_by_its_check(app: Flask) -> None:
    with app.test_request_context("/"):
        first = csrf.token("logout", fresh=True)
        assert csrf.token("logout", fresh=True) != first
        token = session["logout_csrf"]
    with app.test_request_context("/", method="POST", data={"csrf": token}):
        session["logout_csrf"] = token
        assert csrf.matches("logout", spend=True)
        assert "logout_csrf" not in session
        assert not csrf.matches("logout", spend=True)
