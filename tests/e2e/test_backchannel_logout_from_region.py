"""A logout at the region reaches the gateway (issue 13, "Logout means logout, both ways";
THREAT_MODEL.md row 5), and a portal that fails to take its logout token is sent a new one.

Keycloak is the region: a logout there makes it POST a Logout Token to the gateway's receiver
(OpenID Connect Back-Channel Logout 1.0 §2.5), which ends the gateway session and tells every
portal of it. The attacker tests sign their own logout tokens: with a key the test adds to the
realm (so the region's JWK Set really publishes it) to show that each claim check of §2.6 holds
on its own, and with keys the region does not publish.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote

import pytest
import requests
from gateway_fixtures import (
    KeycloakRegion,
    PortalSite,
    RunningGateway,
    keycloak_region,
    register_portal,
    sign_in_at_keycloak,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import RSAKey
from playwright.sync_api import Page, expect
from tongxing_dev.keycloak import KeycloakEndpoint

from gateway.store import SsoSession

EVENT = "http://schemas.openid.net/event/backchannel-logout"


# --- helpers --------------------------------------------------------------------------------------


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _header(token: str) -> dict[str, Any]:
    header = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))))


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _live(gateway: RunningGateway, region: str = "zj") -> list[SsoSession]:
    return gateway.services.store.find_region_sessions(region, gateway.services.clock())


def _issuer(keycloak: KeycloakEndpoint, region: KeycloakRegion) -> str:
    return str(keycloak.issuer(region.realm))


@dataclass
class Forger:
    """A signing key the test added to a realm: the realm's JWK Set publishes it, so the
    gateway takes a token it signs for the region's own."""

    key: RSAKey
    kid: str
    issuer: str
    client_id: str = "tongxing"

    def token(
        self,
        *,
        header: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        key: RSAKey | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(12),
            "events": {EVENT: {}},
        } | claims
        for name in drop:
            body.pop(name, None)
        protected = {"alg": "RS256", "kid": self.kid, "typ": "logout+jwt"} | (header or {})
        return jws.serialize_compact(
            protected, json.dumps(body).encode(), key or self.key, algorithms=["RS256"]
        )


def add_forger(keycloak: KeycloakEndpoint, region: KeycloakRegion) -> Forger:
    """Add an RSA key provider (a key the test holds) to the realm, below its own key."""
    key = RSAKey.generate_key(2048)
    admin = region.admin
    admin.change_current_realm(region.realm)
    realm_id = admin.get_realm(region.realm)["id"]
    admin.create_component(
        {
            "name": f"forger-{uuid.uuid4().hex[:6]}",
            "providerId": "rsa",
            "providerType": "org.keycloak.keys.KeyProvider",
            "parentId": realm_id,
            "config": {
                "priority": ["1"],
                "enabled": ["true"],
                "active": ["true"],
                "algorithm": ["RS256"],
                "privateKey": [key.as_pem(private=True).decode()],
            },
        }
    )
    issuer = _issuer(keycloak, region)
    jwks = requests.get(f"{issuer}/protocol/openid-connect/certs", timeout=10).json()
    n = key.as_dict(private=False)["n"]
    (kid,) = [k["kid"] for k in jwks["keys"] if k.get("n") == n]
    return Forger(key, kid, issuer)


def post_logout(gateway: RunningGateway, code: str, token: str | None, **form: str) -> Any:
    data = dict(form)
    if token is not None:
        data["logout_token"] = token
    return requests.post(f"{gateway.issuer}/backchannel-logout/{code}", data=data, timeout=10)


class FlakyPortal:
    """A portal's back-channel logout endpoint that answers 500 to its first ``failures``
    requests and 200 after; it records every logout token."""

    def __init__(self, failures: int) -> None:
        self.tokens: list[str] = []
        self.statuses: list[int] = []
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                flaky.tokens.extend(form.get("logout_token", []))
                status = 500 if len(flaky.statuses) < failures else 200
                flaky.statuses.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/backchannel"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def forger(keycloak: KeycloakEndpoint, gateway: RunningGateway, zj: KeycloakRegion) -> Forger:
    forger = add_forger(keycloak, zj)
    region = gateway.services.registry.region("zj")
    assert region is not None
    gateway.services.regions.forget(region)  # the next look fetches the JWK Set with the key
    return forger


@pytest.fixture(scope="module")
def gd(keycloak: KeycloakEndpoint, gateway: RunningGateway) -> Iterator[KeycloakRegion]:
    region = keycloak_region(keycloak, gateway, "gd")
    yield region
    region.admin.change_current_realm("master")
    region.admin.delete_realm(region.realm)


@pytest.fixture
def flaky() -> Iterator[FlakyPortal]:
    portal = FlakyPortal(failures=1)
    yield portal
    portal.close()


def _browser_sign_in(page: Page, site: PortalSite, portal: Any, region: KeycloakRegion) -> None:
    started = portal.start("openid profile", region=region.code)
    page.goto(started["url"])
    if page.locator("#username").is_visible():
        sign_in_at_keycloak(page, region)
    page.wait_for_url(f"{portal.redirect_uri}**")
    portal.finish(site.last_visit(portal.redirect_uri), started)


# --- a logout at Keycloak -------------------------------------------------------------------------


def test_a_logout_at_keycloak_ends_the_gateway_session_and_tells_portals_a_and_b(
    gateway: RunningGateway,
    keycloak: KeycloakEndpoint,
    zj: KeycloakRegion,
    site: PortalSite,
    page: Page,
) -> None:
    portal_a = register_portal(gateway, site, "bcl-a")
    portal_b = register_portal(gateway, site, "bcl-b")
    started_a = portal_a.start("openid profile", region="zj")
    page.goto(started_a["url"])
    sign_in_at_keycloak(page, zj)
    page.wait_for_url(f"{portal_a.redirect_uri}**")
    portal_a.finish(site.last_visit(portal_a.redirect_uri), started_a)
    started_b = portal_b.start("openid profile", region="zj")
    page.goto(started_b["url"])  # single sign-on: no password at the region
    page.wait_for_url(f"{portal_b.redirect_uri}**")
    portal_b.finish(site.last_visit(portal_b.redirect_uri), started_b)
    (session,) = [s for s in _live(gateway) if s.region_sid]
    assert session.region_sub

    # The person logs out at the region itself, in the same browser, and confirms.
    page.goto(f"{_issuer(keycloak, zj)}/protocol/openid-connect/logout")
    page.click("#kc-logout")
    _wait_for(lambda: bool(site.logout_tokens.get(portal_a.client_id)))
    _wait_for(lambda: bool(site.logout_tokens.get(portal_b.client_id)))

    for portal in (portal_a, portal_b):
        (token,) = site.logout_tokens[portal.client_id]
        claims = _claims(token)
        assert _header(token)["typ"] == "logout+jwt"
        assert claims["iss"] == gateway.issuer
        assert claims["aud"] == portal.client_id
        assert EVENT in claims["events"]
        assert "nonce" not in claims
    assert session.session_hash not in {s.session_hash for s in _live(gateway)}

    # The gateway session is gone: a new sign-in at portal A goes to the region's password form.
    again = portal_a.start("openid profile", region="zj")
    page.goto(again["url"])
    expect(page.locator("#password")).to_be_visible()


def test_a_portal_that_answers_500_is_sent_a_new_token_later_and_it_is_recorded(
    gateway: RunningGateway,
    zj: KeycloakRegion,
    site: PortalSite,
    page: Page,
    flaky: FlakyPortal,
) -> None:
    portal = register_portal(gateway, site, "bcl-flaky", backchannel_logout_uri=flaky.uri)
    _browser_sign_in(page, site, portal, zj)
    assert [s for s in _live(gateway) if s.region_sid]

    # The region's administrator ends the person's sessions: Keycloak tells the gateway.
    zj.admin.change_current_realm(zj.realm)
    user_id = zj.admin.get_user_id(zj.username)
    assert user_id is not None
    zj.admin.user_logout(user_id)
    _wait_for(lambda: len(flaky.tokens) >= 1)
    _wait_for(lambda: bool(gateway.services.store.list_logout_deliveries()))
    (recorded,) = [
        d
        for d in gateway.services.store.list_logout_deliveries()
        if d.client_id == portal.client_id
    ]
    assert (recorded.attempts, recorded.last_status) == (1, "http 500")
    assert recorded.given_up_at is None

    # The gateway's own retry job tries again after the first back-off (10 s): a new token.
    _wait_for(lambda: len(flaky.tokens) >= 2, timeout=40)
    _wait_for(
        lambda: (
            not [
                d
                for d in gateway.services.store.list_logout_deliveries()
                if d.client_id == portal.client_id
            ]
        )
    )
    assert flaky.statuses == [500, 200]
    first, second = (_claims(t) for t in flaky.tokens)
    assert first["jti"] != second["jti"]  # §2.4: a jti is never sent twice
    assert (first["sub"], first["sid"]) == (second["sub"], second["sid"])
    assert second["iat"] >= first["iat"]


# --- the attacker: logout tokens the receiver must refuse -----------------------------------------


@pytest.fixture
def live_session(
    gateway: RunningGateway, zj: KeycloakRegion, site: PortalSite, page: Page, forger: Forger
) -> SsoSession:
    """A gateway session opened by a real sign-in at Keycloak, with its region sid and sub."""
    portal = register_portal(gateway, site, "bcl-target")
    _browser_sign_in(page, site, portal, zj)
    sessions = [s for s in _live(gateway) if s.region_sid]
    assert sessions
    return sessions[-1]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """The classic confusion: an HMAC "signed" with the region's public key as the secret."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _forgeries(forger: Forger, session: SsoSession) -> dict[str, str]:
    sid = session.region_sid
    other_key = RSAKey.generate_key(2048)
    now = int(time.time())
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"logout+jwt"}').rstrip(b"=")
    none_body = base64.urlsafe_b64encode(
        json.dumps(
            {
                "iss": forger.issuer,
                "aud": "tongxing",
                "iat": now,
                "jti": "none-1",
                "sid": sid,
                "events": {EVENT: {}},
            }
        ).encode()
    ).rstrip(b"=")
    return {
        "another key, same kid": forger.token(sid=sid, key=other_key),
        "wrong iss": forger.token(sid=sid, iss=forger.issuer + "-other"),
        "wrong aud": forger.token(sid=sid, aud="someone-else"),
        "a nonce": forger.token(sid=sid, nonce="n-0S6_WzA2Mj"),
        "no events": forger.token(sid=sid, drop=("events",)),
        "another event": forger.token(sid=sid, events={"urn:other": {}}),
        "event not an object": forger.token(sid=sid, events={EVENT: "yes"}),
        "no sid and no sub": forger.token(),
        "no jti": forger.token(sid=sid, drop=("jti",)),
        "alg none": f"{none_header.decode()}.{none_body.decode()}.",
        "alg HS256 keyed with the public key": _hs256(
            {"alg": "HS256", "kid": forger.kid, "typ": "logout+jwt"},
            _claims(forger.token(sid=sid)),
            forger.key.as_pem(private=False),
        ),
        "an embedded jwk": forger.token(
            sid=sid, header={"jwk": other_key.as_dict(private=False)}, key=other_key
        ),
        "an ID token's typ": forger.token(sid=sid, header={"typ": "at+jwt"}),
        "iat an hour ago": forger.token(sid=sid, iat=now - 3600, exp=now + 60),
        "iat in the future": forger.token(sid=sid, iat=now + 3600, exp=now + 7200),
        "expired": forger.token(sid=sid, iat=now - 300, exp=now - 200),
        "encrypted (five parts)": "a.b.c.d.e",
        "not a token": "x" * 100,
    }


def test_forged_or_malformed_logout_tokens_are_refused_and_end_nothing(
    gateway: RunningGateway, forger: Forger, live_session: SsoSession
) -> None:
    for case, token in _forgeries(forger, live_session).items():
        response = post_logout(gateway, "zj", token)
        assert response.status_code == 400, case
        assert response.headers["Cache-Control"] == "no-store", case
        assert response.json()["error"] == "invalid_request", case
        live = {s.session_hash for s in _live(gateway)}
        assert live_session.session_hash in live, f"{case} ended the session"


def test_a_replayed_logout_token_is_refused(
    gateway: RunningGateway, forger: Forger, live_session: SsoSession
) -> None:
    # A valid token for a session that is not there: accepted (200), ends nothing (§2.8).
    token = forger.token(sid="no-such-region-session")
    assert post_logout(gateway, "zj", token).status_code == 200
    # The same token again, now naming a live session by sub: refused as a replay.
    replay = post_logout(gateway, "zj", token)
    assert replay.status_code == 400
    assert live_session.session_hash in {s.session_hash for s in _live(gateway)}


def test_a_token_of_another_realm_is_refused_and_a_region_ends_only_its_own_sessions(
    gateway: RunningGateway,
    keycloak: KeycloakEndpoint,
    gd: KeycloakRegion,
    forger: Forger,
    live_session: SsoSession,
) -> None:
    other = add_forger(keycloak, gd)
    sid = live_session.region_sid
    # gd's genuine key and issuer, sent to zj's receiver: refused.
    assert post_logout(gateway, "zj", other.token(sid=sid)).status_code == 400
    # zj's issuer signed with gd's key: refused (zj does not publish that key).
    forged = other.token(sid=sid, iss=forger.issuer, header={"kid": other.kid})
    assert post_logout(gateway, "zj", forged).status_code == 400
    # A valid token at gd's own receiver naming zj's sid and sub: accepted, ends nothing of zj.
    token = other.token(sid=sid, sub=live_session.region_sub)
    assert post_logout(gateway, "gd", token).status_code == 200
    assert live_session.session_hash in {s.session_hash for s in _live(gateway)}


def test_bad_requests_get_400_and_never_5xx(
    gateway: RunningGateway, forger: Forger, live_session: SsoSession
) -> None:
    sid = live_session.region_sid
    valid = forger.token(sid=sid)
    url = f"{gateway.issuer}/backchannel-logout"
    cases = [
        requests.post(f"{url}/zj", data={}, timeout=10),
        requests.post(f"{url}/zj", data={"logout_token": [valid, valid]}, timeout=10),
        requests.post(f"{url}/zj", json={"logout_token": valid}, timeout=10),
        requests.post(f"{url}/zj", data={"logout_token": "é\x00" * 1000}, timeout=10),
        requests.post(
            f"{url}/zj",
            data=b"logout_token=\xff\xfe%ZZ",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=10,
        ),
        requests.post(f"{url}/zj", data={"logout_token": "a" * 100_000}, timeout=10),
        requests.post(f"{url}/nowhere", data={"logout_token": valid}, timeout=10),
        requests.post(f"{url}/ZJ%00", data={"logout_token": valid}, timeout=10),
    ]
    for index, response in enumerate(cases):
        assert response.status_code == 400, (index, response.status_code, response.text[:200])
        assert response.headers["Cache-Control"] == "no-store"
        assert response.json()["error"] == "invalid_request"
    assert live_session.session_hash in {s.session_hash for s in _live(gateway)}


def test_a_valid_logout_token_by_sid_ends_the_session_with_its_grants(
    gateway: RunningGateway, forger: Forger, live_session: SsoSession
) -> None:
    """The positive control of the attacker tests: the same forger, every claim right."""
    response = post_logout(gateway, "zj", forger.token(sid=live_session.region_sid))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert live_session.session_hash not in {s.session_hash for s in _live(gateway)}


def test_a_valid_logout_token_with_only_sub_ends_that_persons_sessions(
    gateway: RunningGateway, forger: Forger, live_session: SsoSession
) -> None:
    response = post_logout(gateway, "zj", forger.token(sub=live_session.region_sub))
    assert response.status_code == 200
    assert live_session.session_hash not in {s.session_hash for s in _live(gateway)}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    code=st.text(max_size=12),
    body=st.one_of(
        st.binary(max_size=3000),
        st.text(max_size=3000).map(lambda t: b"logout_token=" + t.encode("utf-8", "surrogatepass")),
    ),
    content_type=st.sampled_from(
        ["application/x-www-form-urlencoded", "multipart/form-data", "text/plain", ""]
    ),
)
def test_no_body_and_no_region_code_gets_a_5xx(
    gateway: RunningGateway, code: str, body: bytes, content_type: str
) -> None:
    response = requests.post(
        f"{gateway.issuer}/backchannel-logout/{quote(code or 'zj', safe='')}",
        data=body,
        headers={"Content-Type": content_type} if content_type else {},
        timeout=10,
    )
    assert response.status_code < 500, (code, body[:100], response.text[:200])


def test_the_platform_ends_every_session_of_a_region_and_its_portals_are_told(
    gateway: RunningGateway, gd: KeycloakRegion, site: PortalSite, page: Page
) -> None:
    """A region disabled (compromised, withdrawn): ``DELETE /admin/v1/regions/gd/sessions`` ends
    its sessions with their grants and tells their portals; other regions' sessions stand, and
    an operator that does not manage the region may not do it."""
    portal = register_portal(gateway, site, "bcl-end")
    started = portal.start("openid profile", region="gd")
    page.goto(started["url"])
    sign_in_at_keycloak(page, gd)
    page.wait_for_url(f"{portal.redirect_uri}**")
    tokens = portal.finish(site.last_visit(portal.redirect_uri), started)
    (session,) = _live(gateway, "gd")
    others = {s.session_hash for s in _live(gateway, "zj")}
    gateway.admin("PUT", "/regions/gd", {**_document(gateway, "gd"), "enabled": False})

    operator = gateway.admin_as(gateway.operator_token, "DELETE", "/regions/gd/sessions")
    assert operator.status_code in (400, 403)  # the operator does not manage gd, nor names it
    assert _live(gateway, "gd") == [session]
    answer = gateway.admin("DELETE", "/regions/gd/sessions")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"region": "gd", "ended": 1}
    _wait_for(lambda: bool(site.logout_tokens.get(portal.client_id)))
    assert _live(gateway, "gd") == []
    assert {s.session_hash for s in _live(gateway, "zj")} == others
    # The grants went with the session: the refresh token no longer works (RFC 6749 §5.2).
    refreshed = requests.post(
        f"{gateway.issuer}/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(portal.client_id, portal.client_secret),
        timeout=10,
    )
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    assert gateway.admin("DELETE", "/regions/nowhere/sessions").status_code == 404
    gateway.admin("PUT", "/regions/gd", {**_document(gateway, "gd"), "enabled": True})


def _document(gateway: RunningGateway, code: str) -> dict[str, Any]:
    """The region's registration as the platform would PUT it again (with its secret)."""
    region = gateway.services.registry.region(code)
    assert region is not None
    document = region.model_dump(mode="json", exclude={"managed_by"})
    document["client_secret"] = region.client_secret.get_secret_value()
    return document
