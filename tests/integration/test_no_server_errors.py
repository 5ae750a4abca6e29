"""Bad input costs no more than a refusal (THREAT_MODEL row 7, issue 13): no byte sequence sent to
a public endpoint gets a 5xx, on either store engine, and none grows the store without bound.

The real gateway (:func:`gateway.app.create_app` over :func:`gateway.services.build_services`:
settings, ``SqlStore``, ``KeyRing``) on SQLite and on PostgreSQL, driven in process through
Flask's test client. One region is registered whose issuer is a closed loopback port (a login
that reaches it is refused at once, never after a network timeout), and two portals, one
confidential and one public. Hypothesis sends query strings and form bodies made of percent-
encoded arbitrary bytes (NUL, control characters, invalid UTF-8, huge values, repeated
parameters), junk ``Authorization`` headers and cookies, and arbitrary paths below
``/callback/``. Each parameter is either plausible (the registered client, its redirect URI) or
junk, so that the junk reaches past the first check. Examples are derandomized: a CI run is
reproducible.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_from_bytes

import pytest
import sqlalchemy
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tongxing_dev.postgres import PostgresEndpoint
from tongxing_dev.process import free_port

from gateway.app import create_app
from gateway.provider.answers import PENDING_COOKIE, REGION_COOKIE
from gateway.services import Services, build_services
from gateway.sessions import SESSION_COOKIE
from gateway.settings import Settings
from gateway.store.contract import SsoSession
from gateway.store.contract.common import token_hash

ISSUER = "https://tongxing.example.cn"
REDIRECT_URI = "https://portal.example.cn/callback"
PUBLIC_REDIRECT_URI = "https://app.example.cn/callback"
ADMIN_TOKEN = secrets.token_urlsafe(32)

# Few examples per endpoint, each a handful of requests: the module runs in well under two
# minutes on two cores for both engines. The deadline is generous (a PostgreSQL round trip on a
# loaded CI machine) but bounds a request that would hang; derandomize makes CI reproducible and
# needs no example database. ``too_slow`` and ``data_too_large`` are suppressed because the huge
# values (up to ~100 KB) are the point of the test, not an accident of the strategy.
FUZZ = settings(
    max_examples=40,
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(repr=False)
class Gateway:
    client: FlaskClient
    services: Services
    count_pending: sqlalchemy.Engine
    confidential_id: str
    confidential_secret: str
    public_id: str
    session_id: str  # a live SSO session's cookie value
    flask_session: str  # Flask's signed session cookie, holding CSRF tokens of the forms

    def pending_rows(self) -> int:
        with self.count_pending.connect() as conn:
            return int(
                conn.execute(
                    sqlalchemy.text("SELECT count(*) FROM pending_authorizations")
                ).scalar_one()
            )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'store.db'}"
        return
    postgres: PostgresEndpoint = request.getfixturevalue("postgres")
    name = f"fuzz_{uuid.uuid4().hex[:16]}"
    postgres.create_database(name)
    yield postgres.sqlalchemy_url(name)
    postgres.drop_database(name)


@pytest.fixture(scope="module")
def gateway(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    settings_ = Settings.model_validate(
        {
            "issuer": ISSUER,
            "data_dir": tmp_path_factory.mktemp("gateway"),
            "database_url": database_url,
            "create_keys": True,
            "insecure_allow_http": True,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": ADMIN_TOKEN,
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    services = build_services(settings_)
    app = create_app(services=services)
    admin = app.test_client()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    # A closed loopback port: a login that reaches the region is refused at once (no timeout).
    region = {
        "names": {"zh": "浙江", "en": "Zhejiang"},
        "kind": "province",
        "issuer": f"http://127.0.0.1:{free_port()}/realms/zj",
        "client_id": "tongxing",
        "client_secret": "upstream-secret-value",
    }
    assert admin.put("/admin/v1/regions/zj", json=region, headers=auth).status_code == 201
    portal = {
        "names": {"zh": "门户", "en": "Portal"},
        "owner": "zj",
        "scopes": ["openid", "profile"],
    }
    confidential = admin.put(
        "/admin/v1/portals/conf",
        json={
            **portal,
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
        },
        headers=auth,
    )
    assert confidential.status_code == 201, confidential.text
    public = admin.put(
        "/admin/v1/portals/pub",
        json={
            **portal,
            "redirect_uris": [PUBLIC_REDIRECT_URI],
            "token_endpoint_auth_method": "none",
        },
        headers=auth,
    )
    assert public.status_code == 201, public.text

    # A signed-in citizen: the forms' checks behind the session check get junk too.
    now = datetime.now(UTC)
    subject = services.store.link_subject("k" * 64, "zj", "zj-sub-1", now)
    session_id = services.sessions.new_id()
    services.sessions.start(
        SsoSession(
            session_hash=token_hash(session_id),
            subject=subject.id,
            region="zj",
            auth_time=now,
            acr="loa1",
            amr=("pwd",),
            created_at=now,
            expires_at=now + timedelta(hours=8),
        )
    )
    browser = app.test_client()
    browser.set_cookie(SESSION_COOKIE, session_id)
    assert browser.get("/consents").status_code == 200  # puts the consents CSRF token in
    assert browser.get("/logout").status_code == 200  # the logout confirmation's
    flask_session = browser.get_cookie("session")
    assert flask_session is not None

    counter = sqlalchemy.create_engine(
        database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    )
    yield Gateway(
        client=app.test_client(use_cookies=False),
        services=services,
        count_pending=counter,
        confidential_id="conf",
        confidential_secret=confidential.get_json()["client_secret"],
        public_id="pub",
        session_id=session_id,
        flask_session=flask_session.value,
    )
    counter.dispose()
    services.close()


# --- strategies -----------------------------------------------------------------------------

SPECIAL = [b"", b"\x00", b"\r\n", b"\x7f", b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"%", b"+"]

junk_bytes = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(SPECIAL),
    # Huge values (up to ~100 KB), built by repetition so that generating them costs nothing.
    st.tuples(st.binary(min_size=1, max_size=8), st.integers(1_000, 100_000)).map(
        lambda pair: (pair[0] * (pair[1] // len(pair[0]) + 1))[: pair[1]]
    ),
)


def plausible(*values: str) -> st.SearchStrategy[bytes]:
    """A parameter value: one of ``values`` (to get past the first checks) or junk."""
    return st.one_of(st.sampled_from([v.encode() for v in values]), junk_bytes)


def query(fields: dict[str, st.SearchStrategy[bytes]]) -> st.SearchStrategy[bytes]:
    """A query string or form body: known fields, repeated or not, and junk names."""
    known = st.lists(
        st.sampled_from(sorted(fields)).flatmap(
            lambda name: fields[name].map(lambda value: (name.encode(), value))
        ),
        max_size=len(fields) + 3,
    )
    extra = st.lists(st.tuples(junk_bytes, junk_bytes), max_size=2)
    return st.tuples(known, extra, st.booleans()).map(
        lambda parts: b"&".join(
            quote_from_bytes(k).encode() + b"=" + quote_from_bytes(v).encode()
            if parts[2]
            else k.replace(b"&", b"") + b"=" + v.replace(b"&", b"")  # raw, not encoded
            for k, v in parts[0] + parts[1]
        )
    )


def latin1(raw: bytes) -> str:
    """A header value as a WSGI server hands it over (RFC 9110 §5.5: no CR or LF)."""
    return raw.replace(b"\r", b"").replace(b"\n", b"").decode("latin-1")


authorization = st.one_of(
    st.none(),
    st.builds(lambda b: "Basic " + base64.b64encode(b).decode(), junk_bytes),
    st.builds(lambda b: "Basic " + latin1(b), junk_bytes),
    st.builds(lambda b: "Bearer " + latin1(b), junk_bytes),
    junk_bytes.map(latin1),
)


@st.composite
def cookies(draw: st.DrawFn, gateway: Gateway) -> str | None:
    names = [SESSION_COOKIE, PENDING_COOKIE, REGION_COOKIE, "session"]
    jar = []
    for name in draw(st.lists(st.sampled_from(names), max_size=4)):
        real = {SESSION_COOKIE: gateway.session_id, "session": gateway.flask_session}.get(name)
        value = draw(st.one_of(junk_bytes.map(latin1), st.just(real or "")))
        jar.append(f"{name}={value}")
    return "; ".join(jar) if jar else None


def send(
    gateway: Gateway,
    method: str,
    path: str,
    qs: bytes,
    body: bytes | None,
    auth: str | None,
    cookie: str | None,
) -> None:
    """One request; it must not be a server error, and may add at most one pending record."""
    before = gateway.pending_rows()
    environ = {"QUERY_STRING": qs.decode("latin-1")}  # the raw bytes, as a WSGI server gives them
    if auth is not None:
        environ["HTTP_AUTHORIZATION"] = auth
    if cookie is not None:
        environ["HTTP_COOKIE"] = latin1(cookie.encode("latin-1"))
    response = gateway.client.open(
        path,
        method=method,
        data=body,
        content_type="application/x-www-form-urlencoded" if body is not None else None,
        environ_overrides=environ,
    )
    assert response.status_code < 500, (method, path, qs[:300], (body or b"")[:300], auth, cookie)
    assert gateway.pending_rows() <= before + 1


# --- the endpoints --------------------------------------------------------------------------

AUTHORIZE = {
    "response_type": plausible("code", "code id_token", "token"),
    "client_id": plausible("conf", "pub"),
    "redirect_uri": plausible(REDIRECT_URI, PUBLIC_REDIRECT_URI),
    "scope": plausible("openid", "openid profile", "openid offline_access"),
    "state": junk_bytes,
    "nonce": junk_bytes,
    "prompt": plausible("none", "login", "consent", "none login"),
    "max_age": plausible("0", "60", "-1", "99999999999"),
    "code_challenge": plausible("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
    "code_challenge_method": plausible("S256", "plain"),
    "region": plausible("zj", "sh"),
    "login_hint": junk_bytes,
    "acr_values": plausible("loa1", "loa2"),
    "ui_locales": plausible("zh-CN", "en"),
    "id_token_hint": junk_bytes,
    "pending": junk_bytes,
}
TOKEN = {
    "grant_type": plausible(
        "authorization_code", "refresh_token", "client_credentials", "password"
    ),
    "code": junk_bytes,
    "redirect_uri": plausible(REDIRECT_URI, PUBLIC_REDIRECT_URI),
    "code_verifier": junk_bytes,
    "refresh_token": junk_bytes,
    "client_id": plausible("conf", "pub"),
    "client_secret": junk_bytes,
    "client_assertion_type": plausible("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
    "client_assertion": junk_bytes,
    "scope": plausible("openid", "openid profile"),
    "token": junk_bytes,
    "token_type_hint": plausible("access_token", "refresh_token"),
}
CALLBACK = {
    "code": junk_bytes,
    "state": junk_bytes,
    "iss": plausible("http://127.0.0.1/realms/zj"),
    "error": plausible("access_denied", "login_required"),
    "error_description": junk_bytes,
    "session_state": junk_bytes,
}
LOGOUT = {
    "id_token_hint": junk_bytes,
    "client_id": plausible("conf", "pub"),
    "post_logout_redirect_uri": plausible("https://portal.example.cn/bye"),
    "state": junk_bytes,
    "ui_locales": plausible("zh-CN"),
    "csrf": junk_bytes,
}
FORMS = {
    "csrf": junk_bytes,
    "decision": plausible("allow", "deny"),
    "pending": junk_bytes,
    "client_id": plausible("conf", "pub"),
    "code": plausible("123456"),
    "recovery_code": junk_bytes,
}


def with_client_secret(gateway: Gateway) -> st.SearchStrategy[str | None]:
    """Authorization for the token endpoints: junk, or the confidential portal's real one."""
    real = (
        "Basic "
        + base64.b64encode(
            f"{gateway.confidential_id}:{gateway.confidential_secret}".encode()
        ).decode()
    )
    return st.one_of(authorization, st.just(real))


@FUZZ
@given(data=st.data())
def test_authorize_never_fails_with_a_server_error(gateway: Gateway, data: st.DataObject) -> None:
    method = data.draw(st.sampled_from(["GET", "POST"]))
    fields = data.draw(query(AUTHORIZE))
    qs, body = (fields, None) if method == "GET" else (b"", fields)
    send(gateway, method, "/authorize", qs, body, None, data.draw(cookies(gateway)))


@FUZZ
@given(data=st.data())
def test_callback_never_fails_with_a_server_error(gateway: Gateway, data: st.DataObject) -> None:
    region = data.draw(st.one_of(st.just(b"zj"), st.just(b"sh"), junk_bytes.filter(bool)))
    path = "/callback/" + quote_from_bytes(region[:2000], safe="")
    qs = data.draw(query(CALLBACK))
    send(gateway, "GET", path, qs, None, None, data.draw(cookies(gateway)))


@FUZZ
@given(data=st.data())
def test_token_endpoints_never_fail_with_a_server_error(
    gateway: Gateway, data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from(["/token", "/revoke", "/introspect"]))
    body = data.draw(query(TOKEN))
    send(gateway, "POST", path, b"", body, data.draw(with_client_secret(gateway)), None)


@FUZZ
@given(data=st.data())
def test_userinfo_never_fails_with_a_server_error(gateway: Gateway, data: st.DataObject) -> None:
    method = data.draw(st.sampled_from(["GET", "POST"]))
    fields = data.draw(query({"access_token": junk_bytes}))
    qs, body = (fields, None) if method == "GET" else (b"", fields)
    send(gateway, method, "/userinfo", qs, body, data.draw(authorization), None)


@FUZZ
@given(data=st.data())
def test_logout_never_fails_with_a_server_error(gateway: Gateway, data: st.DataObject) -> None:
    method = data.draw(st.sampled_from(["GET", "POST"]))
    fields = data.draw(query(LOGOUT))
    qs, body = (fields, None) if method == "GET" else (b"", fields)
    send(gateway, method, "/logout", qs, body, None, data.draw(cookies(gateway)))


@FUZZ
@given(data=st.data())
def test_consent_and_mfa_forms_never_fail_with_a_server_error(
    gateway: Gateway, data: st.DataObject
) -> None:
    method, path = data.draw(
        st.sampled_from(
            [
                ("POST", "/consent"),
                ("GET", "/consents"),
                ("POST", "/consents/revoke"),
                ("GET", "/mfa"),
                ("POST", "/mfa/verify"),
                ("POST", "/mfa/cancel"),
                ("POST", "/consents/second-factor/enrol"),
                ("POST", "/consents/second-factor/confirm"),
                ("POST", "/consents/second-factor/remove"),
                ("GET", "/mfa/continue"),
                ("POST", "/mfa/continue"),
            ]
        )
    )
    fields = data.draw(query(FORMS))
    qs, body = (fields, None) if method == "GET" else (b"", fields)
    send(gateway, method, path, qs, body, None, data.draw(cookies(gateway)))
