"""Native apps (RFC 8252) and the UserInfo token methods (RFC 6750 §2), against the real servers:
the gateway on loopback, a Keycloak region, Chromium, openid-client as the app
(``tests/peers/native_app.mjs``: public client, PKCE S256, ID token signature checked against
the gateway's JWK Set) and the harness's kube-apiserver for the Portal CRD.

The app signs in the way a desktop app does: it listens on a loopback port the system gives it
(RFC 8252 §7.3), registered without a port, and the browser brings the code back there. A
mobile app's private-use scheme (§7.1) cannot be served by a test, so the browser's navigation
to ``cn.example.app:/cb?code=...`` is caught where it leaves Chromium and the app redeems it.

The attacks (THREAT_MODEL row 6): a web portal's code to another port, a native app without
PKCE or with a secret, ``localhost``, a scheme that is not a reverse domain name, a private-use
scheme on a web portal, a Portal resource trying any of these, a token in a URL.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
import yaml
from gateway_fixtures import (
    KeycloakRegion,
    PortalSite,
    RunningGateway,
    register_portal,
    sign_in_at_keycloak,
)
from operator_fixtures import GROUP, kubectl
from playwright.sync_api import Browser, Page
from playwright.sync_api import Error as PlaywrightError
from tongxing_dev.kube import KubeEndpoint
from tongxing_dev.peers import PEERS

REPO = Path(__file__).resolve().parents[2]
APP_SCHEME_URI = "cn.example.app:/cb"
HTML = {"Accept": "text/html,application/xhtml+xml"}


def native_app(*args: str) -> Any:
    """One command of ``native_app.mjs`` that answers at once; its JSON, or its error."""
    done = subprocess.run(
        ["node", str(PEERS / "native_app.mjs"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=PEERS,
    )
    if done.returncode != 0:
        raise AppError(done.stderr.strip())
    return json.loads(done.stdout)


class AppError(Exception):
    """openid-client, in the app, refused something; the message is its error."""


def register_app(gateway: RunningGateway, **document: Any) -> tuple[str, requests.Response]:
    client_id = f"app-{uuid.uuid4().hex[:8]}"
    body = {
        "names": {"zh": "浙里办", "en": "Zheliban"},
        "owner": "zj",
        "application_type": "native",
        "redirect_uris": ["http://127.0.0.1/callback", APP_SCHEME_URI],
        "scopes": ["openid", "profile"],
        **document,
    }
    return client_id, gateway.admin("PUT", f"/portals/{client_id}", body)


@pytest.fixture(scope="module")
def app(gateway: RunningGateway) -> str:
    client_id, response = register_app(gateway)
    assert response.status_code == 201, response.text
    assert response.json()["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in response.json()
    return client_id


def choose_region_and_sign_in(page: Page, region: KeycloakRegion) -> None:
    if page.locator(f"input[value={region.code}]").count():
        page.check(f"input[value={region.code}]")
        page.click("button[type=submit]")
    sign_in_at_keycloak(page, region)


def check_tokens(gateway: RunningGateway, client_id: str, answer: dict[str, Any]) -> None:
    """What the app got: an ID token for it (verified here too, with the gateway's keys) and
    userinfo for the same subject."""
    claims = answer["claims"]
    assert claims["iss"] == gateway.issuer
    assert claims["aud"] == client_id
    verified = gateway.services.keys.verify(answer["tokens"]["id_token"])
    assert verified["sub"] == claims["sub"]
    assert answer["userinfo"]["sub"] == claims["sub"]
    assert answer["userinfo"]["name"] == "三 张"


# --- the app on a loopback port (RFC 8252 §7.3) ---------------------------------------------


def test_a_desktop_app_on_an_ephemeral_loopback_port_signs_in_with_pkce(
    gateway: RunningGateway, zj: KeycloakRegion, app: str, page: Page
) -> None:
    process = subprocess.Popen(
        ["node", str(PEERS / "native_app.mjs"), "loopback", gateway.issuer, app, "/callback"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PEERS,
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline() or "null") or pytest.fail(
            process.stderr.read() if process.stderr else "the app did not start"
        )
        redirect_uri: str = started["redirect_uri"]
        port = urlsplit(redirect_uri).port
        assert port is not None
        assert f":{port}/" not in json.dumps(gateway.admin("GET", f"/portals/{app}").json())
        page.goto(started["url"])
        choose_region_and_sign_in(page, zj)
        page.wait_for_url(f"{redirect_uri}**")
        out, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["redirect_uri"] == redirect_uri
    check_tokens(gateway, app, answer)


# --- a private-use scheme (RFC 8252 §7.1), caught as it leaves the browser -------------------


def caught_in_browser(page: Page, zj: KeycloakRegion, url: str) -> str:
    """Sign in from ``url``; return the navigation to the app's scheme that Chromium started
    (a browser hands it to the app registered for the scheme: here there is none)."""
    failure = ""
    with page.expect_request(lambda r: r.url.startswith(f"{APP_SCHEME_URI}?")) as caught:
        try:
            page.goto(url)
            choose_region_and_sign_in(page, zj)
        except PlaywrightError as error:  # Chromium aborts the navigation it hands off
            failure = str(error)
    assert not failure or "ERR_ABORTED" in failure, failure
    return caught.value.url


def sign_in_by_scheme(
    gateway: RunningGateway, zj: KeycloakRegion, app: str, browser: Browser
) -> tuple[str, Any, Any]:
    """The app's sign-in through its private-use scheme: the callback URL, the app's pending
    checks and what the code bought."""
    started = native_app("authorize", gateway.issuer, app, APP_SCHEME_URI)
    context = browser.new_context(locale="zh-CN")
    try:
        callback = caught_in_browser(context.new_page(), zj, started["url"])
    finally:
        context.close()
    answer = native_app("redeem", gateway.issuer, app, callback, json.dumps(started["pending"]))
    return callback, started, answer


def test_a_mobile_apps_private_use_scheme_gets_the_code_and_the_app_redeems_it(
    gateway: RunningGateway, zj: KeycloakRegion, app: str, browser: Browser
) -> None:
    callback, started, answer = sign_in_by_scheme(gateway, zj, app, browser)
    query = parse_qs(urlsplit(callback).query)
    assert query["state"] == [started["pending"]["state"]]
    assert query["iss"] == [gateway.issuer]  # RFC 9207
    check_tokens(gateway, app, answer)
    with pytest.raises(AppError, match="invalid_grant"):  # one code, one use (RFC 6749 §4.1.2)
        native_app("redeem", gateway.issuer, app, callback, json.dumps(started["pending"]))
    bearer = {"Authorization": f"Bearer {answer['tokens']['access_token']}"}
    replayed = requests.get(f"{gateway.issuer}/userinfo", headers=bearer, timeout=10)
    assert replayed.status_code == 401  # and the replay revoked what the code bought


# --- what is refused ---------------------------------------------------------------------------


def pkce_request(client_id: str, redirect_uri: str, **changes: str | None) -> dict[str, str]:
    values: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid profile",
        "state": secrets.token_urlsafe(12),
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def authorize(gateway: RunningGateway, params: dict[str, str]) -> requests.Response:
    return requests.get(
        f"{gateway.issuer}/authorize",
        params=params,
        headers=HTML,
        allow_redirects=False,
        timeout=10,
    )


def assert_error_page(response: requests.Response) -> None:
    """A page for the person, never a redirect (RFC 6749 §4.1.2.1)."""
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert "Location" not in response.headers
    assert "<code>invalid_request</code>" in response.text


def test_a_web_portals_loopback_uri_on_another_port_gets_a_page(
    gateway: RunningGateway, site: PortalSite, app: str
) -> None:
    """The native rule is not a way to a web portal's codes."""
    web = register_portal(gateway, site, "web-loopback")
    port = urlsplit(web.redirect_uri).port or pytest.fail("the portal site has no port")
    other = web.redirect_uri.replace(f":{port}/", f":{port + 1 if port < 65535 else 1024}/")
    assert_error_page(authorize(gateway, pkce_request(web.client_id, other)))
    # A native app's URI forms at a web portal: refused the same way.
    for uri in (APP_SCHEME_URI, "http://127.0.0.1/callback"):
        assert_error_page(authorize(gateway, pkce_request(web.client_id, uri)))
    # The native app, on any port: not a page, the sign-in starts.
    native = authorize(gateway, pkce_request(app, "http://127.0.0.1:43210/callback"))
    assert native.status_code in (200, 302, 303), native.text[:300]
    assert "<code>invalid_request</code>" not in native.text


def test_a_native_app_without_pkce_is_told_so_at_its_redirect_uri(
    gateway: RunningGateway, app: str
) -> None:
    """RFC 8252 §8.1, RFC 7636 §4.4.1: an error for the app, at the URI it sent."""
    sent = "http://127.0.0.1:43211/callback"
    for changes in (
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge_method": "plain"},
    ):
        response = authorize(gateway, pkce_request(app, sent, **changes))
        assert response.status_code in (302, 303), response.text[:300]
        location = response.headers["Location"]
        assert location.startswith(f"{sent}?")
        answer = parse_qs(urlsplit(location).query)
        assert answer["error"] == ["invalid_request"]
        assert "code" not in answer


@pytest.mark.parametrize(
    "uri",
    [
        "http://localhost:43212/callback",  # RFC 8252 §8.3
        "zlb:/callback",  # not a reverse domain name (§7.1)
        "javascript:alert(1)",
        "cn.example.app://callback",  # an authority
        "cn.example.evil:/cb",
    ],
)
def test_a_native_app_is_not_redirected_to_an_unregistered_form(
    gateway: RunningGateway, app: str, uri: str
) -> None:
    assert_error_page(authorize(gateway, pkce_request(app, uri)))


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"redirect_uris": ["http://localhost/callback"]}, "redirect_uris"),
        ({"redirect_uris": ["zlb:/callback"]}, "redirect_uris"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "redirect_uris"),
        ({"client_secret": "s" * 48}, "client_secret"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, ""),
        ({"application_type": "web", "redirect_uris": [APP_SCHEME_URI]}, "redirect_uris"),
    ],
    ids=["localhost", "no-dot-scheme", "javascript", "secret", "secret-method", "web-scheme"],
)
def test_the_admin_api_refuses_a_native_app_it_could_not_trust(
    gateway: RunningGateway, document: dict[str, Any], field: str
) -> None:
    client_id, response = register_app(gateway, **document)
    assert response.status_code == 400, response.text
    assert field in {f["field"] for f in response.json()["fields"]}
    assert gateway.admin("GET", f"/portals/{client_id}").status_code == 404


# --- /userinfo: the header, a form body; never the query, never two ways --------------------


def test_userinfo_takes_the_token_in_a_form_body_and_the_header(
    gateway: RunningGateway, zj: KeycloakRegion, app: str, browser: Browser
) -> None:
    """OIDC Core §5.3.1, RFC 6750 §2.2: a form-encoded POST, as pyoidc sends it by default;
    the header (§2.1) is openid-client's, used by the app above."""
    _, _, answer = sign_in_by_scheme(gateway, zj, app, browser)
    token = answer["tokens"]["access_token"]
    url = f"{gateway.issuer}/userinfo"
    body = requests.post(url, data={"access_token": token}, timeout=10)
    assert body.status_code == 200, body.text
    assert body.json() == answer["userinfo"]
    header = requests.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert header.json() == answer["userinfo"]

    refusals = [
        requests.get(f"{url}?{urlencode({'access_token': token})}", timeout=10),
        requests.post(f"{url}?{urlencode({'access_token': token})}", timeout=10),
        requests.post(
            url,
            data={"access_token": token},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ),
    ]
    for refused in refusals:
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid_request"
        assert refused.headers["WWW-Authenticate"] == 'Bearer error="invalid_request"'
        assert "sub" not in refused.json()


# --- the Portal CRD on the real API server --------------------------------------------------


@pytest.fixture(scope="module")
def portal_crd(kube: KubeEndpoint) -> KubeEndpoint:
    kubectl(kube, "apply", "-f", str(REPO / "operator" / "crds" / "portal.yaml"))
    kubectl(kube, "wait", "--for=condition=Established", f"crd/portals.{GROUP}", "--timeout=30s")
    return kube


def dry_run(kube: KubeEndpoint, **spec: Any) -> subprocess.CompletedProcess[str]:
    document = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Portal",
        "metadata": {"name": f"zlb-{uuid.uuid4().hex[:6]}", "namespace": "default"},
        "spec": {
            "region": "zj",
            "names": {"zh": "浙里办", "en": "Zheliban"},
            "secretName": "zlb-oidc",
            **spec,
        },
    }
    text = yaml.safe_dump(document, allow_unicode=True)
    return kubectl(kube, "apply", "--dry-run=server", "-f", "-", stdin=text, check=False)


def test_the_api_server_takes_a_native_app_portal(portal_crd: KubeEndpoint) -> None:
    done = dry_run(
        portal_crd,
        applicationType="native",
        redirectUris=["http://127.0.0.1/callback", "http://[::1]/cb", "cn.gov.zj.zlb:/oauth2"],
        postLogoutRedirectUris=["cn.gov.zj.zlb:/bye"],
    )
    assert done.returncode == 0, done.stderr
    assert "created (server dry run)" in done.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"redirectUris": ["cn.gov.zj.zlb:/oauth2"]},
            "private-use schemes are for applicationType native",
        ),
        (
            {"applicationType": "native", "redirectUris": ["http://localhost/cb"]},
            "not localhost",
        ),
        (
            {
                "applicationType": "native",
                "redirectUris": ["http://127.0.0.1/cb"],
                "tokenEndpointAuthMethod": "client_secret_basic",
            },
            "a native app is a public client",
        ),
        (
            {"applicationType": "native", "redirectUris": ["zlb:/oauth2"]},
            "javascript:, data: and other schemes are refused",
        ),
        (
            {"applicationType": "native", "redirectUris": ["javascript:alert(1)"]},
            "javascript:, data: and other schemes are refused",
        ),
    ],
    ids=["web-with-scheme", "localhost", "secret", "no-dot-scheme", "javascript"],
)
def test_the_api_server_refuses_a_portal_the_gateway_would(
    portal_crd: KubeEndpoint, spec: dict[str, Any], message: str
) -> None:
    done = dry_run(portal_crd, **spec)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
