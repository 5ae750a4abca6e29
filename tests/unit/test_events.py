"""Every part says what happened, once (gateway/observe.py, issue 14): a real gateway (the Flask
application over a SQLite store) with a recording sink on its event stream, driven through HTTP
with a region that answers in-process (the broker's own checks: tests/unit/test_broker_client.py).

Each action is said exactly once, after it happened, with identifiers and codes only: no event
carries an identity number, a code, a token, a client secret or a password (THREAT_MODEL rows 8
and 9).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from gateway.app import create_app
from gateway.broker import LoginStart, LoginTransaction, UpstreamIdentity
from gateway.broker.errors import MixUpError, UpstreamAccessDenied
from gateway.identity import parse_identity_number
from gateway.mfa import InvalidCodeError, LockedOutError, ThrottlePolicy
from gateway.observe import (
    REDACTED,
    AdminChange,
    ConsentGiven,
    Event,
    FactorRemoved,
    LockedOut,
    LoggedOut,
    SignInCompleted,
    SignInFailed,
    SignInStarted,
    TokenIssued,
)
from gateway.registry import Names, Portal, Region, RegionKind, hash_secret
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.signin import SignIn
from gateway.store import SqlStore
from gateway.store.contract import token_hash

ISSUER = "https://tongxing.example.cn"
ADMIN_TOKEN = secrets.token_urlsafe(32)
PORTAL_SECRET = secrets.token_urlsafe(32)
REGION_SECRET = secrets.token_urlsafe(32)
PERSON_ID = "11010519491231002X"  # the worked example of GB 11643-1999
REDIRECT = "https://portal.zj.gov.cn/callback"
VERIFIER = secrets.token_urlsafe(48)
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=")
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class InProcessRegion:
    """A region that answers in-process, as a Keycloak realm would after the broker's checks."""

    def __init__(self, region: Region) -> None:
        self.region = region

    def start_login(
        self,
        redirect_uri: str,
        *,
        prompt: str | None = None,
        max_age: int | None = None,
        login_hint: str | None = None,
        ui_locales: str | None = None,
        acr_values: str | Sequence[str] | None = None,
    ) -> LoginStart:
        transaction = LoginTransaction(
            region=self.region.code,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(48),
            redirect_uri=redirect_uri,
            created_at=datetime.now(UTC).timestamp(),
            max_age=max_age,
        )
        return LoginStart(f"{self.region.issuer}/auth?state={transaction.state}", transaction)

    def finish_login(
        self, params: Mapping[str, str | Sequence[str]], transaction: LoginTransaction
    ) -> UpstreamIdentity:
        if transaction.region != self.region.code:  # what the broker's iss check finds
            raise MixUpError(self.region.code, "a sign-in to another region")
        if params.get("error"):
            raise UpstreamAccessDenied(self.region.code, "access_denied", None)
        return UpstreamIdentity(
            region=self.region.code,
            issuer=self.region.issuer,
            subject="zj-user-1",
            identity_number=parse_identity_number(PERSON_ID, today=date(2025, 3, 1)),
            name="张三",
            phone_number="13800000000",
            acr=None,
            amr=("pwd",),
            auth_time=int(datetime.now(UTC).timestamp()),
            claims={},
        )


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = Settings.model_validate(
        {
            "issuer": ISSUER,
            "data_dir": tmp_path,
            "create_keys": True,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": ADMIN_TOKEN,
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    built = build_services(settings)
    # The gateway's own sign-in, over the gateway's stream, with regions answering in-process.
    built.signin = SignIn(
        settings=built.settings,
        store=built.store,
        registry=built.registry,
        sessions=built.sessions,
        tokens=built.tokens,
        assurance=built.signin.assurance,
        sealer=built.sealer,
        broker=InProcessRegion,
        clock=built.clock,
        events=built.events,
    )
    now = built.clock()
    for code in ("zj", "sh"):
        region = Region(
            code=code,
            names=Names(zh=code, en=code),
            kind=RegionKind.PROVINCE,
            issuer=f"https://idp.example.cn/realms/{code}",
            client_id="tongxing-gateway",
            client_secret=REGION_SECRET,  # type: ignore[arg-type]
        )
        built.registry.put_region(region, now)
    portal = Portal(
        client_id="portal-a",
        names=Names(zh="门户", en="Portal"),
        owner="zj",
        redirect_uris=[REDIRECT],
        client_secret_hash=hash_secret(PORTAL_SECRET),
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        scopes=["openid", "profile", "phone"],
        consent_claims=["phone_number"],
    )
    built.registry.put_portal(portal, now)
    yield built
    built.close()


@pytest.fixture
def heard(services: Services) -> list[Event]:
    """What the gateway said, in order (subscribed after the fixtures' registrations)."""
    events: list[Event] = []
    services.events.subscribe(events.append)
    return events


@pytest.fixture
def client(services: Services) -> FlaskClient:
    return create_app(services=services).test_client()


def get(client: FlaskClient, path: str, **kwargs: Any) -> TestResponse:
    return client.get(path, base_url=ISSUER, **kwargs)


def post(client: FlaskClient, path: str, **kwargs: Any) -> TestResponse:
    return client.post(path, base_url=ISSUER, **kwargs)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def authorize(client: FlaskClient, scope: str = "openid profile", **extra: str) -> TestResponse:
    params = {
        "response_type": "code",
        "client_id": "portal-a",
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "portal-state",
        "nonce": "portal-nonce",
        "code_challenge": CHALLENGE.decode(),
        "code_challenge_method": "S256",
        **extra,
    }
    return get(client, "/authorize", query_string=params)


def at_region(client: FlaskClient, scope: str = "openid profile") -> str:
    """Begin a sign-in at region zj: the region's ``state``."""
    started = authorize(client, scope, region="zj")
    assert started.status_code in (302, 303), started.get_data(as_text=True)
    return query(started.headers["Location"])["state"]


def callback(client: FlaskClient, state: str, region: str = "zj", **extra: str) -> TestResponse:
    return get(client, f"/callback/{region}", query_string={"state": state, "code": "c", **extra})


def signed_in(client: FlaskClient) -> str:
    """A sign-in through region zj, answered with a code: the code."""
    back = callback(client, at_region(client))
    assert back.status_code in (302, 303), back.get_data(as_text=True)
    return query(back.headers["Location"])["code"]


def token(client: FlaskClient, **form: str) -> dict[str, Any]:
    answer = post(client, "/token", data=form, auth=("portal-a", PORTAL_SECRET))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body: dict[str, Any] = answer.get_json()
    return body


def redeemed(client: FlaskClient, code: str) -> dict[str, Any]:
    return token(
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=VERIFIER,
    )


def the(heard: list[Event], kind: type[Event]) -> list[Event]:
    return [event for event in heard if isinstance(event, kind)]


def subject_of(services: Services) -> str:
    """The national subject of the one person who signed in (read from the store)."""
    store = services.store
    assert isinstance(store, SqlStore)
    with store.engine.connect() as connection:
        [(subject,)] = connection.exec_driver_sql("SELECT DISTINCT subject FROM sso_sessions")
    return str(subject)


def assert_nothing_secret(heard: list[Event], *secrets_: str) -> None:
    said = repr(heard)
    for secret in (PERSON_ID, PORTAL_SECRET, REGION_SECRET, ADMIN_TOKEN, VERIFIER, *secrets_):
        assert secret not in said


# --- the sign-in ---------------------------------------------------------------------------------


def test_a_sign_in_through_the_region_says_started_then_completed_once(
    client: FlaskClient, services: Services, heard: list[Event]
) -> None:
    code = signed_in(client)
    subject = subject_of(services)
    assert heard == [
        SignInStarted(portal="portal-a", region="zj"),
        SignInCompleted(
            subject=subject, portal="portal-a", region="zj", level="loa1", amr=("pwd",)
        ),
    ]
    # Answered again from the SSO session: said so, without a round trip to the region.
    again = authorize(client)
    assert again.status_code in (302, 303)
    assert heard[2:] == [
        SignInStarted(portal="portal-a", region="zj"),
        SignInCompleted(
            subject=subject,
            portal="portal-a",
            region="zj",
            level="loa1",
            amr=("pwd",),
            single_sign_on=True,
        ),
    ]
    assert_nothing_secret(heard, code, query(again.headers["Location"])["code"])


def test_a_person_who_says_no_at_the_region_is_a_failure_with_the_portals_code(
    client: FlaskClient, heard: list[Event]
) -> None:
    back = callback(client, at_region(client), error="access_denied")
    assert query(back.headers["Location"])["error"] == "access_denied"
    assert heard == [
        SignInStarted(portal="portal-a", region="zj"),
        SignInFailed(portal="portal-a", region="zj", reason="access_denied"),
    ]


def test_a_mix_up_is_a_failure_with_the_brokers_stable_code(
    client: FlaskClient, heard: list[Event]
) -> None:
    """A response for zj's sign-in arriving at sh's callback (RFC 9700 §4.4): the page says
    so, and so does the event, with MixUpError's code."""
    state = at_region(client)
    page = callback(client, state, region="sh")
    assert page.status_code == MixUpError.status
    assert the(heard, SignInFailed) == [
        SignInFailed(portal="portal-a", region="sh", reason=MixUpError.code)
    ]
    assert not the(heard, SignInCompleted)


def test_a_request_refused_at_authorize_is_a_failure_never_a_start(
    client: FlaskClient, heard: list[Event]
) -> None:
    refused = authorize(client, prompt="none")  # no SSO session, and no page may be shown
    assert query(refused.headers["Location"])["error"] == "login_required"
    bad_scope = authorize(client, scope="profile")  # an OpenID request without openid
    assert query(bad_scope.headers["Location"])["error"] == "invalid_scope"
    unknown = get(
        client, "/authorize", query_string={"response_type": "code", "client_id": "nobody"}
    )
    assert unknown.status_code >= 400
    assert heard == [
        SignInFailed(portal="portal-a", region=None, reason="login_required"),
        SignInFailed(portal="portal-a", region=None, reason="invalid_scope"),
        SignInFailed(portal=None, region=None, reason="invalid_client"),
    ]


def test_a_consent_given_is_said_once_then_the_sign_in_completes(
    client: FlaskClient, services: Services, heard: list[Event]
) -> None:
    page = callback(client, at_region(client, "openid phone"))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    [csrf] = re.findall(r'name="csrf" value="([^"]+)"', html)
    [form] = re.findall(r'name="pending" value="([^"]+)"', html)
    answer = post(client, "/consent", data={"csrf": csrf, "pending": form, "decision": "allow"})
    assert answer.status_code in (302, 303), answer.get_data(as_text=True)
    subject = subject_of(services)
    assert the(heard, ConsentGiven) == [
        ConsentGiven(subject=subject, portal="portal-a", claims=("phone_number",))
    ]
    assert [type(e) for e in heard] == [SignInStarted, ConsentGiven, SignInCompleted]
    assert_nothing_secret(heard, csrf, "13800000000")


# --- tokens and logout -------------------------------------------------------------------------


def test_each_grant_that_answers_says_token_issued_once(
    client: FlaskClient, heard: list[Event]
) -> None:
    code = signed_in(client)
    issued = redeemed(client, code)
    refreshed = token(client, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    backend = token(client, grant_type="client_credentials")
    assert the(heard, TokenIssued) == [
        TokenIssued(portal="portal-a", grant_type="authorization_code"),
        TokenIssued(portal="portal-a", grant_type="refresh_token"),
        TokenIssued(portal="portal-a", grant_type="client_credentials"),
    ]
    # A refused grant (the code again: a replay) says nothing was issued.
    replay = post(
        client,
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER,
        },
        auth=("portal-a", PORTAL_SECRET),
    )
    assert replay.status_code == 400
    assert len(the(heard, TokenIssued)) == 3
    said = [
        issued["access_token"],
        issued["refresh_token"],
        issued["id_token"],
        refreshed["access_token"],
        refreshed["refresh_token"],
        backend["access_token"],
    ]
    assert_nothing_secret(heard, code, *said)


def test_a_logout_proven_by_the_portal_is_said_once_with_its_initiator(
    client: FlaskClient, services: Services, heard: list[Event]
) -> None:
    issued = redeemed(client, signed_in(client))
    subject = subject_of(services)
    # No logout at the region here (its metadata would need a socket): the gateway's is enough.
    services.registry.delete_region("zj")
    answer = get(client, "/logout", query_string={"id_token_hint": issued["id_token"]})
    assert answer.status_code == 200
    again = get(client, "/logout", query_string={"id_token_hint": issued["id_token"]})
    assert again.status_code == 200
    assert the(heard, LoggedOut) == [LoggedOut(subject=subject, region="zj", initiator="portal")]
    assert_nothing_secret(heard, issued["id_token"])


# --- the admin API -----------------------------------------------------------------------------


def test_an_admin_put_and_delete_are_said_with_the_documents_redacted(
    client: FlaskClient, heard: list[Event]
) -> None:
    secret = secrets.token_urlsafe(32)
    portal = {
        "names": {"zh": "门户乙", "en": "Portal B"},
        "owner": "zj",
        "redirect_uris": ["https://b.zj.gov.cn/callback"],
        "client_secret": secret,
    }
    created = client.put("/admin/v1/portals/portal-b", json=portal, headers=ADMIN)
    assert created.status_code == 201
    portal["scopes"] = ["openid"]
    replaced = client.put("/admin/v1/portals/portal-b", json=portal, headers=ADMIN)
    assert replaced.status_code == 200
    assert client.delete("/admin/v1/portals/portal-b", headers=ADMIN).status_code == 204
    region_secret = secrets.token_urlsafe(32)
    region = {
        "names": {"zh": "湖北", "en": "Hubei"},
        "kind": "province",
        "issuer": "https://idp.example.cn/realms/hb",
        "client_id": "tongxing-gateway",
        "client_secret": region_secret,
    }
    assert client.put("/admin/v1/regions/hb", json=region, headers=ADMIN).status_code == 201
    changes = the(heard, AdminChange)
    assert [(c.action, c.target_kind, c.target) for c in changes] == [  # type: ignore[attr-defined]
        ("put", "portal", "portal-b"),
        ("put", "portal", "portal-b"),
        ("delete", "portal", "portal-b"),
        ("put", "region", "hb"),
    ]
    first, second, deleted, put_region = changes
    assert isinstance(first, AdminChange)
    assert isinstance(second, AdminChange)
    assert isinstance(deleted, AdminChange)
    assert isinstance(put_region, AdminChange)
    assert (first.principal, first.role) == ("platform", "platform")
    assert first.before is None
    assert first.after is not None
    assert first.after["scopes"] == ["openid", "profile"]
    assert second.before == first.after
    assert second.after is not None
    assert second.after["scopes"] == ["openid"]
    assert deleted.before == second.after
    assert deleted.after is None
    assert put_region.before is None
    assert put_region.after is not None
    assert put_region.after["issuer"] == "https://idp.example.cn/realms/hb"
    for change in (first, second, deleted, put_region):
        for document in (change.before or {}, change.after or {}):
            for field in ("client_secret", "client_secret_hash"):
                assert document.get(field, REDACTED) == REDACTED
    assert_nothing_secret(heard, secret, hash_secret(secret), region_secret)


def test_a_help_desk_reset_is_said_as_a_factor_removed_and_an_admin_change(
    client: FlaskClient, services: Services, heard: list[Event]
) -> None:
    now = services.clock()
    subject = services.store.link_subject(token_hash("identity:wang"), "zj", "zj-1", now).id
    enrolment = services.totp.begin_enrolment(subject, "wang")
    services.totp.confirm_enrolment(subject, pyotp.TOTP(enrolment.secret).now(), "192.0.2.1")
    reason = "ticket HD-4711: phone lost, ID checked"
    answer = client.delete(
        f"/admin/v1/subjects/{subject}/second-factor", json={"reason": reason}, headers=ADMIN
    )
    assert answer.status_code == 204
    refused = client.delete(
        f"/admin/v1/subjects/{subject}/second-factor", json={"reason": "again"}, headers=ADMIN
    )
    assert refused.status_code == 404  # nothing removed: nothing said
    assert heard == [
        FactorRemoved(subject=subject, principal="platform", reason=reason),
        AdminChange(
            principal="platform",
            role="platform",
            action="reset_second_factor",
            target_kind="subject",
            target=subject,
            reason=reason,
        ),
    ]
    assert_nothing_secret(heard, enrolment.secret)


def test_ending_a_regions_sessions_says_each_logout_and_the_admin_change(
    client: FlaskClient, services: Services, heard: list[Event]
) -> None:
    signed_in(client)
    subject = subject_of(services)
    answer = client.delete("/admin/v1/regions/zj/sessions", headers=ADMIN)
    assert answer.get_json() == {"region": "zj", "ended": 1}
    assert the(heard, LoggedOut) == [LoggedOut(subject=subject, region="zj", initiator="admin")]
    [change] = the(heard, AdminChange)
    assert isinstance(change, AdminChange)
    assert (change.action, change.target_kind, change.target) == ("end_sessions", "region", "zj")


def test_a_lock_out_is_said_once_by_the_attempt_that_locked(
    services: Services, heard: list[Event]
) -> None:
    """Only the attempt the store counted into the lock-out says it; the attempts refused
    while the lock lasts are not new lock-outs."""
    now = services.clock()
    subject = services.store.link_subject(token_hash("identity:li"), "zj", "zj-2", now).id
    enrolment = services.totp.begin_enrolment(subject, "li")
    services.totp.confirm_enrolment(subject, pyotp.TOTP(enrolment.secret).now(), "192.0.2.1")
    locked = 0
    for attempt in range(ThrottlePolicy().max_failures + 3):
        try:
            # A different address each time: the subject's count locks, no address is slowed.
            services.totp.verify(subject, "000000", f"198.51.100.{attempt + 1}")
        except LockedOutError:
            locked += 1
        except InvalidCodeError:
            pass
    assert locked == 3
    assert heard == [LockedOut(subject=subject)]
