"""The demo's parts that need no server: its secrets file, its citizens, the portal's logout."""

from __future__ import annotations

import json
import re
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from realm_operator.templates import GATEWAY_CLIENT_ID, RealmTemplates

from gateway.identity import parse_identity_number
from gateway.keys import KeyRing
from tongxing_demo.errors import DemoError
from tongxing_demo.federation import CITIZENS, PORTAL_HOSTS, PORTALS, REGIONS
from tongxing_demo.portal import (
    BACKCHANNEL_EVENT,
    LocalSession,
    LocalSessions,
    LogoutTokenError,
    LogoutTokenValidator,
    ordered_claims,
)
from tongxing_demo.realms import (
    CLAIMS,
    FULL_NAME,
    citizen_password,
    demo_blueprint,
    fits_password_policy,
    region_spec,
)
from tongxing_demo.secrets_file import DemoSecrets, required_secrets

ISSUER = "http://127.0.0.1:8400"
CLIENT = "zj-services"


def test_secrets_are_generated_once_into_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    first = DemoSecrets(path)
    token = first.get("admin_token")
    password = first.get("password:zhangsan", lambda: "tx-12345678")
    first.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = DemoSecrets(path)
    assert again.get("admin_token") == token
    assert again.get("password:zhangsan") == password == "tx-12345678"
    assert len(token) >= 32


def test_secrets_readable_by_others_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"version": 1, "secrets": {}}))
    path.chmod(0o644)
    with pytest.raises(DemoError, match="readable by others"):
        DemoSecrets(path)


def test_a_file_that_is_not_demo_secrets_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text("[1, 2]")
    path.chmod(0o600)
    with pytest.raises(DemoError, match="not a demo secrets file"):
        DemoSecrets(path)


def test_a_kept_secret_that_breaks_the_rules_is_generated_again(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    old = DemoSecrets(path)
    old.get("password:zhangsan", lambda: "tx-12345678")
    old.save()
    again = DemoSecrets(path)
    password = again.get("password:zhangsan", citizen_password, fits_password_policy)
    assert password != "tx-12345678"
    assert fits_password_policy(password)
    again.save()
    assert DemoSecrets(path).get("password:zhangsan", citizen_password, fits_password_policy) == (
        password
    )


def test_citizen_passwords_pass_every_realm_templates_policy() -> None:
    # The strictest template, department: length(14), upper, lower, digit, special character.
    for _ in range(50):
        assert fits_password_policy(citizen_password())
    for weak in ("tx-1234abcd", "Tx-abcdefghijkl", "tx-1234abcd-5678", "TX-1234ABCD-5678"):
        assert not fits_password_policy(weak)


def test_demo_realms_are_the_templates_of_their_kinds_with_the_written_name() -> None:
    templates = RealmTemplates()
    for region in REGIONS:
        realm = f"tongxing-demo-{region.code}"
        spec = region_spec(region, realm, "http://127.0.0.1:8080")
        assert spec.template_name == region.kind.value
        template = templates.render_for(spec, "http://127.0.0.1:8400")
        blueprint = demo_blueprint(template)
        assert blueprint.realm["realm"] == realm
        assert blueprint.realm["passwordPolicy"] == template.realm["passwordPolicy"]
        assert blueprint.realm["displayName"] == f"{region.realm_title_zh}（演示）"
        assert blueprint.client["clientId"] == GATEWAY_CLIENT_ID == "tongxing-gateway"
        assert blueprint.client["redirectUris"] == [f"http://127.0.0.1:8400/callback/{region.code}"]
        mappers = {m["name"]: m for m in blueprint.client["protocolMappers"]}
        assert {"id_number", "name", "phone_number", FULL_NAME} <= set(mappers)
        assert mappers[FULL_NAME]["config"]["claim.name"] == CLAIMS["name"] == FULL_NAME
        attributes = {a["name"]: a for a in blueprint.user_profile["attributes"]}
        assert attributes[FULL_NAME]["permissions"]["edit"] == ["admin"]
        # the template's own parts are left as they are
        assert (
            len(blueprint.client["protocolMappers"]) == len(template.client["protocolMappers"]) + 1
        )
        assert FULL_NAME not in {a["name"] for a in template.user_profile["attributes"]}


def test_the_demo_generates_every_secret_the_gateway_requires() -> None:
    assert {"national_secret", "pairwise_secret", "admin_token", "session_secret"} <= set(
        required_secrets()
    )


def test_demo_citizens_have_valid_identity_numbers_and_live_in_demo_regions() -> None:
    codes = {region.code for region in REGIONS}
    for citizen in CITIZENS:
        assert parse_identity_number(citizen.identity_number).value == citizen.identity_number
        assert set(citizen.regions) <= codes
    # "register once, roam everywhere": one person, one number, two regions
    assert any(len(citizen.regions) > 1 for citizen in CITIZENS)
    assert len({citizen.identity_number for citizen in CITIZENS}) == len(CITIZENS)
    # the realms' user profile takes E.164 phone numbers only
    assert all(re.fullmatch(r"\+[1-9][0-9]{6,14}", c.phone_number) for c in CITIZENS)


def test_demo_portals_are_two_sectors() -> None:
    # Pairwise subjects differ only between sectors (hosts): portals A and B need two.
    assert len(PORTAL_HOSTS) == len(PORTALS)
    assert len(set(PORTAL_HOSTS[:2])) == 2
    assert {portal.owner for portal in PORTALS} <= {region.code for region in REGIONS}


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    return KeyRing.generate(now=datetime.now(UTC), algorithms=["RS256"])


def logout_token(ring: KeyRing, **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT,
        "iat": now,
        "exp": now + 120,
        "jti": f"jti-{time.monotonic_ns()}",
        "sub": "pairwise-sub",
        "sid": "sid-1",
        "events": {BACKCHANNEL_EVENT: {}},
    }
    claims.update(changes)
    return ring.sign({k: v for k, v in claims.items() if v is not None}, typ="logout+jwt")


@pytest.fixture
def validator(ring: KeyRing) -> LogoutTokenValidator:
    return LogoutTokenValidator(ISSUER, CLIENT, lambda _force: ring.jwks())


def test_a_valid_logout_token_ends_the_sessions_of_its_sid(
    ring: KeyRing, validator: LogoutTokenValidator
) -> None:
    sessions = LocalSessions()
    mine = sessions.create(
        LocalSession({"sub": "pairwise-sub"}, "id-token", "sid-1", "pairwise-sub")
    )
    other = sessions.create(LocalSession({"sub": "someone"}, "id-token", "sid-2", "someone"))
    claims = validator.validate(logout_token(ring))
    assert sessions.end_matching(claims.get("sid"), claims.get("sub")) == 1
    assert sessions.get(mine) is None
    assert sessions.was_ended_remotely(mine)
    assert sessions.get(other) is not None


def test_a_logout_token_without_sid_ends_every_session_of_its_sub() -> None:
    sessions = LocalSessions()
    ids = [sessions.create(LocalSession({}, "t", f"sid-{i}", "sub-1")) for i in range(2)]
    assert sessions.end_matching(None, "sub-1") == 2
    assert all(sessions.get(local_id) is None for local_id in ids)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "another-portal"}, "claims rejected"),
        ({"iss": "http://127.0.0.1:9999"}, "claims rejected"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 3700}, "claims rejected"),
        ({"events": {"urn:example:other": {}}}, "no back-channel logout event"),
        ({"nonce": "n-0S6_WzA2Mj"}, "must not contain a nonce"),
        ({"sid": None, "sub": None}, "neither sid nor sub"),
    ],
)
def test_logout_tokens_that_break_the_rules_are_refused(
    ring: KeyRing, validator: LogoutTokenValidator, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(LogoutTokenError, match=reason):
        validator.validate(logout_token(ring, **changes))


def test_a_logout_token_is_accepted_once(ring: KeyRing, validator: LogoutTokenValidator) -> None:
    token = logout_token(ring)
    validator.validate(token)
    with pytest.raises(LogoutTokenError, match="replayed"):
        validator.validate(token)


def test_a_logout_token_signed_by_another_key_is_refused(validator: LogoutTokenValidator) -> None:
    stranger = KeyRing.generate(now=datetime.now(UTC), algorithms=["RS256"])
    with pytest.raises(LogoutTokenError, match="signature rejected"):
        validator.validate(logout_token(stranger))


def test_an_id_token_is_not_a_logout_token(ring: KeyRing, validator: LogoutTokenValidator) -> None:
    now = int(time.time())
    id_token = ring.sign(
        {"iss": ISSUER, "aud": CLIENT, "iat": now, "exp": now + 60, "jti": "x", "sub": "s"},
        typ="JWT",
    )
    with pytest.raises(LogoutTokenError, match="typ"):
        validator.validate(id_token)


def test_claims_are_shown_name_first() -> None:
    shown = ordered_claims({"zeta": 1, "sub": "s", "name": "张三", "amr": ["pwd", "otp"]})
    assert shown == [("name", "张三"), ("sub", "s"), ("amr", "pwd otp"), ("zeta", "1")]
