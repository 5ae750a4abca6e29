"""A native app's ``post_logout_redirect_uri`` (RP-Initiated Logout 1.0 §3, RFC 8252 §7.3),
without sockets: the portal's rule, the logout endpoint, and the way back from the region's
logout, which carries the target sealed by its hash.

A desktop app listens on the loopback port the system gives it at the time, so it registers its
loopback URIs without a port and names one at each request: its post-logout URI matches on any
port, as its redirect URIs do; host, path and query are still compared exactly. A web portal's
is compared exactly, port included (THREAT_MODEL row 6: no portal is sent anywhere it did not
register, and the native rule is not a way around a web portal's registration).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask

from gateway.app import create_app
from gateway.keys import KeyRing
from gateway.policy import default_policy_dir
from gateway.provider.region_logout import Onward, _seal_state
from gateway.registry import Names, Portal, hash_secret
from gateway.services import Services, wire
from gateway.settings import Settings
from gateway.store import SqlStore

NAMES = Names(zh="浙里办", en="Zheliban")
NATIVE_LOGOUT = "http://127.0.0.1/signed-out"
NATIVE_LOGOUT_V6 = "http://[::1]:8400/signed-out?app=zlb"
APP_SCHEME_LOGOUT = "cn.gov.zj.zlb:/signed-out"
WEB_LOGOUT = "http://127.0.0.1:8080/signed-out"


def native(**changes: Any) -> Portal:
    values: dict[str, Any] = {
        "client_id": "zlb-app",
        "names": NAMES,
        "owner": "zj",
        "application_type": "native",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "post_logout_redirect_uris": [NATIVE_LOGOUT, NATIVE_LOGOUT_V6, APP_SCHEME_LOGOUT],
    } | changes
    return Portal.model_validate(values)


def web(**changes: Any) -> Portal:
    values: dict[str, Any] = {
        "client_id": "zj-portal",
        "names": NAMES,
        "owner": "zj",
        "redirect_uris": ["http://127.0.0.1:8080/callback"],
        "post_logout_redirect_uris": [WEB_LOGOUT],
        "client_secret_hash": hash_secret("s" * 32),
    } | changes
    return Portal.model_validate(values)


# --- the rule -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "presented",
    [
        NATIVE_LOGOUT,
        "http://127.0.0.1:1/signed-out",
        "http://127.0.0.1:51234/signed-out",
        "http://[::1]/signed-out?app=zlb",
        "http://[::1]:40000/signed-out?app=zlb",
        APP_SCHEME_LOGOUT,
    ],
)
def test_a_native_apps_loopback_post_logout_uri_matches_on_any_port(presented: str) -> None:
    assert native().accepts_post_logout_redirect_uri(presented)


@pytest.mark.parametrize(
    "presented",
    [
        "http://127.0.0.1:5000/signed-out/",
        "http://127.0.0.1:5000/signed-out?x=1",
        "http://[::1]:5000/signed-out",  # the query is part of what is compared
        "http://localhost:5000/signed-out",
        "http://127.0.0.2:5000/signed-out",
        "http://127.0.0.1:5000@evil.example/signed-out",
        "https://127.0.0.1:5000/signed-out",
        "http://127.0.0.1:0/signed-out",
        "http://127.0.0.1:65536/signed-out",
        "http://127.0.0.1:5000/signed-out#x",
        "cn.gov.zj.zlb:/signed-out/",
        "http://127.0.0.1:5000/callback",  # a redirect URI is not a post-logout URI
    ],
)
def test_a_native_apps_post_logout_uri_variant_is_not_its_uri(presented: str) -> None:
    assert not native().accepts_post_logout_redirect_uri(presented)


def test_a_web_portals_loopback_post_logout_uri_is_compared_exactly_port_included() -> None:
    portal = web()
    assert portal.accepts_post_logout_redirect_uri(WEB_LOGOUT)
    for port in ("8081", "1", "51234"):
        assert not portal.accepts_post_logout_redirect_uri(f"http://127.0.0.1:{port}/signed-out")
    assert not portal.accepts_post_logout_redirect_uri("http://127.0.0.1/signed-out")


# --- the logout endpoint and the way back from the region ---------------------------------------


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    folder: Path = tmp_path_factory.mktemp("native-logout")
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


def logout(app: Flask, client_id: str, target: str) -> Any:
    query = {"client_id": client_id, "post_logout_redirect_uri": target, "state": "app-state"}
    return app.test_client().get(f"/logout?{urlencode(query)}", headers={"Accept": "text/html"})


def test_the_logout_sends_a_native_app_back_to_the_port_it_named(app: Flask) -> None:
    answer = logout(app, "zlb-app", "http://127.0.0.1:51234/signed-out")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "http://127.0.0.1:51234/signed-out?state=app-state"


@pytest.mark.parametrize(
    ("client_id", "target"),
    [
        ("zj-portal", "http://127.0.0.1:8081/signed-out"),  # a web portal, another port
        ("zlb-app", "http://localhost:51234/signed-out"),
        ("zlb-app", "http://127.0.0.1:51234/elsewhere"),
    ],
)
def test_an_unregistered_post_logout_uri_gets_a_page_never_a_redirect(
    app: Flask, client_id: str, target: str
) -> None:
    answer = logout(app, client_id, target)
    assert answer.status_code == 400
    assert "Location" not in answer.headers


def back_from_region(app: Flask, services: Services, onward: Onward) -> Any:
    state = _seal_state(services, "zj", onward, services.clock())
    return app.test_client().get(f"/logout/return/zj?{urlencode({'state': state})}")


@pytest.mark.parametrize(
    ("client_id", "target"),
    [
        ("zlb-app", "http://127.0.0.1:51234/signed-out"),
        ("zlb-app", "http://[::1]:40000/signed-out?app=zlb"),
        ("zlb-app", "http://[::1]/signed-out?app=zlb"),
        ("zlb-app", NATIVE_LOGOUT),
        ("zlb-app", APP_SCHEME_LOGOUT),
        ("zj-portal", WEB_LOGOUT),
    ],
)
def test_the_way_back_from_the_region_finds_the_target_the_logout_accepted(
    app: Flask, services: Services, client_id: str, target: str
) -> None:
    answer = back_from_region(app, services, Onward(client_id, target, "app-state"))
    assert answer.status_code == 303
    separator = "&" if "?" in target else "?"
    assert answer.headers["Location"] == f"{target}{separator}state=app-state"


def test_the_way_back_goes_nowhere_a_portal_no_longer_accepts(
    app: Flask, services: Services
) -> None:
    """Rebuilt from the sealed host and port, the target is checked again against the
    registration as it is now: a web portal gets no port of the native rule, and a native app
    whose URI was removed meanwhile gets the signed-out page."""
    answer = back_from_region(
        app, services, Onward("zj-portal", "http://127.0.0.1:8081/signed-out", None)
    )
    assert answer.status_code == 200
    assert "Location" not in answer.headers
    services.registry.put_portal(
        native(post_logout_redirect_uris=[APP_SCHEME_LOGOUT]), datetime.now(UTC)
    )
    try:
        answer = back_from_region(
            app, services, Onward("zlb-app", "http://127.0.0.1:51234/signed-out", None)
        )
        assert answer.status_code == 200
        assert "Location" not in answer.headers
    finally:
        services.registry.put_portal(native(), datetime.now(UTC))
