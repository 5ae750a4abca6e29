"""A demo portal: a relying party of the gateway, as a province or a ministry would write one.

It uses Authlib's Flask OAuth client (``authlib.integrations.flask_client``) against the
gateway's discovery document: authorization code flow with PKCE S256 and a nonce (OIDC Core
§3.1), the ID token's claims shown after sign-in, RP-Initiated Logout 1.0 with
``post_logout_redirect_uri``, and a Back-Channel Logout 1.0 endpoint that ends the portal's own
session when the person signs out anywhere in the federation.

The portal keeps its sessions on the server (the cookie holds an opaque id) precisely so that a
back-channel logout, which arrives without the browser, can end them.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, Response, jsonify, redirect, render_template, request, session, url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from werkzeug.wrappers import Response as BaseResponse

log = logging.getLogger(__name__)

BACKCHANNEL_EVENT: Final = "http://schemas.openid.net/event/backchannel-logout"
ALGORITHMS: Final = ["RS256", "ES256"]
LOGOUT_TOKEN_LEEWAY: Final = 60
#: Claims shown first on the page, in this order; the rest follow alphabetically.
CLAIM_ORDER: Final = ("name", "sub", "home_region", "acr", "amr", "auth_time", "sid", "iss", "aud")


@dataclass(frozen=True)
class PortalLink:
    label: str
    url: str


@dataclass(frozen=True)
class PortalConfig:
    """One demo portal: its registration at the gateway and how its page looks."""

    client_id: str
    client_secret: str = field(repr=False)
    issuer: str
    base_url: str
    name_zh: str
    name_en: str
    scope: str = "openid profile"
    accent: str = "#1f5fae"
    links: tuple[PortalLink, ...] = ()
    #: The ``claims`` request parameter (OIDC Core §5.5) it sends, as JSON: the loa3 portal asks
    #: for ``verified_claims`` (OpenID Connect for Identity Assurance 1.0 §6) this way.
    claims: str | None = None

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return f"{self.base_url}/signed-out"

    @property
    def backchannel_logout_uri(self) -> str:
        return f"{self.base_url}/backchannel-logout"


@dataclass(frozen=True)
class LocalSession:
    claims: dict[str, Any]
    id_token: str
    sid: str | None
    sub: str


class LocalSessions:
    """The portal's sessions, on the server, findable by the gateway's ``sid`` and ``sub``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, LocalSession] = {}
        self._ended: set[str] = set()

    def create(self, local: LocalSession) -> str:
        local_id = secrets.token_urlsafe(24)
        with self._lock:
            self._sessions[local_id] = local
        return local_id

    def get(self, local_id: str | None) -> LocalSession | None:
        with self._lock:
            return self._sessions.get(local_id) if local_id else None

    def was_ended_remotely(self, local_id: str | None) -> bool:
        with self._lock:
            return bool(local_id) and local_id in self._ended

    def end(self, local_id: str | None) -> None:
        with self._lock:
            if local_id:
                self._sessions.pop(local_id, None)
                self._ended.discard(local_id)

    def end_matching(self, sid: str | None, sub: str | None) -> int:
        """Back-Channel Logout §2.7: end the sessions of ``sid``, or of ``sub`` without one."""
        with self._lock:
            doomed = [
                local_id
                for local_id, local in self._sessions.items()
                if (sid is not None and local.sid == sid)
                or (sid is None and sub is not None and local.sub == sub)
            ]
            for local_id in doomed:
                del self._sessions[local_id]
                self._ended.add(local_id)
            return len(doomed)


class LogoutTokenError(Exception):
    """A logout token failed validation (Back-Channel Logout 1.0 §2.6); the reason is safe."""


class LogoutTokenValidator:
    """Back-Channel Logout 1.0 §2.6, with the gateway's JWKS (refetched on an unknown kid)."""

    def __init__(self, issuer: str, client_id: str, fetch_jwks: Any) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self._fetch_jwks = fetch_jwks
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def validate(self, value: str, now: float | None = None) -> dict[str, Any]:
        moment = time.time() if now is None else now
        token = self._decode(value)
        if token.header.get("typ", "logout+jwt") != "logout+jwt":
            raise LogoutTokenError("typ is not logout+jwt")
        claims = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            now=int(moment),
            leeway=LOGOUT_TOKEN_LEEWAY,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            iat={"essential": True},
            exp={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            raise LogoutTokenError(f"claims rejected ({error.error})") from None
        events = claims.get("events")
        if not isinstance(events, dict) or BACKCHANNEL_EVENT not in events:
            raise LogoutTokenError("no back-channel logout event")
        if "nonce" in claims:
            raise LogoutTokenError("a logout token must not contain a nonce")
        if not isinstance(claims.get("sid"), str) and not isinstance(claims.get("sub"), str):
            raise LogoutTokenError("neither sid nor sub")
        self._check_replay(str(claims["jti"]), float(claims["exp"]), moment)
        return claims

    def _decode(self, value: str) -> jwt.Token:
        registry = JWSRegistry(algorithms=ALGORITHMS)
        for force in (False, True):
            keys = KeySet.import_key_set(self._fetch_jwks(force))
            try:
                return jwt.decode(value, keys, registry=registry)
            except (JoseError, ValueError) as error:
                if force:
                    raise LogoutTokenError(f"signature rejected ({type(error).__name__})") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_replay(self, jti: str, exp: float, now: float) -> None:
        with self._lock:
            self._seen = {k: v for k, v in self._seen.items() if v + LOGOUT_TOKEN_LEEWAY > now}
            if jti in self._seen:
                raise LogoutTokenError("replayed logout token")
            self._seen[jti] = exp


def ordered_claims(claims: dict[str, Any]) -> list[tuple[str, str]]:
    first = [name for name in CLAIM_ORDER if name in claims]
    rest = sorted(name for name in claims if name not in CLAIM_ORDER)
    return [(name, _show(claims[name])) for name in [*first, *rest]]


def _show(value: Any) -> str:
    if isinstance(value, dict):  # acting_for, verified_claims: as the ID token has them
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    return str(value)


def create_portal_app(config: PortalConfig) -> Flask:
    """The portal's Flask application."""
    app = Flask(__name__)
    app.config["SECRET_KEY"] = secrets.token_bytes(32)
    # Every portal and the gateway share the host 127.0.0.1 in the demo, and cookies ignore the
    # port: each application needs a cookie name of its own.
    app.config["SESSION_COOKIE_NAME"] = f"{config.client_id}-session"
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    oauth = OAuth(app)
    client = oauth.register(
        name="tongxing",
        client_id=config.client_id,
        client_secret=config.client_secret,
        server_metadata_url=f"{config.issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": config.scope,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
        },
    )
    sessions = LocalSessions()
    validator = LogoutTokenValidator(
        config.issuer, config.client_id, lambda force: client.fetch_jwk_set(force=force)
    )
    app.extensions["tongxing_demo.sessions"] = sessions

    def page(**context: Any) -> str:
        local_id = session.get("local")
        local = sessions.get(local_id)
        ended = sessions.was_ended_remotely(local_id)
        if local is None and local_id:
            session.pop("local", None)
            sessions.end(local_id)
        return render_template(
            "portal.html",
            portal=config,
            user=local,
            claims=ordered_claims(local.claims) if local else [],
            ended_elsewhere=ended,
            **context,
        )

    @app.get("/")
    def index() -> str:
        return page()

    @app.get("/login")
    def login() -> BaseResponse:
        extra = {"claims": config.claims} if config.claims else {}
        response: BaseResponse = client.authorize_redirect(config.redirect_uri, **extra)
        return response

    @app.get("/callback")
    def callback() -> str | BaseResponse:
        try:
            token = client.authorize_access_token()
        except OAuthError as error:
            log.warning("sign-in at %s failed: %s", config.client_id, error.error)
            return page(error=error.error, error_description=error.description)
        claims = dict(token.get("userinfo") or {})
        local = LocalSession(
            claims=claims,
            id_token=str(token["id_token"]),
            sid=claims.get("sid") if isinstance(claims.get("sid"), str) else None,
            sub=str(claims.get("sub", "")),
        )
        sessions.end(session.get("local"))
        session["local"] = sessions.create(local)
        return redirect(url_for("index"), code=303)

    @app.post("/logout")
    def logout() -> BaseResponse:
        """RP-Initiated Logout 1.0 §2: end the local session, then the gateway's."""
        local_id = session.pop("local", None)
        local = sessions.get(local_id)
        sessions.end(local_id)
        if local is None:
            return redirect(url_for("index"), code=303)
        response: BaseResponse = client.logout_redirect(
            post_logout_redirect_uri=config.post_logout_redirect_uri,
            id_token_hint=local.id_token,
        )
        return response

    @app.get("/signed-out")
    def signed_out() -> str:
        try:
            client.validate_logout_response()
        except OAuthError:
            return page(error="invalid_state")
        return page(signed_out=True)

    @app.post("/backchannel-logout")
    def backchannel_logout() -> tuple[Response, int]:
        """Back-Channel Logout 1.0 §2.5-§2.8: 200 when done, 400 for a bad token."""
        value = request.form.get("logout_token", "")
        try:
            claims = validator.validate(value)
        except LogoutTokenError as error:
            log.warning("refused a logout token at %s: %s", config.client_id, error)
            response = jsonify({"error": "invalid_request", "error_description": str(error)})
            return _no_store(response), 400
        ended = sessions.end_matching(claims.get("sid"), claims.get("sub"))
        log.info("back-channel logout at %s ended %d session(s)", config.client_id, ended)
        return _no_store(jsonify({})), 200

    return app


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response
