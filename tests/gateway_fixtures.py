"""The gateway under test, served over real HTTP on loopback, and what it needs around it.

Regions are real OpenID Providers (a Keycloak realm, Node's oidc-provider); portals are driven
through openid-client (``tests/peers/rp.mjs``) and headless Chromium.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import requests
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from playwright.sync_api import Page
from tongxing_dev.keycloak import KeycloakEndpoint
from tongxing_dev.peers import PEERS
from tongxing_dev.process import free_port
from werkzeug.serving import BaseWSGIServer, make_server

from gateway.app import create_app
from gateway.services import Services, build_services
from gateway.settings import Settings

PERSON_ID = "11010519491231002X"  # the worked example of GB 11643-1999


@dataclass
class RunningGateway:
    issuer: str
    admin_token: str  # the platform's (role platform)
    operator_token: str  # this release's operator's (role operator)
    services: Services
    server: BaseWSGIServer

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The admin API with the platform's token."""
        return self.admin_as(self.admin_token, method, path, body)

    def admin_as(
        self, token: str, method: str, path: str, body: dict[str, Any] | None = None
    ) -> Any:
        """The admin API with any bearer token (the operator's, a reader's, a wrong one)."""
        return requests.request(
            method,
            f"{self.issuer}/admin/v1{path}",
            json=body,
            timeout=10,
            headers={"Authorization": f"Bearer {token}"},
        )


def start_gateway(
    data_dir: Path,
    database_url: str = "",
    *,
    region_level_ceilings: dict[str, str] | None = None,
    level_ceiling: str | None = None,
    **tuned: Any,
) -> Iterator[RunningGateway]:
    """A gateway on a free loopback port, with a platform and an operator token.

    ``level_ceiling`` and ``region_level_ceilings`` are the platform's ceilings (the gateway's
    default, ``loa2``, when not given); ``tuned`` are further settings a test chooses
    (``rate_limits=...``, ``region_circuit=...``, ``proxy_hops=1``).
    """
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    ceilings: dict[str, Any] = {}
    if level_ceiling is not None:
        ceilings["level_ceiling"] = level_ceiling
    if region_level_ceilings is not None:
        ceilings["region_level_ceilings"] = region_level_ceilings
    settings = Settings.model_validate(
        {
            "issuer": issuer,
            "data_dir": data_dir,
            "database_url": database_url,
            "create_keys": True,
            "insecure_allow_http": True,
            "national_secret": secrets.token_urlsafe(32),
            "pairwise_secret": secrets.token_urlsafe(32),
            "admin_token": secrets.token_urlsafe(32),
            "operator_token": secrets.token_urlsafe(32),
            "session_secret": secrets.token_urlsafe(32),
            "mfa_secret": secrets.token_urlsafe(32),
            **ceilings,
            **tuned,
        }
    )
    assert settings.operator_token is not None
    services = build_services(settings)
    app = create_app(services=services)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningGateway(
            issuer=issuer,
            admin_token=settings.admin_token.get_secret_value(),
            operator_token=settings.operator_token.get_secret_value(),
            services=services,
            server=server,
        )
    finally:
        server.shutdown()
        server.server_close()
        services.close()


@dataclass
class Portal:
    """A portal registered with the gateway, driven through openid-client."""

    gateway: RunningGateway
    client_id: str
    client_secret: str
    redirect_uri: str
    metadata: dict[str, Any] = field(default_factory=dict)  # what openid-client should expect

    @property
    def credentials(self) -> str:
        return json.dumps(
            {"client_id": self.client_id, "client_secret": self.client_secret, **self.metadata}
        )

    def rp(self, command: str, *args: str) -> Any:
        return rp(command, self.gateway.issuer, self.credentials, *args)

    def start(self, scope: str = "openid profile", **extra: str) -> dict[str, Any]:
        """The authorization request openid-client builds: ``url`` and ``pending`` checks."""
        started: dict[str, Any] = self.rp("authorize", self.redirect_uri, scope, json.dumps(extra))
        return started

    def finish(self, callback_url: str, started: dict[str, Any]) -> Any:
        """openid-client's code exchange with every check (state, iss, nonce, PKCE)."""
        return self.rp("callback", callback_url, json.dumps(started["pending"]))


def rp(command: str, *args: str) -> Any:
    """Run ``rp.mjs`` (openid-client); return its JSON, or raise with its error text."""
    done = subprocess.run(
        ["node", str(PEERS / "rp.mjs"), command, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=PEERS,
    )
    if done.returncode != 0:
        raise RpError(done.stderr.strip())
    return json.loads(done.stdout)


class RpError(Exception):
    """openid-client refused something; the message is its error."""


class PortalSite:
    """The portals' own web server on loopback: it records every callback and logout token."""

    def __init__(self) -> None:
        self.visits: list[str] = []
        self.logout_tokens: dict[str, list[str]] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.visits.append(f"{site.base}{self.path}")
                self._answer(200, "portal page")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                name = self.path.strip("/").split("/")[0]
                site.logout_tokens.setdefault(name, []).extend(form.get("logout_token", []))
                self._answer(200, "")

            def _answer(self, status: int, text: str) -> None:
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def last_visit(self, prefix: str) -> str:
        found = [url for url in self.visits if url.startswith(prefix)]
        assert found, f"no visit to {prefix}"
        return found[-1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def register_portal(gateway: RunningGateway, site: PortalSite, name: str, **extra: Any) -> Portal:
    client_id = f"portal-{name}-{uuid.uuid4().hex[:6]}"
    redirect_uri = f"{site.base}/{client_id}/callback"
    body = {
        "names": {"zh": f"门户{name}", "en": f"Portal {name}"},
        "owner": "zj",
        "redirect_uris": [redirect_uri],
        "post_logout_redirect_uris": [f"{site.base}/{client_id}/bye"],
        "backchannel_logout_uri": f"{site.base}/{client_id}/backchannel",
        "scopes": ["openid", "profile", "phone"],
        **extra,
    }
    response = gateway.admin("PUT", f"/portals/{client_id}", body)
    assert response.status_code == 201, response.text
    # Public and private_key_jwt portals get no secret.
    metadata = {k: v for k, v in extra.items() if k == "id_token_signed_response_alg"}
    secret = response.json().get("client_secret", "")
    return Portal(gateway, client_id, secret, redirect_uri, metadata)


@dataclass
class KeycloakRegion:
    code: str
    realm: str
    admin: KeycloakAdmin
    username: str = "zhangsan"
    password: str = field(default_factory=lambda: "Zs-" + secrets.token_urlsafe(12))


def keycloak_region(
    keycloak: KeycloakEndpoint, gateway: RunningGateway, code: str, identity_number: str = PERSON_ID
) -> KeycloakRegion:
    """A Keycloak realm acting as a province's IdP, registered with the gateway as ``code``."""
    admin = KeycloakAdmin(
        connection=KeycloakOpenIDConnection(
            server_url=keycloak.url,
            username=keycloak.admin_user,
            password=keycloak.admin_password,
            realm_name="master",
            user_realm_name="master",
        )
    )
    realm = f"{code}-{uuid.uuid4().hex[:6]}"
    admin.create_realm({"realm": realm, "enabled": True})
    admin.change_current_realm(realm)
    profile = admin.get_realm_users_profile()
    profile["unmanagedAttributePolicy"] = "ENABLED"
    admin.update_realm_users_profile(profile)
    secret = secrets.token_urlsafe(24)
    admin.create_client(
        {
            "clientId": "tongxing",
            "secret": secret,
            "publicClient": False,
            "standardFlowEnabled": True,
            "directAccessGrantsEnabled": False,
            "redirectUris": [f"{gateway.issuer}/callback/{code}"],
            "attributes": {
                "pkce.code.challenge.method": "S256",
                # As realms/_base.json.j2 registers them: the way back from a logout at the
                # region, and the region's back-channel logout to the gateway.
                "post.logout.redirect.uris": f"{gateway.issuer}/logout/return/{code}",
                "backchannel.logout.url": f"{gateway.issuer}/backchannel-logout/{code}",
                "backchannel.logout.session.required": "true",
                "backchannel.logout.revoke.offline.tokens": "false",
            },
            "protocolMappers": [
                {
                    "name": "id_number",
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-usermodel-attribute-mapper",
                    "config": {
                        "user.attribute": "id_number",
                        "claim.name": "id_number",
                        "id.token.claim": "true",
                        "access.token.claim": "false",
                        "userinfo.token.claim": "true",
                        "jsonType.label": "String",
                    },
                }
            ],
        }
    )
    region = KeycloakRegion(code, realm, admin)
    admin.create_user(
        {
            "username": region.username,
            "firstName": "三",
            "lastName": "张",
            "enabled": True,
            "email": "zhangsan@example.cn",
            "emailVerified": True,
            "attributes": {"id_number": [identity_number]},
            "credentials": [{"type": "password", "value": region.password, "temporary": False}],
        }
    )
    response = gateway.admin(
        "PUT",
        f"/regions/{code}",
        {
            "names": {"zh": "浙江", "en": "Zhejiang"},
            "kind": "province",
            "issuer": keycloak.issuer(realm),
            "client_id": "tongxing",
            "client_secret": secret,
        },
    )
    assert response.status_code == 201, response.text
    return region


def add_keycloak_person(
    region: KeycloakRegion, username: str, identity_number: str
) -> KeycloakRegion:
    """Another person in the same realm; sign in as them with :func:`sign_in_at_keycloak`."""
    person = replace(region, username=username, password="Ls-" + secrets.token_urlsafe(12))
    region.admin.change_current_realm(region.realm)
    region.admin.create_user(
        {
            "username": username,
            "firstName": "四",
            "lastName": "李",
            "enabled": True,
            "email": f"{username}@example.cn",
            "emailVerified": True,
            "attributes": {"id_number": [identity_number]},
            "credentials": [{"type": "password", "value": person.password, "temporary": False}],
        }
    )
    return person


def sign_in_at_keycloak(page: Page, region: KeycloakRegion) -> None:
    page.fill("#username", region.username)
    page.fill("#password", region.password)
    page.click("#kc-login")
