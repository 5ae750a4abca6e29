"""The verification result only is no oracle for the number it withholds (issue 16).

A portal holding a person's access token may ask ``/verification`` whether a name and identity
number are that person's. Asked again and again with numbers that differ in the sequence digits
only (a portal may know the birth date and home county), plain yes/no answers would give the
number away in about a thousand questions. The gateway counts the "no" answers per portal and
person in the store and, after :data:`~gateway.proofing.VERIFICATION_MISSES` of them, holds that
portal's questions about that person (429 with ``Retry-After``), even a right one, on every
replica. Runs the gateway's Flask app on a real SQLite store (no server needed: the budget is
the store's).
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.identity import check_character, identity_key, parse_identity_number
from gateway.proofing import VERIFICATION_HOLD, VERIFICATION_MISSES
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.store import AccessTokenRecord, SsoSession, token_hash

PERSON = "11010519491231002X"  # GB 11643's own worked example
NAME = "张三"


def _number(sequence: int) -> str:
    """A well-formed number of the same county and birth date, another sequence."""
    first17 = f"11010519491231{sequence:03d}"
    return first17 + check_character(first17)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = Settings.model_validate(
        {
            "issuer": "http://127.0.0.1:9",
            "insecure_allow_http": True,
            "data_dir": tmp_path,
            "create_keys": True,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": secrets.token_urlsafe(32),
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
            "rate_limits": {"enabled": False},  # the per-process windows are not under test
        }
    )
    made = build_services(settings)
    yield made
    made.close()


def _token_for(services: Services, client_id: str, now: datetime.datetime) -> str:
    """A live access token of ``client_id`` for the person, in a live SSO session."""
    store = services.store
    secret = services.settings.national_secret.get_secret_value().encode()
    subject = store.link_subject(
        identity_key(parse_identity_number(PERSON), secret), "zj", "zj-1", now
    )
    session_hash = token_hash(f"sso-{client_id}")
    store.create_session(
        SsoSession(
            session_hash=session_hash,
            subject=subject.id,
            region="zj",
            auth_time=now,
            acr="loa2",
            amr=("pwd", "otp"),
            created_at=now,
            expires_at=now + datetime.timedelta(hours=8),
            claims={"name": NAME},
        )
    )
    grant = store.create_grant(client_id, subject.id, now, session_hash=session_hash)
    token = secrets.token_urlsafe(32)
    store.save_access_token(
        AccessTokenRecord(
            token_hash=token_hash(token),
            grant_id=grant.grant_id,
            client_id=client_id,
            subject=subject.id,
            scope="openid profile",
            expires_at=now + datetime.timedelta(hours=1),
        )
    )
    return token


def _ask(client: FlaskClient, token: str, number: str) -> tuple[int, dict[str, object], str]:
    answer = client.post(
        "/verification",
        data={"name": NAME, "id_number": number},
        headers={"Authorization": f"Bearer {token}"},
    )
    return answer.status_code, answer.get_json() or {}, answer.headers.get("Retry-After", "")


def test_no_answers_are_counted_per_portal_and_person_and_then_held(services: Services) -> None:
    now = datetime.datetime.now(datetime.UTC)
    token = _token_for(services, "tax-portal", now)
    other_portal = _token_for(services, "culture-portal", now)
    client = create_app(services=services).test_client()

    # A right answer is no miss: a portal may check what it holds as often as it needs.
    for _ in range(VERIFICATION_MISSES + 2):
        assert _ask(client, token, PERSON)[:2] == (200, {"match": True})

    guesses = (_number(sequence) for sequence in range(1, 1000) if _number(sequence) != PERSON)
    for _ in range(VERIFICATION_MISSES):
        assert _ask(client, token, next(guesses))[:2] == (200, {"match": False})

    # Spent: no answer at all, not even to the right number (which would end the search).
    status, body, retry_after = _ask(client, token, PERSON)
    assert status == 429
    assert "match" not in body
    assert 0 < int(retry_after) <= VERIFICATION_HOLD.total_seconds()
    assert _ask(client, token, next(guesses))[0] == 429

    # Another portal's questions about the same person are its own.
    assert _ask(client, other_portal, PERSON)[:2] == (200, {"match": True})

    # Held in the store, not in this process: a fresh app (another replica) holds it too.
    replica = create_app(services=services).test_client()
    assert _ask(replica, token, PERSON)[0] == 429
