"""The grants through the oauth package, on a SQLite store and without sockets: the code grant
(single use, bound to client, redirect URI and PKCE), refresh with rotation and reuse
detection, client credentials, revocation and introspection; and servers that share nothing."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.keys import KeyRing, half_hash
from gateway.policy import default_policy_dir
from gateway.provider.oauth import build_oauth_server
from gateway.provider.oauth.endpoints import Introspection, PrivateKeyJwt, Revocation
from gateway.provider.oauth.grants import (
    CodeGrant,
    OpenIDCodeExtension,
    PortalCredentialsGrant,
    RefreshGrant,
    S256Only,
)
from gateway.registry import Names, Portal, hash_secret
from gateway.services import Services, wire
from gateway.settings import Settings
from gateway.store import AuthorizationRequest, SqlStore, SsoSession, token_hash
from gateway.tokens import BearerRefusal, User
from gateway.verified import parse_claims_request

ISSUER = "https://tongxing.example.cn"
REDIRECT = "https://portal.zj.gov.cn/callback"
SECRET = "portal-secret-0123456789"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"


def challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def keys() -> KeyRing:
    return KeyRing.generate(now=datetime.now(UTC))


def build(folder: Path, keys: KeyRing) -> Services:
    folder.mkdir(parents=True, exist_ok=True)
    settings = Settings.model_validate(
        {
            "issuer": ISSUER,
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
    services = wire(settings, store, keys)
    now = datetime.now(UTC)
    for client_id, grants in (
        ("portal-a", ["authorization_code", "refresh_token"]),
        ("portal-b", ["authorization_code", "refresh_token"]),
        ("backend", ["client_credentials"]),
    ):
        portal = Portal(
            client_id=client_id,
            names=Names(zh="门户", en="Portal"),
            owner="zj",
            redirect_uris=[REDIRECT],
            client_secret_hash=hash_secret(SECRET),
            grant_types=grants,  # type: ignore[arg-type]
            scopes=["openid", "profile"],
        )
        services.registry.put_portal(portal, now)
    return services


@pytest.fixture
def services(tmp_path: Path, keys: KeyRing) -> Iterator[Services]:
    built = build(tmp_path, keys)
    yield built
    built.close()


@pytest.fixture
def client(services: Services) -> FlaskClient:
    return create_app(services=services).test_client()


def user(services: Services, name: str = "citizen") -> User:
    """A person signed in at zj, with an SSO session."""
    now = datetime.now(UTC)
    subject = services.store.link_subject(token_hash(f"identity:{name}"), "zj", name, now)
    session = SsoSession(
        session_hash=token_hash(secrets.token_urlsafe(32)),
        subject=subject.id,
        region="zj",
        auth_time=now,
        acr="loa1",
        amr=("pwd",),
        created_at=now,
        expires_at=now + services.settings.sso_session_lifetime,
        claims={"home_region": "zj", "name": "张三"},
    )
    services.sessions.start(session)
    return User.from_session(session)


def code_for(services: Services, client_id: str = "portal-a", **changes: Any) -> str:
    values: dict[str, Any] = {
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": "portal-state",
        "nonce": "portal-nonce",
        "code_challenge": challenge(VERIFIER),
        "code_challenge_method": "S256",
    } | changes
    return services.tokens.issue_code(AuthorizationRequest(**values), user(services))


def token(client: FlaskClient, client_id: str = "portal-a", **form: str) -> Any:
    return client.post("/token", data=form, auth=(client_id, SECRET))


def redeem(client: FlaskClient, code: str, client_id: str = "portal-a", **extra: str) -> Any:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    return token(client, client_id, **({"code_verifier": VERIFIER} | form | extra))


def error(response: Any, status: int = 400) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    code: str = response.get_json()["error"]
    return code


def live(services: Services, access_token: str) -> bool:
    return not isinstance(services.tokens.userinfo(access_token), BearerRefusal)


# --- the code grant -------------------------------------------------------------------------


def test_a_code_buys_tokens_and_an_id_token_that_say_what_happened(
    services: Services, client: FlaskClient
) -> None:
    response = redeem(client, code_for(services))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    issued = response.get_json()
    assert issued["token_type"] == "Bearer"
    assert issued["scope"] == "openid profile"
    assert issued["refresh_token"]
    claims = services.keys.verify(issued["id_token"])
    assert claims["iss"] == ISSUER
    assert claims["aud"] == "portal-a"
    assert claims["nonce"] == "portal-nonce"
    assert claims["acr"] == "loa1"
    assert claims["amr"] == ["pwd"]
    assert claims["name"] == "张三"
    assert claims["sid"]
    assert claims["at_hash"] == half_hash(issued["access_token"], "RS256")
    assert services.tokens.userinfo(issued["access_token"]) == {
        "sub": claims["sub"],
        "name": "张三",
        "home_region": "zj",
    }


def test_code_replay_revokes_issued_tokens(services: Services, client: FlaskClient) -> None:
    code = code_for(services)
    first = redeem(client, code).get_json()
    assert live(services, first["access_token"])
    assert error(redeem(client, code)) == "invalid_grant"
    assert not live(services, first["access_token"])
    refreshed = token(client, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert error(refreshed) == "invalid_grant"


def test_a_code_presented_by_another_portal_is_burnt(
    services: Services, client: FlaskClient
) -> None:
    code = code_for(services)
    assert error(redeem(client, code, "portal-b")) == "invalid_grant"
    assert error(redeem(client, code)) == "invalid_grant"


def test_a_code_is_bound_to_its_redirect_uri_and_its_pkce_challenge(
    services: Services, client: FlaskClient
) -> None:
    wrong_uri = redeem(client, code_for(services), redirect_uri=f"{REDIRECT}/")
    assert error(wrong_uri) == "invalid_grant"
    wrong_verifier = redeem(client, code_for(services), code_verifier="x" * 43)
    assert error(wrong_verifier) == "invalid_grant"
    no_challenge = code_for(services, code_challenge=None, code_challenge_method=None)
    assert error(redeem(client, no_challenge)) in ("invalid_request", "invalid_grant")


def test_a_wrong_secret_is_invalid_client(services: Services, client: FlaskClient) -> None:
    form = {
        "grant_type": "authorization_code",
        "code": code_for(services),
        "redirect_uri": REDIRECT,
    }
    refused = client.post("/token", data=form, auth=("portal-a", "wrong"))
    assert error(refused, 401) == "invalid_client"


# --- refresh --------------------------------------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_family(
    services: Services, client: FlaskClient
) -> None:
    issued = redeem(client, code_for(services)).get_json()
    rotated = token(client, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    assert rotated.status_code == 200, rotated.get_data(as_text=True)
    new = rotated.get_json()
    assert new["refresh_token"] != issued["refresh_token"]
    assert services.keys.verify(new["id_token"])["aud"] == "portal-a"
    assert live(services, new["access_token"])

    reused = token(client, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    assert error(reused) == "invalid_grant"
    assert not live(services, new["access_token"])
    again = token(client, grant_type="refresh_token", refresh_token=new["refresh_token"])
    assert error(again) == "invalid_grant"


def test_a_refresh_token_of_another_portal_is_refused(
    services: Services, client: FlaskClient
) -> None:
    issued = redeem(client, code_for(services)).get_json()
    stolen = token(
        client, "portal-b", grant_type="refresh_token", refresh_token=issued["refresh_token"]
    )
    assert error(stolen) == "invalid_grant"


# --- client credentials, revocation, introspection ------------------------------------------


def test_client_credentials_make_the_portal_the_subject_without_openid(
    services: Services, client: FlaskClient
) -> None:
    granted = token(client, "backend", grant_type="client_credentials", scope="openid profile")
    assert granted.status_code == 200, granted.get_data(as_text=True)
    body = granted.get_json()
    assert body["scope"] == "profile"
    assert "refresh_token" not in body
    record = services.store.get_access_token(token_hash(body["access_token"]), datetime.now(UTC))
    assert record is not None
    assert record.subject == "backend"
    refused = token(client, "portal-a", grant_type="client_credentials")
    assert error(refused) == "unauthorized_client"


def test_revoking_a_token_ends_its_grant_and_introspection_tells_only_its_portal(
    services: Services, client: FlaskClient
) -> None:
    issued = redeem(client, code_for(services)).get_json()
    own = client.post(
        "/introspect", data={"token": issued["access_token"]}, auth=("portal-a", SECRET)
    )
    assert own.get_json()["active"] is True
    foreign = client.post(
        "/introspect", data={"token": issued["access_token"]}, auth=("portal-b", SECRET)
    )
    assert foreign.get_json() == {"active": False}
    revoked = client.post(
        "/revoke", data={"token": issued["refresh_token"]}, auth=("portal-a", SECRET)
    )
    assert revoked.status_code == 200
    assert not live(services, issued["access_token"])


# --- one server per application ----------------------------------------------------------


def test_two_applications_in_one_process_share_no_provider(tmp_path: Path, keys: KeyRing) -> None:
    """Building a server assigns nothing to a class: each grant reaches the token service of
    the server that made it, so a second application does not take over the first one's."""
    classes = (CodeGrant, RefreshGrant, PortalCredentialsGrant, Revocation, Introspection)
    before = {
        cls: dict(vars(cls)) for cls in (*classes, S256Only, OpenIDCodeExtension, PrivateKeyJwt)
    }
    first, second = build(tmp_path / "a", keys), build(tmp_path / "b", keys)
    try:
        client_a = create_app(services=first).test_client()
        client_b = create_app(services=second).test_client()
        build_oauth_server(first.tokens)
        assert {cls: dict(vars(cls)) for cls in before} == before
        code = code_for(first)
        assert error(redeem(client_b, code)) == "invalid_grant"  # unknown in b's store
        assert redeem(client_a, code).status_code == 200
    finally:
        first.close()
        second.close()


def test_no_module_of_the_gateway_outside_the_oauth_package_imports_authlib() -> None:
    gateway = Path(__file__).resolve().parents[2] / "gateway"
    importing = {
        path.relative_to(gateway).as_posix()
        for path in gateway.rglob("*.py")
        if re.search(r"^\s*(from|import)\s+authlib\b", path.read_text(), re.MULTILINE)
    }
    assert importing
    assert {name for name in importing if not name.startswith("provider/oauth/")} == set()


# --- a portal gets only what it is registered for (THREAT_MODEL row 6) ---------------------


class SteppedClock:
    """A clock the test moves forward."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def signed_in(
    services: Services, *, session_lifetime: timedelta | None = None, **claims: Any
) -> User:
    """A person signed in at zj whose SSO session lasts ``session_lifetime``."""
    now = services.tokens.clock()
    subject = services.store.link_subject(token_hash("identity:phone"), "zj", "phone", now)
    session = SsoSession(
        session_hash=token_hash(secrets.token_urlsafe(32)),
        subject=subject.id,
        region="zj",
        auth_time=now,
        acr="loa1",
        amr=("pwd",),
        created_at=now,
        expires_at=now + (session_lifetime or services.settings.sso_session_lifetime),
        claims={"home_region": "zj", "name": "张三", **claims},
    )
    services.sessions.start(session)
    return User.from_session(session)


def wide_code(services: Services, person: User, scope: str) -> str:
    request = AuthorizationRequest(
        client_id="portal-a",
        redirect_uri=REDIRECT,
        scope=scope,
        state="s",
        nonce="n",
        code_challenge=challenge(VERIFIER),
        code_challenge_method="S256",
    )
    return services.tokens.issue_code(request, person)


def test_a_code_for_unregistered_scopes_buys_only_the_registered_ones(
    services: Services, client: FlaskClient
) -> None:
    """Even a code that carries more than the registration (issued before it narrowed, or by a
    path that forgot to cut) is redeemed for the registered scopes only."""
    person = signed_in(services, phone_number="+86 138 0000 0000")
    code = wide_code(services, person, "openid profile phone payments:write")
    issued = redeem(client, code).get_json()
    assert issued["scope"] == "openid profile"
    introspected = client.post(
        "/introspect", data={"token": issued["access_token"]}, auth=("portal-a", SECRET)
    ).get_json()
    assert introspected["scope"] == "openid profile"
    info = services.tokens.userinfo(issued["access_token"])
    assert isinstance(info, dict)
    assert "phone_number" not in info
    assert "phone_number" not in services.keys.verify(issued["id_token"])


def test_refresh_never_widens_the_grant(services: Services, client: FlaskClient) -> None:
    issued = redeem(client, code_for(services)).get_json()
    wider = token(
        client,
        grant_type="refresh_token",
        refresh_token=issued["refresh_token"],
        scope="openid profile phone",
    )
    assert error(wider) == "invalid_scope"
    narrower = token(
        client, grant_type="refresh_token", refresh_token=issued["refresh_token"], scope="openid"
    )
    assert narrower.status_code == 200, narrower.get_data(as_text=True)
    assert narrower.get_json()["scope"] == "openid"


def test_refresh_follows_a_narrowed_registration(services: Services, client: FlaskClient) -> None:
    issued = redeem(client, code_for(services)).get_json()
    portal = services.registry.portal("portal-a")
    assert portal is not None
    services.registry.put_portal(
        portal.model_copy(update={"scopes": ["openid"]}), datetime.now(UTC)
    )
    rotated = token(client, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    assert rotated.status_code == 200, rotated.get_data(as_text=True)
    assert rotated.get_json()["scope"] == "openid"

    services.registry.put_portal(portal.model_copy(update={"scopes": ["phone"]}), datetime.now(UTC))
    refused = token(
        client, grant_type="refresh_token", refresh_token=rotated.get_json()["refresh_token"]
    )
    assert error(refused) == "invalid_scope"


def test_client_credentials_for_unregistered_scopes_only_are_refused(
    services: Services, client: FlaskClient
) -> None:
    asked = token(client, "backend", grant_type="client_credentials", scope="payments:write")
    assert error(asked) == "invalid_scope"
    mixed = token(client, "backend", grant_type="client_credentials", scope="profile phone")
    assert mixed.get_json()["scope"] == "profile"


# --- refresh tokens have an absolute lifetime ----------------------------------------------


def refresh_expiry(services: Services, value: str) -> datetime:
    record = services.store.get_refresh_token(token_hash(value), services.tokens.clock())
    assert record is not None
    return record.expires_at


def test_rotation_does_not_extend_the_refresh_family(
    services: Services, client: FlaskClient
) -> None:
    clock = SteppedClock()
    services.tokens.clock = clock
    issued = redeem(client, code_for(services)).get_json()
    end = refresh_expiry(services, issued["refresh_token"])
    assert end == clock.now + services.settings.refresh_token_lifetime
    value = issued["refresh_token"]
    for _ in range(3):
        clock.now += timedelta(hours=2)
        rotated = token(client, grant_type="refresh_token", refresh_token=value)
        assert rotated.status_code == 200, rotated.get_data(as_text=True)
        value = rotated.get_json()["refresh_token"]
        assert refresh_expiry(services, value) == end
    clock.now = end
    assert error(token(client, grant_type="refresh_token", refresh_token=value)) == "invalid_grant"


def test_a_refresh_token_never_outlives_its_sso_session(
    services: Services, client: FlaskClient
) -> None:
    clock = SteppedClock()
    services.tokens.clock = clock
    person = signed_in(services, session_lifetime=timedelta(hours=1))
    assert person.session_expires_at is not None
    issued = redeem(client, wide_code(services, person, "openid profile")).get_json()
    assert refresh_expiry(services, issued["refresh_token"]) == person.session_expires_at
    clock.now += timedelta(minutes=30)
    rotated = token(client, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    value = rotated.get_json()["refresh_token"]
    assert refresh_expiry(services, value) == person.session_expires_at
    clock.now = person.session_expires_at + timedelta(seconds=1)
    assert error(token(client, grant_type="refresh_token", refresh_token=value)) == "invalid_grant"


# --- the claims request parameter, kept with its grant (OIDC Core §5.5) ---------------------


class StoreStatements:
    """The SQL statements the store runs (but ``BEGIN``, and reads of the registry and the
    policy set, whose cached copies refresh on their own clock)."""

    def __init__(self, services: Services) -> None:
        assert isinstance(services.store, SqlStore)
        self.seen: list[str] = []
        sqlalchemy.event.listen(services.store.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        self.seen.append(statement)

    @contextmanager
    def during(self) -> Iterator[list[str]]:
        """The statements run inside the ``with`` block, listed when it ends."""
        ran: list[str] = []
        start = len(self.seen)
        yield ran
        ran.extend(
            s
            for s in self.seen[start:]
            if not s.startswith("BEGIN") and not re.search(r"\b(portals|regions|policy_sets)\b", s)
        )


def test_the_claims_request_travels_with_its_grant_at_no_statement_of_its_own(
    services: Services, client: FlaskClient
) -> None:
    statements = StoreStatements(services)
    asked = parse_claims_request('{"id_token":{"name":null},"userinfo":{"name":null}}').text
    counts: dict[bool, list[int]] = {}
    for claims in (None, None, asked):  # the first flow warms the registry's copy
        with statements.during() as issued_code:
            code = code_for(services, scope="openid", claims=claims)
        with statements.during() as redeemed:
            first = redeem(client, code).get_json()
        with statements.during() as rotated:
            refresh = first["refresh_token"]
            second = token(client, grant_type="refresh_token", refresh_token=refresh).get_json()
        bearer = {"Authorization": f"Bearer {second['access_token']}"}
        with statements.during() as answered:
            info = client.get("/userinfo", headers=bearer).get_json()
        counts[claims is not None] = [len(issued_code), len(redeemed), len(rotated), len(answered)]
        # Only the claims request asks for the name here (scope "openid"): the ID token of the
        # code, the refreshed ID token and userinfo all honour it (OIDC Core §5.5, §12.2).
        named = "张三" if claims is not None else None
        assert services.keys.verify(first["id_token"]).get("name") == named
        assert services.keys.verify(second["id_token"]).get("name") == named
        assert info.get("name") == named
        # Userinfo is one statement: the token with its grant (and the claims request) and
        # its live session.
        assert len(answered) == 1, answered
    # The same statements with and without it: no write of its own at /authorize's answer, no
    # read of its own at the token endpoint or userinfo.
    assert counts[True] == counts[False]
