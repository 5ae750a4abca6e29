"""The sign-in service without HTTP: every branch of begin, choose, complete, step-up and consent,
over one pending authorization in a SQLite store, with a region that answers in-process."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import text

from gateway.assurance import Assurance
from gateway.broker import LoginStart, LoginTransaction, UpstreamIdentity
from gateway.broker.errors import (
    MixUpError,
    RegionUnavailable,
    StaleAuthentication,
    UpstreamAccessDenied,
)
from gateway.errors import (
    CallbackNotRecognised,
    ConsentRequestExpired,
    LoginExpired,
    SignInFromAnotherBrowser,
    SignInLinkExpired,
    UnknownClient,
)
from gateway.identity import parse_identity_number
from gateway.keys import KeyRing
from gateway.observe import Event, IdentityLinked
from gateway.policy import default_policy_dir
from gateway.registry import Names, Portal, Region, RegionKind, hash_secret
from gateway.services import Services, wire
from gateway.settings import Settings
from gateway.signin import (
    AskConsent,
    ChooseRegion,
    Completion,
    RefusedRequest,
    SignIn,
    StepUp,
    ToPortal,
    ToRegion,
    form_handle,
)
from gateway.store import AuthorizationRequest, PendingStage, SqlStore, token_hash
from gateway.tokens import TokenService

ISSUER = "https://tongxing.example.cn"
NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
PERSON_ID = "11010519491231002X"  # the worked example of GB 11643-1999
PORTAL_STATE = "portal-state-7f3a"
REDIRECT = "https://portal.zj.gov.cn/callback"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class FakeRegion:
    """A region that answers in-process: what a Keycloak realm would, after the broker's checks
    (the broker's own checks are tested in test_broker_client.py)."""

    def __init__(self, region: Region, world: World) -> None:
        self.region = region
        self.world = world

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
        if not self.region.enabled:
            raise RegionUnavailable(self.region.code, "the region is disabled")
        self.world.asked.append({"prompt": prompt, "max_age": max_age, "acr_values": acr_values})
        transaction = LoginTransaction(
            region=self.region.code,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(48),
            redirect_uri=redirect_uri,
            created_at=self.world.clock().timestamp(),
            max_age=max_age,
        )
        return LoginStart(f"{self.region.issuer}/auth?state={transaction.state}", transaction)

    def finish_login(
        self, params: Mapping[str, str | Sequence[str]], transaction: LoginTransaction
    ) -> UpstreamIdentity:
        if transaction.region != self.region.code:
            raise MixUpError(self.region.code, "a sign-in to another region")
        assert params["state"] == [transaction.state]
        if params.get("error"):
            raise UpstreamAccessDenied(self.region.code, "access_denied", None)
        if self.world.stale:
            raise StaleAuthentication(self.region.code, "auth_time is older than max_age")
        self.world.finished.append(transaction)
        # As a Keycloak realm would: when the person signed in there (now, unless told).
        signed_in = self.world.region_auth_time or self.world.clock()
        return UpstreamIdentity(
            region=self.region.code,
            issuer=self.region.issuer,
            subject=self.world.upstream_sub,
            identity_number=parse_identity_number(PERSON_ID, today=date(2025, 3, 1)),
            name="张三",
            phone_number="13800000000",
            acr=self.world.acr,
            amr=self.world.amr,
            auth_time=int(signed_in.timestamp()),
            claims={},
        )


@dataclasses.dataclass
class World:
    services: Services
    clock: Clock
    signin: SignIn = dataclasses.field(init=False)
    finished: list[LoginTransaction] = dataclasses.field(default_factory=list)
    asked: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    region_auth_time: datetime | None = None
    stale: bool = False
    upstream_sub: str = "zj-user-1"
    acr: str | None = None
    amr: tuple[str, ...] = ("pwd",)

    def __post_init__(self) -> None:
        s = self.services
        tokens = TokenService(
            s.settings,
            s.store,
            s.registry,
            s.keys,
            s.sealer,
            Assurance(s.policy),
            self.clock,
            events=s.events,
        )
        self.signin = SignIn(
            settings=s.settings,
            store=s.store,
            registry=s.registry,
            sessions=s.sessions,
            tokens=tokens,
            assurance=Assurance(s.policy),
            sealer=s.sealer,
            broker=lambda region: FakeRegion(region, self),
            clock=self.clock,
            events=s.events,
        )

    def put_region(self, code: str, kind: RegionKind = RegionKind.PROVINCE, **extra: Any) -> None:
        region = Region(
            code=code,
            names=Names(zh=code, en=code),
            kind=kind,
            issuer=f"https://idp.example.cn/realms/{code}",
            client_id="tongxing-gateway",
            client_secret="upstream-secret",  # type: ignore[arg-type]
            **extra,
        )
        self.services.registry.put_region(region, NOW)

    def put_portal(self, client_id: str = "portal-a", **extra: Any) -> Portal:
        values: dict[str, Any] = {
            "client_id": client_id,
            "names": Names(zh="门户", en="Portal"),
            "owner": "zj",
            "redirect_uris": [REDIRECT],
            "client_secret_hash": hash_secret("portal-secret"),
            "scopes": ["openid", "profile", "phone"],
        } | extra
        portal = Portal(**values)
        self.services.registry.put_portal(portal, NOW)
        return portal

    def pending_rows(self) -> list[Any]:
        store = self.services.store
        assert isinstance(store, SqlStore)
        with store.engine.connect() as conn:
            return list(conn.execute(text("SELECT * FROM pending_authorizations")).all())


@pytest.fixture(scope="module")
def keys() -> KeyRing:
    return KeyRing.generate(now=datetime.now(UTC))


@pytest.fixture
def services(tmp_path: Path, keys: KeyRing) -> Iterator[Services]:
    settings = Settings.model_validate(
        {
            "issuer": ISSUER,
            "data_dir": tmp_path,
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
    built = wire(settings, store, keys)
    yield built
    built.close()


@pytest.fixture
def world(services: Services) -> World:
    world = World(services, Clock())
    world.put_region("zj")
    world.put_region("sh", RegionKind.MUNICIPALITY)
    world.put_region("ga", RegionKind.DEPARTMENT)
    world.put_portal()
    return world


def request(**changes: Any) -> AuthorizationRequest:
    values: dict[str, Any] = {
        "client_id": "portal-a",
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": PORTAL_STATE,
        "nonce": "portal-nonce",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    } | changes
    return AuthorizationRequest(**values)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def upstream_state(answer: ToRegion) -> str:
    return query(answer.url)["state"]


def to_region(world: World, region: str = "zj", **changes: Any) -> ToRegion:
    answer = world.signin.begin(request(region=region, **changes), None)
    assert isinstance(answer, ToRegion)
    return answer


def come_back(world: World, answer: ToRegion, code: str = "zj", **params: str) -> Completion:
    """The browser that left for the region comes back to its callback."""
    values = {"state": [upstream_state(answer)], "code": ["upstream-code"]}
    values |= {k: [v] for k, v in params.items()}
    return world.signin.complete(code, values, answer.pending.value)


def signed_in(world: World, **changes: Any) -> str:
    """A first sign-in through the region: the SSO session's id."""
    completion = come_back(world, to_region(world, **changes))
    assert completion.session is not None
    return completion.session.value


def redeemed_claims(world: World, answer: ToPortal) -> dict[str, Any]:
    code = query(answer.url)["code"]
    record = world.services.store.redeem_code(token_hash(code), world.clock())
    return dict(record.claims)


# --- begin: the chooser, the region, or the answer at once -----------------------------------


def test_without_a_session_the_chooser_lists_provinces_first_and_remembers_nothing_else(
    world: World,
) -> None:
    answer = world.signin.begin(request(), None)
    assert isinstance(answer, ChooseRegion)
    assert [r.code for r in answer.regions] == ["sh", "zj", "ga"]
    assert answer.form == form_handle(answer.pending.value)
    assert answer.pending.max_age == 600
    [row] = world.pending_rows()
    assert row.stage == "choosing"
    assert row.id_hash == token_hash(answer.pending.value)  # only the hash of the cookie's id


def test_the_chooser_answer_sends_the_person_to_the_chosen_region(world: World) -> None:
    chooser = world.signin.begin(request(), None)
    assert isinstance(chooser, ChooseRegion)
    answer = world.signin.choose(chooser.pending.value, chooser.form, "zj")
    assert isinstance(answer, ToRegion)
    assert answer.region == "zj"
    assert answer.url.startswith("https://idp.example.cn/realms/zj/auth?")
    assert answer.pending.value == chooser.pending.value
    [row] = world.pending_rows()
    assert row.stage == "at_region"
    # The region's state is kept as its hash only.
    assert row.upstream_state_hash == token_hash(upstream_state(answer))
    assert upstream_state(answer) not in str(row)


def test_an_unknown_or_disabled_region_shows_the_chooser_again(world: World) -> None:
    world.put_region("hb", enabled=False)
    chooser = world.signin.begin(request(region="hb"), None)  # the portal named a disabled one
    assert isinstance(chooser, ChooseRegion)
    assert "hb" not in [r.code for r in chooser.regions]
    for code in ("hb", "nowhere", None):
        again = world.signin.choose(chooser.pending.value, chooser.form, code)
        assert isinstance(again, ChooseRegion)


def test_the_chooser_answer_must_carry_its_own_form_and_cookie(world: World) -> None:
    """A chooser page answers only its own request: not one a cross-site navigation or another
    tab started in the same browser since."""
    mine = world.signin.begin(request(), None)
    other = world.signin.begin(request(client_id="portal-a", state="other"), None)
    assert isinstance(mine, ChooseRegion)
    assert isinstance(other, ChooseRegion)
    with pytest.raises(LoginExpired):
        world.signin.choose(other.pending.value, mine.form, "zj")
    with pytest.raises(LoginExpired):
        world.signin.choose(None, mine.form, "zj")
    with pytest.raises(LoginExpired):
        world.signin.choose(mine.pending.value, None, "zj")
    assert isinstance(world.signin.choose(mine.pending.value, mine.form, "zj"), ToRegion)


def test_a_region_named_by_the_portal_is_visited_at_once(world: World) -> None:
    answer = to_region(world, max_age=300)
    [row] = world.pending_rows()
    record = world.services.store.get_pending_authorization(row.id_hash, world.clock())
    assert record is not None
    assert record.stage is PendingStage.AT_REGION
    assert record.upstream is not None
    assert record.upstream.max_age == record.request.max_age == 300
    assert record.upstream.state_hash == token_hash(upstream_state(answer))


def test_prompt_none_without_a_session_is_login_required_and_keeps_nothing(world: World) -> None:
    answer = world.signin.begin(request(prompt=("none",)), None)
    assert isinstance(answer, ToPortal)
    assert answer.error == "login_required"
    assert answer.url.startswith(f"{REDIRECT}?")
    assert query(answer.url) == {"error": "login_required", "iss": ISSUER, "state": PORTAL_STATE}
    assert world.pending_rows() == []


# --- complete: the region's answer ----------------------------------------------------------


def test_the_region_answer_opens_a_session_and_answers_the_portal_with_a_code(
    world: World,
) -> None:
    completion = come_back(world, to_region(world))
    assert completion.session is not None
    assert completion.session.max_age == 8 * 3600
    answer = completion.answer
    assert isinstance(answer, ToPortal)
    assert answer.error is None
    assert answer.url.startswith(f"{REDIRECT}?code=")
    params = query(answer.url)
    assert params["state"] == PORTAL_STATE
    assert params["iss"] == ISSUER
    assert redeemed_claims(world, answer)["acr"] == "loa1"
    assert world.pending_rows() == []  # answered: the portal's state is no longer kept
    session = world.services.sessions.find(completion.session.value, world.clock())
    assert session is not None
    assert session.claims["home_region"] == "zj"
    assert PERSON_ID not in str(session.claims)  # sealed


def test_a_live_session_answers_at_once_and_keeps_no_record(world: World) -> None:
    session_id = signed_in(world)
    answer = world.signin.begin(request(state="second"), session_id)
    assert isinstance(answer, ToPortal)
    assert query(answer.url)["state"] == "second"
    assert world.pending_rows() == []


def test_prompt_login_or_an_exceeded_max_age_asks_for_a_fresh_sign_in(world: World) -> None:
    session_id = signed_in(world)
    assert isinstance(world.signin.begin(request(prompt=("login",)), session_id), ChooseRegion)
    world.clock.advance(timedelta(minutes=2))
    assert isinstance(world.signin.begin(request(max_age=60), session_id), ChooseRegion)
    assert isinstance(world.signin.begin(request(max_age=600), session_id), ToPortal)
    # The sign-in that follows satisfies them: the portal gets its code.
    completion = come_back(world, to_region(world, prompt=("login",), max_age=0))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error is None


def test_prompt_login_max_age_and_mapped_acr_values_are_forwarded_to_the_region(
    world: World,
) -> None:
    mapping = {"kc-pwd": "loa1", "kc-sms": "loa2", "kc-ukey": "loa3"}
    world.put_region("zj", acr_mapping=mapping)
    to_region(world, prompt=("login",), max_age=300, acr_values="loa2 loa3")
    to_region(world)
    world.put_region("zj", acr_mapping={"kc-pwd": "loa1"})
    to_region(world, acr_values="loa2")
    assert world.asked == [
        {"prompt": "login", "max_age": 300, "acr_values": ("kc-sms", "kc-ukey")},
        {"prompt": None, "max_age": None, "acr_values": None},
        {"prompt": None, "max_age": None, "acr_values": None},  # no region acr is high enough
    ]


def test_auth_time_is_the_region_s_not_the_callback_s(world: World) -> None:
    world.region_auth_time = NOW - timedelta(minutes=5)
    completion = come_back(world, to_region(world, scope="openid"))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error is None
    claims = redeemed_claims(world, completion.answer)
    assert claims["auth_time"] == int((NOW - timedelta(minutes=5)).timestamp())


def test_a_region_answering_prompt_login_from_its_old_session_is_login_required(
    world: World,
) -> None:
    world.region_auth_time = NOW - timedelta(minutes=5)  # before the round trip began
    completion = come_back(world, to_region(world, prompt=("login",)))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error == "login_required"
    assert "code" not in query(completion.answer.url)
    assert completion.session is None
    assert world.pending_rows() == []
    world.region_auth_time = NOW - timedelta(seconds=5)  # within the clock skew
    assert come_back(world, to_region(world, prompt=("login",))).answer.error is None  # type: ignore[union-attr]


def test_a_region_sign_in_older_than_max_age_is_login_required_never_a_code(
    world: World,
) -> None:
    world.region_auth_time = NOW - timedelta(minutes=10)
    completion = come_back(world, to_region(world, max_age=60))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error == "login_required"
    assert completion.session is None
    world.region_auth_time, world.stale = None, True  # the broker's own check said so
    completion = come_back(world, to_region(world, max_age=60))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error == "login_required"
    assert query(completion.answer.url)["state"] == PORTAL_STATE


def test_an_id_token_hint_must_name_the_person(world: World) -> None:
    session_id = signed_in(world)
    session = world.services.sessions.find(session_id, world.clock())
    assert session is not None
    assert isinstance(
        world.signin.begin(request(hinted_subject="someone"), session_id), ChooseRegion
    )
    same = world.signin.begin(request(hinted_subject=session.subject), session_id)
    assert isinstance(same, ToPortal)
    assert same.error is None
    completion = come_back(world, to_region(world, hinted_subject="someone"))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error == "login_required"


def test_a_callback_is_answered_once(world: World) -> None:
    answer = to_region(world)
    come_back(world, answer)
    with pytest.raises(SignInLinkExpired):
        come_back(world, answer)


def test_a_callback_for_another_browser_is_refused_and_signs_nobody_in(world: World) -> None:
    """Login CSRF (RFC 6749 §10.12): the attacker's callback URL, opened in the victim's browser,
    which holds no cookie or the cookie of its own sign-in."""
    attackers = to_region(world)
    victims = to_region(world, state="victim")
    for cookie in (None, victims.pending.value, "forged"):
        values = {"state": [upstream_state(attackers)], "code": ["x"]}
        with pytest.raises(SignInFromAnotherBrowser):
            world.signin.complete("zj", values, cookie)
        attackers = to_region(world)
    assert world.finished == []


def test_a_callback_without_a_known_region_or_state_is_not_recognised(world: World) -> None:
    answer = to_region(world)
    with pytest.raises(CallbackNotRecognised):
        world.signin.complete("nowhere", {"state": [upstream_state(answer)]}, answer.pending.value)
    with pytest.raises(CallbackNotRecognised):
        world.signin.complete("zj", {}, answer.pending.value)


def test_a_pending_authorization_expires(world: World) -> None:
    answer = to_region(world)
    chooser = world.signin.begin(request(), None)
    assert isinstance(chooser, ChooseRegion)
    world.clock.advance(timedelta(minutes=10))
    with pytest.raises(SignInLinkExpired):
        come_back(world, answer)
    with pytest.raises(LoginExpired):
        world.signin.choose(chooser.pending.value, chooser.form, "zj")


def test_a_region_disabled_during_the_sign_in_is_not_believed(world: World) -> None:
    answer = to_region(world)
    world.put_region("zj", enabled=False)
    with pytest.raises(RegionUnavailable):
        come_back(world, answer)
    assert world.finished == []


def test_a_response_for_one_region_at_another_callback_is_a_mix_up(world: World) -> None:
    with pytest.raises(MixUpError):
        come_back(world, to_region(world), code="sh")


def test_choosing_again_starts_a_new_round_trip_and_the_old_one_is_not_answered(
    world: World,
) -> None:
    chooser = world.signin.begin(request(), None)
    assert isinstance(chooser, ChooseRegion)
    first = world.signin.choose(chooser.pending.value, chooser.form, "zj")
    second = world.signin.choose(chooser.pending.value, chooser.form, "zj")
    assert isinstance(first, ToRegion)
    assert isinstance(second, ToRegion)
    with pytest.raises(SignInLinkExpired):
        come_back(world, first)
    assert isinstance(come_back(world, second).answer, ToPortal)


def test_cancelling_at_the_region_tells_the_portal_and_signs_nobody_in(world: World) -> None:
    completion = come_back(world, to_region(world), error="access_denied")
    assert completion.session is None
    assert isinstance(completion.answer, ToPortal)
    assert query(completion.answer.url) == {
        "error": "access_denied",
        "error_description": "sign-in was cancelled at the region",
        "iss": ISSUER,
        "state": PORTAL_STATE,
    }
    assert world.pending_rows() == []


def test_a_portal_removed_during_the_sign_in_gets_a_page_and_the_session_stays(
    world: World,
) -> None:
    answer = to_region(world)
    world.services.registry.delete_portal("portal-a")
    completion = come_back(world, answer)
    assert isinstance(completion.answer, UnknownClient)
    assert completion.session is not None
    assert world.pending_rows() == []


# --- the policies' verdict ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("registration", "error"),
    [
        ({"allowed_home_regions": ["sh"]}, "access_denied"),
        ({"sector": "tax"}, "unmet_authentication_requirements"),
        ({"grant_types": ["client_credentials"]}, "unauthorized_client"),
    ],
)
def test_a_refusal_reaches_the_portal_with_state_and_iss_only(
    world: World, registration: dict[str, Any], error: str
) -> None:
    world.put_portal(**registration)
    completion = come_back(world, to_region(world))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error == error
    params = query(completion.answer.url)
    assert set(params) == {"error", "error_description", "iss", "state"}
    assert "张三" not in completion.answer.url


# --- step-up --------------------------------------------------------------------------------


def test_a_loa2_portal_waits_for_a_step_up_of_this_session_then_gets_its_code(
    world: World,
) -> None:
    world.put_portal(minimum_level="loa2")
    answer = to_region(world)
    completion = come_back(world, answer)
    assert isinstance(completion.answer, StepUp)
    assert completion.session is not None
    pending, session_id = completion.answer.pending.value, completion.session.value
    assert pending == answer.pending.value
    assert completion.answer.pending.max_age == 30 * 60

    session = world.signin.step_up_session(pending, session_id)
    other_session = signed_in(world, state="other")
    with pytest.raises(LoginExpired):
        world.signin.step_up_session(pending, other_session)
    with pytest.raises(LoginExpired):
        world.signin.step_up_session(None, session_id)
    # Without the second factor, resuming only shows the step-up again.
    assert isinstance(world.signin.resume(pending, session_id), StepUp)

    world.signin.stepped_up(session, ("otp",))
    code = world.signin.resume(pending, session_id)
    assert isinstance(code, ToPortal)
    claims = redeemed_claims(world, code)
    assert claims["acr"] == "loa2"
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    with pytest.raises(LoginExpired):  # single use
        world.signin.resume(pending, session_id)


def test_a_step_up_with_prompt_none_is_interaction_required(world: World) -> None:
    session_id = signed_in(world)
    world.put_portal("portal-b", minimum_level="loa2")
    answer = world.signin.begin(request(client_id="portal-b", prompt=("none",)), session_id)
    assert isinstance(answer, ToPortal)
    assert answer.error == "interaction_required"
    stepping = world.signin.begin(request(client_id="portal-b"), session_id)
    assert isinstance(stepping, StepUp)  # a live session that needs more gets a record now
    assert world.signin.step_up_session(stepping.pending.value, session_id).acr == "loa1"


# --- consent --------------------------------------------------------------------------------


def test_consent_is_asked_remembered_and_then_not_asked_again(world: World) -> None:
    world.put_portal(consent_claims=["name"])
    completion = come_back(world, to_region(world))
    asked = completion.answer
    assert isinstance(asked, AskConsent)
    assert asked.claims == ("name",)
    assert completion.session is not None
    session_id = completion.session.value
    with pytest.raises(ConsentRequestExpired):
        world.signin.consent(asked.pending.value, "wrong-form", session_id, True)
    code = world.signin.consent(asked.pending.value, asked.form, session_id, True)
    assert isinstance(code, ToPortal)
    assert code.error is None
    again = world.signin.begin(request(state="again"), session_id)
    assert isinstance(again, ToPortal)
    assert again.error is None
    with pytest.raises(ConsentRequestExpired):  # answered once
        world.signin.consent(asked.pending.value, asked.form, session_id, True)


def test_consent_refused_is_access_denied_and_prompt_none_is_consent_required(
    world: World,
) -> None:
    world.put_portal(consent_claims=["name"])
    completion = come_back(world, to_region(world))
    asked = completion.answer
    assert isinstance(asked, AskConsent)
    assert completion.session is not None
    session_id = completion.session.value
    denied = world.signin.consent(asked.pending.value, asked.form, session_id, False)
    assert isinstance(denied, ToPortal)
    assert query(denied.url)["error"] == "access_denied"
    quiet = world.signin.begin(request(prompt=("none",)), session_id)
    assert isinstance(quiet, ToPortal)
    assert quiet.error == "consent_required"


# --- the portal's answer -------------------------------------------------------------------


def test_the_answer_keeps_the_query_of_the_registered_redirect_uri(world: World) -> None:
    uri = "https://portal.zj.gov.cn/cb?tenant=zj"
    world.put_portal(redirect_uris=[uri])
    completion = come_back(world, to_region(world, redirect_uri=uri))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.url.startswith(f"{uri}&code=")
    assert query(completion.answer.url)["tenant"] == "zj"
    refused = world.signin.refused(RefusedRequest("invalid_request", "bad", uri, None))
    assert refused.url.startswith(f"{uri}&error=invalid_request&iss=")
    assert query(refused.url) == {
        "tenant": "zj",
        "error": "invalid_request",
        "iss": ISSUER,
        "error_description": "bad",
    }


def test_amr_is_what_the_region_said_and_nothing_when_it_said_nothing(world: World) -> None:
    """THREAT_MODEL row 3: no ``pwd`` is assumed for a region that names no method."""
    world.amr = ()
    completion = come_back(world, to_region(world, scope="openid"))
    assert isinstance(completion.answer, ToPortal)
    assert completion.session is not None
    session = world.signin.sessions.find(completion.session.value, world.clock())
    assert session is not None
    assert session.amr == ()
    assert redeemed_claims(world, completion.answer)["amr"] == []
    world.amr = ("hwk", "pin")
    completion = come_back(world, to_region(world, scope="openid", prompt=("login",)))
    assert isinstance(completion.answer, ToPortal)
    assert redeemed_claims(world, completion.answer)["amr"] == ["hwk", "pin"]


def test_a_region_below_the_requested_level_is_unmet_never_reported_higher(world: World) -> None:
    """The region vouched loa1; the portal asked loa3, which only a region can vouch for: the
    portal hears unmet_authentication_requirements, no code. A region saying loa3 above its
    ceiling is worth the ceiling, and is answered as such (THREAT_MODEL rows 2 and 3)."""
    world.put_region("zj", acr_mapping={"kc-pwd": "loa1", "kc-face": "loa3"})
    world.acr = "kc-pwd"
    completion = come_back(world, to_region(world, acr_values="loa3"))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error == "unmet_authentication_requirements"
    assert "code" not in query(completion.answer.url)
    world.acr = "kc-face"  # the region says loa3, above the platform's ceiling (loa2 here)
    completion = come_back(world, to_region(world, acr_values="loa3", prompt=("login",)))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error == "unmet_authentication_requirements"
    completion = come_back(world, to_region(world, acr_values="loa2", prompt=("login",)))
    assert isinstance(completion.answer, ToPortal)
    assert completion.answer.error is None
    assert redeemed_claims(world, completion.answer)["acr"] == "loa2"


def test_a_number_linked_through_another_region_is_allowed_and_recorded(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """THREAT_MODEL row 2: people move, so the link is made; it is said (IdentityLinked, which
    the audit trail and the log hear), by subject id and regions only, never the number; a
    second sign-in through the same region is quiet."""
    heard: list[Event] = []
    world.services.events.subscribe(heard.append)
    with caplog.at_level(logging.INFO, logger="gateway.signin"):
        first = come_back(world, to_region(world, scope="openid"))
        assert not [e for e in heard if isinstance(e, IdentityLinked)]
        world.upstream_sub = "sh-user-9"
        world.clock.advance(timedelta(seconds=1))
        second = come_back(world, to_region(world, "sh", scope="openid"), code="sh")
        world.clock.advance(timedelta(seconds=1))
        come_back(world, to_region(world, "sh", scope="openid", prompt=("login",)), code="sh")
    assert first.session is not None
    assert second.session is not None
    [linked] = [e for e in heard if isinstance(e, IdentityLinked)]
    subject = world.signin.sessions.find(second.session.value, world.clock())
    assert subject is not None
    assert linked == IdentityLinked(subject=subject.subject, region="sh", earlier_regions=("zj",))
    assert PERSON_ID not in caplog.text
    assert PERSON_ID not in repr(heard)
    links = world.services.store.list_subject_links(subject.subject)
    assert sorted(link.region for link in links) == ["sh", "zj"]


def test_the_portal_state_never_reaches_a_log_line(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.put_portal(minimum_level="loa2")
    with caplog.at_level(logging.DEBUG):
        completion = come_back(world, to_region(world))
        assert completion.session is not None
        assert isinstance(completion.answer, StepUp)
        [row] = world.pending_rows()
        record = world.services.store.get_pending_authorization(row.id_hash, world.clock())
        logging.getLogger("test").info("record: %r", record)
        world.signin.stepped_up(
            world.signin.step_up_session(completion.answer.pending.value, completion.session.value),
            ("otp",),
        )
        world.signin.resume(completion.answer.pending.value, completion.session.value)
    assert PORTAL_STATE not in caplog.text
    assert record is not None
    assert record.stage is PendingStage.STEP_UP


def test_the_sign_in_and_the_token_side_import_neither_flask_nor_authlib() -> None:
    """House rule 1: the protocol-free core can be used, and tested, without either."""
    probe = (
        "import sys, gateway.signin, gateway.tokens; "
        "print(sorted(m for m in ('flask', 'authlib') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
