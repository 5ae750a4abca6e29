"""``/verification``'s limits are :mod:`gateway.limits`' rules, and its budget is a setting.

* Per address (``rate_limits.token_address``, a bucket of its own) before the view runs, so a
  request with no token, or a forged one, costs a refusal and nothing else (THREAT_MODEL row 7);
  per portal (``rate_limits.verification``) once the access token has named the portal, so a
  token that is no live token spends no portal's budget. Over a limit: 429 with
  ``Retry-After`` (RFC 6585 §4, RFC 9110 §10.2.3).
* The "no" answers one portal may get about one person (``verification_misses`` within
  ``verification_hold``, issue 16) come from the settings.

The gateway's Flask app on a real SQLite store (the limits are per process, the budget the
store's).
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from test_verification_oracle import (  # type: ignore[import-not-found]
    NAME,  # the same person and name
    PERSON,
)
from test_verification_oracle import _token_for as live_token

from gateway.app import create_app
from gateway.identity import check_character
from gateway.services import Services, build_services
from gateway.settings import Settings

OTHER = "11010519491231001" + check_character("11010519491231001")

Make = Callable[..., Services]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    made: list[Services] = []

    def build(**settings: Any) -> Services:
        services = build_services(
            Settings.model_validate(
                {
                    "issuer": "http://127.0.0.1:9",
                    "insecure_allow_http": True,
                    "data_dir": tmp_path / str(len(made)),
                    "create_keys": True,
                    "national_secret": secrets.token_urlsafe(32),
                    "pairwise_secret": secrets.token_urlsafe(32),
                    "admin_token": secrets.token_urlsafe(32),
                    "session_secret": secrets.token_urlsafe(32),
                    "mfa_secret": secrets.token_urlsafe(32),
                    **settings,
                }
            )
        )
        made.append(services)
        return services

    yield build
    for services in made:
        services.close()


def _token_for(services: Services, client_id: str) -> str:
    """A live access token of ``client_id`` for the person, in a live SSO session, now."""
    return str(live_token(services, client_id, datetime.datetime.now(datetime.UTC)))


def _ask(
    client: FlaskClient, token: str | None, number: str = PERSON, address: str = "192.0.2.1"
) -> tuple[int, str]:
    answer = client.post(
        "/verification",
        data={"name": NAME, "id_number": number},
        headers={"Authorization": f"Bearer {token}"} if token else {},
        environ_base={"REMOTE_ADDR": address},
    )
    return answer.status_code, answer.headers.get("Retry-After", "")


def test_the_portal_limit_counts_live_tokens_only_and_answers_429(make: Make) -> None:
    services = make(rate_limits={"verification": "3/minute", "token_address": "1000/minute"})
    client = create_app(services=services).test_client()
    token, other_portal = _token_for(services, "tax-portal"), _token_for(services, "culture")

    # Forged tokens from anywhere never spend the portal's budget.
    for _ in range(5):
        assert _ask(client, "forged-" + secrets.token_urlsafe(8))[0] == 401
    assert [_ask(client, token, address=f"192.0.2.{n}")[0] for n in range(3)] == [200] * 3
    status, retry_after = _ask(client, token, address="198.51.100.7")  # per portal, any address
    assert status == 429
    assert 0 < int(retry_after) <= 60
    assert _ask(client, other_portal)[0] == 200  # another portal's budget is its own


def test_the_address_limit_runs_before_the_token_is_looked_up(make: Make) -> None:
    services = make(rate_limits={"verification": "1000/minute", "token_address": "4/minute"})
    client = create_app(services=services).test_client()
    token = _token_for(services, "tax-portal")

    assert [_ask(client, None)[0] for _ in range(4)] == [401] * 4  # no token: counted, refused
    status, retry_after = _ask(client, token)  # even a right question from that address
    assert status == 429
    assert 0 < int(retry_after) <= 60
    assert _ask(client, token, address="192.0.2.2")[0] == 200  # another address is not
    # Its own bucket: the token endpoints' address limit is not spent by /verification.
    assert client.post("/token", environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code != 429


def test_without_limits_nothing_is_counted(make: Make) -> None:
    services = make(rate_limits={"enabled": False, "verification": "1/minute"})
    client = create_app(services=services).test_client()
    token = _token_for(services, "tax-portal")
    assert [_ask(client, token)[0] for _ in range(4)] == [200] * 4


def test_the_budget_of_no_answers_is_the_settings(make: Make) -> None:
    services = make(
        rate_limits={"enabled": False},
        verification_misses=2,
        verification_hold=datetime.timedelta(minutes=10),
    )
    client = create_app(services=services).test_client()
    token = _token_for(services, "tax-portal")
    assert [_ask(client, token, OTHER)[0] for _ in range(2)] == [200, 200]  # two "no" answers
    status, retry_after = _ask(client, token)  # then held, even the right number
    assert status == 429
    assert 540 < int(retry_after) <= 600
