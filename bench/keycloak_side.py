"""The Keycloak side: a bench realm, and credentials prepared before a measured run.

The realm is Keycloak's defaults plus what the comparison needs:

* refresh-token rotation as the gateway does it (``revokeRefreshToken``, no reuse), so that both
  sides answer a refresh with a new refresh token and refuse the old one;
* ``bench-rp``: a confidential client (``client_secret_basic``) with the standard flow, service
  accounts (``client_credentials``) and direct access grants. Direct access grants are enabled in
  this realm only, and only to *prepare* Keycloak's own tokens (one password grant = one user
  session = one live refresh token); no measured figure uses them;
* ``tongxing``: the gateway's confidential client (the realm is also the gateway's region), with
  the mapper that puts the resident identity number into the ID token;
* one person, with a password and a resident identity number.

Password hashing: while tokens and sessions are prepared, the realm's password policy is a cheap
``pbkdf2-sha256`` with one iteration, so that thousands of sessions can be made in seconds;
before the login scenario it is set back to Keycloak's default (argon2), and a warm-up login
re-hashes the stored password, so that the measured logins (the gateway's, through this realm,
and Keycloak's own) pay Keycloak's real cost.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from tongxing_dev.keycloak import KeycloakEndpoint

from bench.browser import Browser, FlowError, form_action, location, query

PERSON_ID = "11010519491231002X"  # the worked example of GB 11643-1999
CHEAP_HASHING = "hashAlgorithm(pbkdf2-sha256) and hashIterations(1)"
DEFAULT_HASHING = ""  # no policy: Keycloak's default (argon2 in 26.x)


@dataclass
class BenchRealm:
    endpoint: KeycloakEndpoint
    admin: KeycloakAdmin
    realm: str
    client_id: str
    client_secret: str
    redirect_uri: str
    username: str
    password: str
    upstream_client_secret: str

    @property
    def issuer(self) -> str:
        return self.endpoint.issuer(self.realm)

    @property
    def protocol(self) -> str:
        return f"{self.issuer}/protocol/openid-connect"

    @property
    def token_url(self) -> str:
        return f"{self.protocol}/token"

    @property
    def auth_url(self) -> str:
        return f"{self.protocol}/auth"

    @property
    def introspection_url(self) -> str:
        return f"{self.protocol}/token/introspect"

    @property
    def userinfo_url(self) -> str:
        return f"{self.protocol}/userinfo"

    @property
    def credentials(self) -> tuple[str, str]:
        return (self.client_id, self.client_secret)

    def set_password_hashing(self, policy: str) -> None:
        self.admin.update_realm(self.realm, {"passwordPolicy": policy})

    def delete(self) -> None:
        with contextlib.suppress(Exception):
            self.admin.delete_realm(self.realm)


def create_realm(
    endpoint: KeycloakEndpoint, *, gateway_callback: str, redirect_uri: str
) -> BenchRealm:
    admin = KeycloakAdmin(
        connection=KeycloakOpenIDConnection(
            server_url=endpoint.url,
            username=endpoint.admin_user,
            password=endpoint.admin_password,
            realm_name="master",
            user_realm_name="master",
            timeout=60,
        )
    )
    realm = f"bench-{uuid.uuid4().hex[:6]}"
    admin.create_realm(
        {
            "realm": realm,
            "enabled": True,
            "revokeRefreshToken": True,
            "refreshTokenMaxReuse": 0,
            # Codes are prepared in bulk before the run that redeems them.
            "accessCodeLifespan": 600,
            "passwordPolicy": CHEAP_HASHING,
        }
    )
    admin.change_current_realm(realm)
    profile = admin.get_realm_users_profile()
    profile["unmanagedAttributePolicy"] = "ENABLED"
    admin.update_realm_users_profile(profile)
    client_secret = secrets.token_urlsafe(24)
    admin.create_client(
        {
            "clientId": "bench-rp",
            "secret": client_secret,
            "publicClient": False,
            "standardFlowEnabled": True,
            "directAccessGrantsEnabled": True,
            "serviceAccountsEnabled": True,
            "redirectUris": [redirect_uri],
            "attributes": {"pkce.code.challenge.method": "S256"},
        }
    )
    upstream_secret = secrets.token_urlsafe(24)
    admin.create_client(
        {
            "clientId": "tongxing",
            "secret": upstream_secret,
            "publicClient": False,
            "standardFlowEnabled": True,
            "directAccessGrantsEnabled": False,
            "redirectUris": [gateway_callback],
            "attributes": {"pkce.code.challenge.method": "S256"},
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
    password = "Zs-" + secrets.token_urlsafe(12)
    admin.create_user(
        {
            "username": "zhangsan",
            "firstName": "三",
            "lastName": "张",
            "enabled": True,
            "email": "zhangsan@example.cn",
            "emailVerified": True,
            "attributes": {"id_number": [PERSON_ID]},
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        }
    )
    return BenchRealm(
        endpoint=endpoint,
        admin=admin,
        realm=realm,
        client_id="bench-rp",
        client_secret=client_secret,
        redirect_uri=redirect_uri,
        username="zhangsan",
        password=password,
        upstream_client_secret=upstream_secret,
    )


def password_grant(realm: BenchRealm, http: requests.Session) -> dict[str, Any]:
    """One direct access grant: a new user session, tokens with an RS256 ID token."""
    response = http.post(
        realm.token_url,
        data={
            "grant_type": "password",
            "username": realm.username,
            "password": realm.password,
            "scope": "openid profile",
        },
        auth=realm.credentials,
        timeout=30,
    )
    if response.status_code != 200:
        raise FlowError(f"Keycloak password grant: {response.status_code} {response.text[:200]}")
    tokens: dict[str, Any] = response.json()
    return tokens


def refresh_tokens(realm: BenchRealm, count: int, workers: int = 8) -> list[str]:
    """``count`` live refresh tokens, each of its own user session (rotation allows one each)."""

    def one(http: requests.Session) -> str:
        return str(password_grant(realm, http)["refresh_token"])

    return _parallel(count, workers, one)


def sessions(realm: BenchRealm, count: int, workers: int = 8) -> int:
    """Create ``count`` user sessions (direct access grants); returns how many were made."""
    return len(_parallel(count, workers, lambda http: password_grant(realm, http)["session_state"]))


def _parallel(count: int, workers: int, make: Any) -> list[str]:
    shares = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]

    def worker(share: int) -> list[str]:
        http = requests.Session()
        return [make(http) for _ in range(share)]

    with ThreadPoolExecutor(workers) as pool:
        return [item for batch in pool.map(worker, shares) for item in batch]


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def authorization_codes(realm: BenchRealm, count: int, workers: int = 8) -> list[tuple[str, str]]:
    """``count`` (code, code_verifier) pairs for ``bench-rp``.

    Each worker signs in once through Keycloak's login form, then asks the authorization
    endpoint for a code again and again: its SSO session answers without a password, as it
    would for a person who is already signed in.
    """
    shares = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]

    def worker(share: int) -> list[tuple[str, str]]:
        browser = Browser()
        login_page, _ = browser.request("GET", realm.auth_url, params=_auth_params(realm, "x")[0])
        browser.request(
            "POST",
            form_action(login_page),
            data={"username": realm.username, "password": realm.password, "credentialId": ""},
        )
        codes = []
        for _ in range(share):
            params, verifier = _auth_params(realm, secrets.token_urlsafe(8))
            response, _ = browser.request("GET", realm.auth_url, params=params)
            codes.append((query(location(response))["code"], verifier))
        return codes

    with ThreadPoolExecutor(workers) as pool:
        return [item for batch in pool.map(worker, shares) for item in batch]


def _auth_params(realm: BenchRealm, state: str) -> tuple[dict[str, str], str]:
    verifier, challenge = pkce_pair()
    return {
        "client_id": realm.client_id,
        "response_type": "code",
        "redirect_uri": realm.redirect_uri,
        "scope": "openid profile",
        "state": state,
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }, verifier


@dataclass(frozen=True)
class LoginTiming:
    """Keycloak's own full login: the authorization page, the password, the code exchange."""

    auth_page: float
    password: float
    token: float

    @property
    def total(self) -> float:
        return self.auth_page + self.password + self.token


def full_login(realm: BenchRealm) -> LoginTiming:
    """A person signing in at Keycloak for ``bench-rp``, from a fresh browser."""
    browser = Browser()
    params, verifier = _auth_params(realm, secrets.token_urlsafe(8))
    page, auth_page = browser.request("GET", realm.auth_url, params=params)
    answer, password = browser.request(
        "POST",
        form_action(page),
        data={"username": realm.username, "password": realm.password, "credentialId": ""},
    )
    code = query(location(answer)).get("code")
    if not code:
        raise FlowError(f"Keycloak's login gave no code: {location(answer)[:200]}")
    tokens, token = browser.request(
        "POST",
        realm.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": realm.redirect_uri,
            "code_verifier": verifier,
        },
        auth=realm.credentials,
    )
    if tokens.status_code != 200 or "id_token" not in tokens.json():
        raise FlowError(f"Keycloak's code exchange: {tokens.status_code} {tokens.text[:200]}")
    return LoginTiming(auth_page, password, token)
