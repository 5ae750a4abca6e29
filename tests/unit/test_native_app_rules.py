"""Native apps (RFC 8252) and the UserInfo endpoint's token methods (RFC 6750 §2), without
sockets: the redirect-URI rules of each application type, the portal's matching rule, the
authorization request and token redemption through the oauth package, the admin API, the
operator's Portal spec and the CRD's pattern, and how /userinfo takes an access token.

The attacks (THREAT_MODEL row 6, a portal gets only the redirect URIs it is registered for): a
native rule used to steal a web portal's codes (a web portal's loopback URI on another port), a
private-use scheme on a web portal, a scheme that runs something (``javascript:``), a look-alike
loopback host, a native app that keeps a secret or skips PKCE, a token in a URL.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import ValidationError
from realm_operator import models
from realm_operator.reconcile import ObjectRef, PortalReconciler
from realm_operator.settings import OperatorSettings

from gateway.app import create_app
from gateway.keys import KeyRing
from gateway.policy import default_policy_dir
from gateway.provider.oauth import current_oauth
from gateway.registry import AuthMethod, Names, Portal, hash_secret, loopback_redirect
from gateway.services import Services, wire
from gateway.settings import Settings
from gateway.signin import RefusedRequest
from gateway.store import AuthorizationRequest, SqlStore, SsoSession, token_hash
from gateway.tokens import User
from tongxing_api import vocabulary

NAMES = Names(zh="浙里办", en="Zheliban")
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
APP_SCHEME_URI = "cn.gov.zj.zlb:/oauth2redirect"
LOOPBACK = "http://127.0.0.1/oauth2/callback"
LOOPBACK_V6 = "http://[::1]:8400/oauth2/callback"
CLAIMED = "https://app.zj.gov.cn/oauth2/callback"
WEB_LOOPBACK = "http://127.0.0.1:8080/callback"


def challenge(verifier: str = VERIFIER) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def native(**changes: Any) -> Portal:
    values: dict[str, Any] = {
        "client_id": "zlb-app",
        "names": NAMES,
        "owner": "zj",
        "application_type": "native",
        "redirect_uris": [LOOPBACK, LOOPBACK_V6, APP_SCHEME_URI, CLAIMED],
    } | changes
    return Portal.model_validate(values)


def web(**changes: Any) -> Portal:
    values: dict[str, Any] = {
        "client_id": "zj-portal",
        "names": NAMES,
        "owner": "zj",
        "redirect_uris": [WEB_LOOPBACK, "https://portal.zj.gov.cn/callback"],
        "client_secret_hash": hash_secret("s" * 32),
    } | changes
    return Portal.model_validate(values)


# --- which redirect URIs each kind may register ---------------------------------------------

NATIVE_ACCEPTED = [
    "cn.gov.zj.zlb:/oauth2redirect",  # RFC 8252 §7.1's form
    "com.example.app:/",
    "cn.gov.zj.zlb:/oauth2redirect?from=gateway",
    "http://127.0.0.1/cb",  # §7.3: no port (the app's port is not known in advance)
    "http://127.0.0.1:8400/cb",
    "http://[::1]/cb",
    "https://app.zj.gov.cn/oauth2/callback",  # §7.2, claimed https
]

NATIVE_REFUSED = {
    "localhost": "http://localhost/cb",  # §8.3
    "localhost-with-port": "http://localhost:8400/cb",
    "other-loopback-address": "http://127.0.0.2/cb",
    "short-loopback-spelling": "http://127.1/cb",
    "http-elsewhere": "http://app.zj.gov.cn/cb",
    "no-dot-scheme": "zlb:/oauth2redirect",  # §7.1: reverse domain name
    "javascript": "javascript:alert(1)",
    "javascript-with-slash": "javascript:/alert(1)",
    "data": "data:/text/html,<script>alert(1)</script>",
    "file": "file:///etc/passwd",
    "vbscript": "vbscript:/msgbox",
    "upper-case-scheme": "Cn.Gov.Zj.Zlb:/oauth2redirect",
    "empty-label": "cn..zlb:/oauth2redirect",
    "trailing-dot": "cn.gov.zj.:/oauth2redirect",
    "digit-first": "1cn.gov:/oauth2redirect",
    "underscore": "cn.gov_zj.zlb:/oauth2redirect",
    "authority": "cn.gov.zj.zlb://oauth2redirect",
    "no-slash": "cn.gov.zj.zlb:oauth2redirect",
    "fragment": "cn.gov.zj.zlb:/oauth2redirect#x",
    "wildcard": "cn.gov.zj.zlb:/*",
    "dot-segment": "cn.gov.zj.zlb:/a/../oauth2redirect",
    "whitespace": "cn.gov.zj.zlb:/oauth 2",
    "invalid-port": "http://127.0.0.1:99999/cb",
    "userinfo": "http://user@127.0.0.1/cb",
}


@pytest.mark.parametrize("uri", NATIVE_ACCEPTED)
def test_a_native_app_may_register_loopback_private_use_and_claimed_https_uris(uri: str) -> None:
    assert vocabulary.check_redirect_uri(uri, application_type="native") == uri
    assert native(redirect_uris=[uri]).redirect_uris == [uri]


@pytest.mark.parametrize("uri", NATIVE_REFUSED.values(), ids=NATIVE_REFUSED.keys())
def test_a_native_app_may_not_register_localhost_or_any_other_scheme(uri: str) -> None:
    with pytest.raises(ValueError, match="redirect URI"):
        vocabulary.check_redirect_uri(uri, application_type="native")
    with pytest.raises(ValidationError):
        native(redirect_uris=[uri])


@pytest.mark.parametrize("uri", [APP_SCHEME_URI, "com.example.app:/", "javascript:alert(1)"])
def test_a_web_portal_may_not_register_a_private_use_scheme(uri: str) -> None:
    with pytest.raises(ValueError, match="https"):
        vocabulary.check_redirect_uri(uri)
    with pytest.raises(ValidationError, match="redirect_uris"):
        web(redirect_uris=[uri])
    with pytest.raises(ValidationError, match="post_logout_redirect_uris"):
        web(post_logout_redirect_uris=[uri])


def test_the_refused_schemes_are_named_in_the_message() -> None:
    with pytest.raises(ValueError, match="reverse-domain form"):
        vocabulary.check_redirect_uri("javascript:alert(1)", application_type="native")
    with pytest.raises(ValueError, match="localhost"):
        vocabulary.check_redirect_uri("http://localhost/cb", application_type="native")
    for scheme in sorted(vocabulary.UNSAFE_SCHEMES):
        assert not vocabulary.is_private_use_scheme(scheme)


@pytest.mark.parametrize("uri", NATIVE_ACCEPTED)
def test_the_crds_pattern_takes_every_uri_a_native_app_may_register(uri: str) -> None:
    assert re.fullmatch(vocabulary.PORTAL_REDIRECT_URI_PATTERN, uri)


@pytest.mark.parametrize(
    "uri",
    [uri for uri in NATIVE_REFUSED.values() if not uri.startswith("http") and "/../" not in uri],
)
def test_the_crds_pattern_refuses_the_schemes_no_kind_may_register(uri: str) -> None:
    """Dot segments aside (the gateway and the operator's model refuse them), a scheme the
    CRD's pattern lets through is one a native app may register; which kind may use it is a
    CEL rule's (tested against the API server)."""
    assert re.fullmatch(vocabulary.PORTAL_REDIRECT_URI_PATTERN, uri) is None


# --- the portal's matching rule (RFC 8252 §7.3, RFC 9700 §4.1.3) ----------------------------


@pytest.mark.parametrize(
    "presented",
    [
        "http://127.0.0.1/oauth2/callback",
        "http://127.0.0.1:1/oauth2/callback",
        "http://127.0.0.1:51234/oauth2/callback",
        "http://127.0.0.1:65535/oauth2/callback",
        "http://[::1]/oauth2/callback",  # registered with port 8400: the port is not compared
        "http://[::1]:40000/oauth2/callback",
        APP_SCHEME_URI,
        CLAIMED,
    ],
)
def test_a_native_app_is_redirected_to_its_loopback_uri_on_any_port(presented: str) -> None:
    assert native().accepts_redirect_uri(presented)


NATIVE_VARIANTS = {
    "path-trailing-slash": "http://127.0.0.1:5000/oauth2/callback/",
    "path-case": "http://127.0.0.1:5000/OAUTH2/callback",
    "added-query": "http://127.0.0.1:5000/oauth2/callback?x=1",
    "dot-dot-semicolon": "http://127.0.0.1:5000/evil/..;/oauth2/callback",
    "userinfo-host": "http://127.0.0.1:5000@evil.example/oauth2/callback",
    "userinfo-before": "http://evil.example@127.0.0.1:5000/oauth2/callback",
    "look-alike-suffix": "http://127.0.0.1.evil.example:5000/oauth2/callback",
    "short-form": "http://127.1:5000/oauth2/callback",
    "localhost": "http://localhost:5000/oauth2/callback",
    "other-address": "http://127.0.0.2:5000/oauth2/callback",
    "ipv6-long-form": "http://[0:0:0:0:0:0:0:1]:5000/oauth2/callback",
    "https-loopback": "https://127.0.0.1:5000/oauth2/callback",
    "upper-case-scheme": "HTTP://127.0.0.1:5000/oauth2/callback",
    "port-zero": "http://127.0.0.1:0/oauth2/callback",
    "port-too-large": "http://127.0.0.1:65536/oauth2/callback",
    "empty-port": "http://127.0.0.1:/oauth2/callback",
    "backslash": "http://127.0.0.1:5000\\@evil.example/oauth2/callback",
    "fragment": "http://127.0.0.1:5000/oauth2/callback#x",
    "scheme-trailing-slash": "cn.gov.zj.zlb:/oauth2redirect/",
    "scheme-authority": "cn.gov.zj.zlb://oauth2redirect",
    "scheme-other-app": "cn.gov.zj.evil:/oauth2redirect",
    "claimed-other-port": "https://app.zj.gov.cn:8443/oauth2/callback",
    "claimed-http": "http://app.zj.gov.cn/oauth2/callback",
}


@pytest.mark.parametrize("presented", NATIVE_VARIANTS.values(), ids=NATIVE_VARIANTS.keys())
def test_a_native_apps_uri_variant_is_not_its_uri(presented: str) -> None:
    """Only the port of a loopback URI may differ; host, path and query are exact."""
    assert not native().accepts_redirect_uri(presented)


def test_a_web_portals_loopback_uri_is_compared_exactly_port_included() -> None:
    """The native rule is not a way to a web portal's codes: no port but its own."""
    portal = web()
    assert portal.accepts_redirect_uri(WEB_LOOPBACK)
    for port in ("8081", "1", "51234"):
        assert not portal.accepts_redirect_uri(f"http://127.0.0.1:{port}/callback")
    assert not portal.accepts_redirect_uri("http://127.0.0.1/callback")


def test_loopback_redirect_splits_only_the_literal_forms() -> None:
    assert loopback_redirect("http://127.0.0.1:8400/cb?x=1") == ("127.0.0.1", "/cb?x=1")
    assert loopback_redirect("http://[::1]") == ("[::1]", "")
    assert loopback_redirect("http://localhost:8400/cb") is None
    assert loopback_redirect("http://127.0.0.1:8400@evil.example/cb") is None


# --- a native app is a public client (RFC 8252 §8.1, §8.5) ----------------------------------


def test_a_native_app_is_public_unless_it_says_otherwise_and_then_it_is_refused() -> None:
    assert native().token_endpoint_auth_method is AuthMethod.NONE
    assert native().is_public
    refusals: list[dict[str, Any]] = [
        {"token_endpoint_auth_method": "client_secret_basic"},
        {"token_endpoint_auth_method": "client_secret_post"},
        {"token_endpoint_auth_method": "none", "client_secret_hash": hash_secret("s" * 32)},
        {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "EC"}]}},
        {"grant_types": ["client_credentials"]},
    ]
    for changes in refusals:
        with pytest.raises(ValidationError):
            native(**changes)
    assert web().application_type == "web"  # the default (Dynamic Client Registration §2)


# --- through the oauth package ---------------------------------------------------------------


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    folder: Path = tmp_path_factory.mktemp("native")
    settings = Settings.model_validate(
        {
            "issuer": "https://tongxing.example.cn",
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
    built = wire(settings, store, KeyRing.generate(now=datetime.now(UTC)))
    now = datetime.now(UTC)
    built.registry.put_portal(native(), now)
    built.registry.put_portal(web(), now)
    yield built
    built.close()


@pytest.fixture(scope="module")
def app(services: Services) -> Flask:
    return create_app(services=services)


def authorization(**changes: str | None) -> dict[str, str]:
    values: dict[str, str | None] = {
        "response_type": "code",
        "client_id": "zlb-app",
        "redirect_uri": "http://127.0.0.1:51234/oauth2/callback",
        "scope": "openid profile",
        "state": "app-state",
        "nonce": "app-nonce",
        "code_challenge": challenge(),
        "code_challenge_method": "S256",
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def parse(app: Flask, query: dict[str, str]) -> AuthorizationRequest:
    with app.test_request_context(f"/authorize?{urlencode(query)}"):
        return current_oauth().parse_authorization_request()


def test_the_request_keeps_the_port_the_app_sent(app: Flask) -> None:
    """RFC 6749 §4.1.3: the token request must name the URI as sent, so it is kept as sent."""
    parsed = parse(app, authorization())
    assert parsed.redirect_uri == "http://127.0.0.1:51234/oauth2/callback"


def test_a_native_app_without_pkce_is_refused_at_its_redirect_uri(app: Flask) -> None:
    """RFC 8252 §8.1: PKCE is required of native apps (they are public clients)."""
    with pytest.raises(RefusedRequest) as caught:
        parse(app, authorization(code_challenge=None, code_challenge_method=None))
    assert caught.value.error == "invalid_request"
    assert "PKCE" in (caught.value.description or "")
    with pytest.raises(RefusedRequest) as plain:
        parse(app, authorization(code_challenge_method="plain"))
    assert plain.value.error == "invalid_request"


@pytest.mark.parametrize(
    ("client_id", "redirect_uri"),
    [
        ("zj-portal", "http://127.0.0.1:8081/callback"),  # a web portal, another port
        ("zj-portal", APP_SCHEME_URI),  # a native app's URI at a web portal
        ("zlb-app", "http://localhost:51234/oauth2/callback"),
        ("zlb-app", "cn.gov.zj.evil:/oauth2redirect"),
    ],
)
def test_an_unregistered_uri_gets_a_page_never_a_redirect(
    client_id: str, redirect_uri: str, services: Services
) -> None:
    client = create_app(services=services).test_client()
    query = authorization(client_id=client_id, redirect_uri=redirect_uri)
    response = client.get(f"/authorize?{urlencode(query)}", headers={"Accept": "text/html"})
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "<code>invalid_request</code>" in response.get_data(as_text=True)


def signed_in(services: Services) -> User:
    now = datetime.now(UTC)
    subject = services.store.link_subject(token_hash("identity:app-user"), "zj", "app-user", now)
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


def code_for(services: Services, app: Flask, redirect_uri: str) -> str:
    parsed = parse(app, authorization(redirect_uri=redirect_uri))
    return services.tokens.issue_code(parsed, signed_in(services))


def test_the_code_is_redeemed_only_with_the_uri_as_sent_port_included(
    services: Services, app: Flask
) -> None:
    """RFC 6749 §4.1.3: the same string, not any URI the matching rule would accept."""
    sent = "http://127.0.0.1:51234/oauth2/callback"
    client = app.test_client()
    form = {"grant_type": "authorization_code", "client_id": "zlb-app"}
    for other in ("http://127.0.0.1:51235/oauth2/callback", LOOPBACK):
        code = code_for(services, app, sent)
        answer = client.post(
            "/token", data=form | {"code": code, "redirect_uri": other, "code_verifier": VERIFIER}
        )
        assert answer.status_code == 400
        assert answer.get_json()["error"] == "invalid_grant"
    code = code_for(services, app, sent)
    wrong = client.post(
        "/token", data=form | {"code": code, "redirect_uri": sent, "code_verifier": "x" * 43}
    )
    assert wrong.get_json()["error"] == "invalid_grant"  # PKCE binds the code to the app
    code = code_for(services, app, sent)
    issued = client.post(
        "/token", data=form | {"code": code, "redirect_uri": sent, "code_verifier": VERIFIER}
    )
    assert issued.status_code == 200, issued.get_data(as_text=True)
    claims = services.keys.verify(issued.get_json()["id_token"])
    assert claims["aud"] == "zlb-app"
    assert claims["nonce"] == "app-nonce"


def test_a_private_use_scheme_gets_the_code_in_its_query(services: Services, app: Flask) -> None:
    parsed = parse(app, authorization(redirect_uri=APP_SCHEME_URI))
    url = services.signin._code_url(parsed, "the-code")
    assert url.startswith(f"{APP_SCHEME_URI}?")
    query = parse_qs(urlsplit(url).query)
    assert query["code"] == ["the-code"]
    assert query["state"] == ["app-state"]


# --- the admin API ----------------------------------------------------------------------------

ADMIN = secrets.token_urlsafe(32)
APP_DOCUMENT: dict[str, Any] = {
    "names": {"zh": "浙里办", "en": "Zheliban"},
    "owner": "zj",
    "application_type": "native",
    "redirect_uris": [LOOPBACK, APP_SCHEME_URI],
}


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[FlaskClient]:
    settings = Settings.model_validate(
        {
            "issuer": "https://tongxing.example.cn",
            "data_dir": tmp_path,
            "policy_dir": default_policy_dir(),
            "create_keys": True,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": ADMIN,
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
        }
    )
    store = SqlStore.from_url(settings.sqlalchemy_url)
    store.migrate()
    built = wire(settings, store, KeyRing.generate(now=datetime.now(UTC)))
    yield create_app(services=built).test_client()
    built.close()


def put(admin: FlaskClient, document: dict[str, Any], client_id: str = "zlb-app") -> Any:
    return admin.put(
        f"/admin/v1/portals/{client_id}",
        json=document,
        headers={"Authorization": f"Bearer {ADMIN}"},
    )


def fields(response: Any) -> set[str]:
    assert response.status_code == 400, response.get_data(as_text=True)
    return {f["field"] for f in response.get_json()["fields"]}


def test_the_admin_api_registers_a_native_app_as_a_public_client(admin: FlaskClient) -> None:
    created = put(admin, APP_DOCUMENT)
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert body["application_type"] == "native"
    assert body["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in body


def test_the_admin_api_refuses_a_native_app_with_a_secret_or_a_secret_method(
    admin: FlaskClient,
) -> None:
    assert fields(put(admin, APP_DOCUMENT | {"client_secret": "s" * 40})) == {"client_secret"}
    method = APP_DOCUMENT | {"token_endpoint_auth_method": "client_secret_basic"}
    assert fields(put(admin, method)) == {""}  # the model's rule, on the whole document
    localhost = APP_DOCUMENT | {"redirect_uris": ["http://localhost:8400/cb"]}
    assert fields(put(admin, localhost)) == {"redirect_uris"}
    bare = APP_DOCUMENT | {"redirect_uris": ["zlb:/cb"]}
    assert fields(put(admin, bare)) == {"redirect_uris"}
    as_web = {k: v for k, v in APP_DOCUMENT.items() if k != "application_type"}
    assert fields(put(admin, as_web)) == {"redirect_uris"}
    assert fields(put(admin, APP_DOCUMENT | {"application_type": "desktop"})) >= {
        "application_type"
    }


# --- the operator's Portal ------------------------------------------------------------------

SPEC: dict[str, Any] = {
    "region": "zj",
    "names": {"zh": "浙里办", "en": "Zheliban"},
    "applicationType": "native",
    "redirectUris": [LOOPBACK, APP_SCHEME_URI],
    "secretName": "zlb-app-oidc",
}


def test_a_native_portal_resource_is_registered_as_a_public_native_app() -> None:
    spec = models.PortalSpec.model_validate(SPEC)
    assert spec.token_endpoint_auth_method is vocabulary.AuthMethod.NONE
    settings = OperatorSettings.model_validate(
        {"gateway_url": "http://gateway.test", "admin_token": "o" * 32}
    )
    reconciler = PortalReconciler(settings, None, None)  # type: ignore[arg-type]
    ref = ObjectRef(kind="Portal", namespace="zj-gov", name="zlb", uid="u-1", generation=1)
    document = reconciler.registration(ref, spec, "zlb-app")
    assert document["application_type"] == "native"
    assert document["token_endpoint_auth_method"] == "none"
    # What the operator sends, the gateway accepts (the principal is the gateway's to set).
    owner = document["managed_by"] | {"principal": "operator"}
    portal = Portal.model_validate(document | {"managed_by": owner})
    assert portal.accepts_redirect_uri("http://127.0.0.1:40000/oauth2/callback")


@pytest.mark.parametrize(
    "changes",
    [
        {"tokenEndpointAuthMethod": "client_secret_basic"},
        {"redirectUris": ["http://localhost:8400/cb"]},
        {"redirectUris": ["javascript:alert(1)"]},
        {"applicationType": "web"},  # a private-use scheme on a web portal
    ],
)
def test_the_operator_refuses_what_the_gateway_would(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        models.PortalSpec.model_validate(SPEC | changes)


# --- /userinfo: the header or a form body, never the query, never both (RFC 6750 §2) --------


@pytest.fixture(scope="module")
def access_token(services: Services, app: Flask) -> str:
    code = code_for(services, app, "http://127.0.0.1:40000/oauth2/callback")
    issued = app.test_client().post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "client_id": "zlb-app",
            "code": code,
            "redirect_uri": "http://127.0.0.1:40000/oauth2/callback",
            "code_verifier": VERIFIER,
        },
    )
    token: str = issued.get_json()["access_token"]
    return token


FORM = "application/x-www-form-urlencoded"


def test_userinfo_takes_the_token_in_the_header_by_get_or_post(
    app: Flask, access_token: str
) -> None:
    client = app.test_client()
    bearer = {"Authorization": f"Bearer {access_token}"}
    for method in ("GET", "POST"):
        answer = client.open("/userinfo", method=method, headers=bearer)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert answer.get_json()["name"] == "张三"


def test_userinfo_takes_the_token_in_a_form_body(app: Flask, access_token: str) -> None:
    """RFC 6750 §2.2, OIDC Core §5.3.1: pyoidc's default."""
    answer = app.test_client().post(
        "/userinfo", data=f"access_token={access_token}", content_type=FORM
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["name"] == "张三"
    assert answer.headers["Cache-Control"] == "no-store"


def invalid_request(answer: Any) -> str:
    assert answer.status_code == 400, (answer.status_code, answer.get_data(as_text=True))
    assert answer.get_json()["error"] == "invalid_request"
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_request"'
    description: str = answer.get_json()["error_description"]
    return description


def test_userinfo_refuses_a_token_in_the_query(app: Flask, access_token: str) -> None:
    """RFC 6750 §2.3 is not supported: a token in a URL lands in logs (§5.3)."""
    client = app.test_client()
    query = urlencode({"access_token": access_token})
    assert "query" in invalid_request(client.get(f"/userinfo?{query}"))
    assert "query" in invalid_request(client.post(f"/userinfo?{query}"))
    bearer = {"Authorization": f"Bearer {access_token}"}
    assert "query" in invalid_request(client.get(f"/userinfo?{query}", headers=bearer))


def test_userinfo_refuses_a_token_sent_two_ways(app: Flask, access_token: str) -> None:
    """RFC 6750 §2: a client MUST NOT use more than one method in a request."""
    client = app.test_client()
    answer = client.post(
        "/userinfo",
        data=f"access_token={access_token}",
        content_type=FORM,
        headers={"Authorization": f"Bearer {access_token}"},
    )
    assert "both" in invalid_request(answer)
    twice = client.post(
        "/userinfo", data=f"access_token={access_token}&access_token=x", content_type=FORM
    )
    assert "more than one" in invalid_request(twice)


def test_userinfo_ignores_a_token_where_rfc_6750_puts_none(app: Flask, access_token: str) -> None:
    """A GET's body, a JSON or multipart body: none of RFC 6750's methods (§2.2 asks for a
    form-encoded POST), so the request has no token (401, no error code: §3.1)."""
    client = app.test_client()
    answers = [
        client.open(
            "/userinfo", method="GET", data=f"access_token={access_token}", content_type=FORM
        ),
        client.post("/userinfo", json={"access_token": access_token}),
        client.post(
            "/userinfo", data={"access_token": access_token}, content_type="multipart/form-data"
        ),
        client.get("/userinfo", headers={"Authorization": f"Basic {access_token}"}),
    ]
    for answer in answers:
        assert answer.status_code == 401, answer.get_data(as_text=True)
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="tongxing"'


def test_userinfo_refuses_a_large_body_and_a_bad_token(app: Flask) -> None:
    client = app.test_client()
    large = client.post("/userinfo", data="access_token=" + "a" * 20_000, content_type=FORM)
    assert "too large" in invalid_request(large)
    bad = client.post("/userinfo", data="access_token=not-a-token", content_type=FORM)
    assert bad.status_code == 401
    assert bad.get_json()["error"] == "invalid_token"
