"""The help desk's reset of a person's second factor, through the admin API (no sockets).

NIST SP 800-63B §6.1.2.3 (replacement of a lost authenticator); the reset is logged with the
principal, the subject, the reason and the outcome for the audit trail (issue 13, THREAT_MODEL
rows 4 and 9). Over a real SQLite store, through Flask's test client.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyotp
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from gateway.app import create_app
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.store.contract import token_hash

TOKEN = secrets.token_urlsafe(32)
OPERATOR = secrets.token_urlsafe(32)
READER = secrets.token_urlsafe(32)
NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


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
            "admin_clients": [
                {
                    "name": "audit",
                    "role": "reader",
                    "token_sha256": hashlib.sha256(READER.encode()).hexdigest(),
                }
            ],
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    built = build_services(settings)
    yield built
    built.close()


@pytest.fixture
def client(services: Services) -> FlaskClient:
    return create_app(services=services).test_client()


@pytest.fixture
def enrolled(services: Services) -> str:
    """A subject with a confirmed factor."""
    subject = services.store.link_subject(token_hash("identity:wang"), "zj", "zj-1", NOW).id
    enrolment = services.totp.begin_enrolment(subject, "wang")
    services.totp.confirm_enrolment(subject, pyotp.TOTP(enrolment.secret).now(), "192.0.2.1")
    return subject


def reset(client: FlaskClient, subject: str, body: object, token: str = TOKEN) -> TestResponse:
    return client.delete(
        f"/admin/v1/subjects/{subject}/second-factor",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


def test_the_platform_resets_a_factor_with_a_reason_and_it_is_logged(
    client: FlaskClient, services: Services, enrolled: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.admin.api")
    answer = reset(client, enrolled, {"reason": "ticket HD-4711: phone lost, ID checked"})
    assert answer.status_code == 204
    assert services.totp.status(enrolled).enrolled is False
    assert services.store.list_recovery_codes(enrolled) == []
    [record] = [r for r in caplog.records if getattr(r, "event", "") == "admin.second_factor_reset"]
    assert record.principal == "platform"  # type: ignore[attr-defined]
    assert record.subject == enrolled  # type: ignore[attr-defined]
    assert record.reason == "ticket HD-4711: phone lost, ID checked"  # type: ignore[attr-defined]
    assert record.outcome == "removed"  # type: ignore[attr-defined]
    assert TOKEN not in caplog.text
    # Again: nothing left to reset, said so, and logged as such.
    again = reset(client, enrolled, {"reason": "twice"})
    assert again.status_code == 404
    assert again.get_json()["error"] == "no_second_factor"


def test_an_unknown_subject_is_404(client: FlaskClient) -> None:
    answer = reset(client, "no-such-subject", {"reason": "ticket HD-1"})
    assert answer.status_code == 404
    assert answer.get_json()["error"] == "unknown_subject"


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"reason": ""},
        {"reason": "   "},
        {"reason": 7},
        {"reason": "x" * 501},
        {"reason": "line\nbreak"},
    ],
)
def test_a_missing_or_bad_reason_is_400_and_changes_nothing(
    client: FlaskClient, services: Services, enrolled: str, body: object
) -> None:
    answer = reset(client, enrolled, body)
    assert answer.status_code == 400
    fields = answer.get_json()["fields"]
    assert [field["field"] for field in fields] == ["reason"] or body is None
    assert services.totp.status(enrolled).enrolled is True


@pytest.mark.parametrize("token", [OPERATOR, READER])
def test_only_the_platform_may_reset(
    client: FlaskClient, services: Services, enrolled: str, token: str
) -> None:
    answer = reset(client, enrolled, {"reason": "ticket HD-2"}, token)
    assert answer.status_code == 403
    assert services.totp.status(enrolled).enrolled is True


def test_the_openapi_document_lists_the_reset(client: FlaskClient) -> None:
    document = client.get("/admin/v1/openapi.json").get_json()
    item = document["paths"]["/subjects/{subject_id}/second-factor"]["delete"]
    assert item["x-roles"] == ["platform"]
    assert {"204", "400", "401", "403", "404"} <= set(item["responses"])
    schema = item["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["reason"]
    assert schema["properties"]["reason"]["maxLength"] == 500
