"""The second-factor pages' HTTP: a slowed address gets 429 with ``Retry-After`` on the form
(RFC 6585 §4, RFC 9110 §10.2.3), and pages that can show a secret are never cached."""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from gateway.app import create_app
from gateway.mfa import SlowDownError
from gateway.provider.stepup import form_page
from gateway.services import build_services
from gateway.settings import Settings

NOW = datetime.datetime(2026, 3, 1, 8, 0, tzinfo=datetime.UTC)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    settings = Settings.model_validate(
        {
            "issuer": "https://tongxing.example.cn",
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


def test_a_slowed_address_gets_429_with_retry_after_on_the_form(app: Flask) -> None:
    slowed = SlowDownError(NOW + datetime.timedelta(seconds=3.2), NOW)
    with app.test_request_context("/mfa/verify", method="POST"):
        response = form_page("mfa_verify.html", slowed.status, slowed, csrf="x")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "4"
    page = response.get_data(as_text=True)
    assert "4 秒后再试" in page
    assert "try again in 4 seconds" in page


@pytest.mark.parametrize("path", ["/mfa", "/consents", "/mfa/continue"])
def test_second_factor_and_account_pages_are_never_cached(app: Flask, path: str) -> None:
    # Even the refusal (no session here) must not be kept by a cache.
    response = app.test_client().get(path)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
