"""The region's ID token is kept in the session only sealed, bound to the subject and to its
purpose (issue 13, "Logout means logout"; THREAT_MODEL row 8), and the way back from the
region's logout reaches a portal only with its own ``state`` (RP-Initiated Logout 1.0 §3)."""

from __future__ import annotations

import base64
import datetime
import hashlib
from dataclasses import replace

import pytest

from gateway.identity import parse_identity_number
from gateway.provider.region_logout import AUTO_SUBMIT, PAGE_POLICY, to_portal
from gateway.sealing import IdentitySealer, SecretCipher
from gateway.sessions import (
    SEALED_ID_NUMBER,
    SEALED_REGION_ID_TOKEN,
    open_region_id_token,
    seal_region_id_token,
)
from gateway.store import SsoSession

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ6aGFuZ3NhbiJ9.c2lnbmF0dXJl"
NOW = datetime.datetime(2026, 12, 5, 8, 0, tzinfo=datetime.UTC)


@pytest.fixture
def sealer() -> IdentitySealer:
    return IdentitySealer(SecretCipher.from_secrets("m" * 40))


def session(claims: dict[str, object], subject: str = "subject-1") -> SsoSession:
    return SsoSession(
        session_hash="h" * 64,
        subject=subject,
        region="zj",
        auth_time=NOW,
        acr="loa1",
        amr=("pwd",),
        created_at=NOW,
        expires_at=NOW + datetime.timedelta(hours=8),
        claims=claims,
    )


def test_a_sealed_region_id_token_opens_for_its_subject_only(sealer: IdentitySealer) -> None:
    sealed = seal_region_id_token(sealer, TOKEN, "subject-1")
    assert TOKEN not in sealed
    assert "eyJzdWIiOiJ6aGFuZ3NhbiJ9" not in sealed
    kept = session({SEALED_REGION_ID_TOKEN: sealed})
    assert open_region_id_token(sealer, kept) == TOKEN
    assert open_region_id_token(sealer, replace(kept, subject="subject-2")) is None


def test_another_key_or_purpose_or_junk_does_not_open_as_a_region_id_token(
    sealer: IdentitySealer,
) -> None:
    other_key = IdentitySealer(SecretCipher.from_secrets("o" * 40))
    sealed = seal_region_id_token(sealer, TOKEN, "subject-1")
    assert open_region_id_token(other_key, session({SEALED_REGION_ID_TOKEN: sealed})) is None
    # The identity number sealed for the same subject is not a region ID token.
    number = parse_identity_number("11010519491231002X", today=NOW.date())
    id_number = sealer.seal_identity_number(number, "subject-1")
    assert open_region_id_token(sealer, session({SEALED_REGION_ID_TOKEN: id_number})) is None
    for junk in ("", "not base64 !", base64.b64encode(b"short").decode(), 42, None):
        assert open_region_id_token(sealer, session({SEALED_REGION_ID_TOKEN: junk})) is None
    # An older session, with no region ID token kept: the logout at the region sends client_id.
    assert open_region_id_token(sealer, session({SEALED_ID_NUMBER: id_number})) is None


@pytest.mark.parametrize(
    ("target", "state", "expected"),
    [
        ("https://a.example.cn/bye", None, "https://a.example.cn/bye"),
        ("https://a.example.cn/bye", "s 1&x=y", "https://a.example.cn/bye?state=s+1%26x%3Dy"),
        ("https://a.example.cn/bye?lang=zh", "s1", "https://a.example.cn/bye?lang=zh&state=s1"),
    ],
)
def test_the_portal_gets_its_state_back_and_nothing_else(
    target: str, state: str | None, expected: str
) -> None:
    assert to_portal(target, state) == expected


def test_the_logout_request_page_allows_its_own_script_by_hash_only() -> None:
    digest = base64.b64encode(hashlib.sha256(AUTO_SUBMIT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in PAGE_POLICY
    assert "unsafe-inline" not in PAGE_POLICY
    assert "default-src 'none'" in PAGE_POLICY
