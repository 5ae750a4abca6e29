"""The Flask application factory: wires blueprints and services; nothing else."""

from __future__ import annotations

import logging

from flask import Flask, Request, Response, jsonify, make_response, render_template, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway.admin.api import blueprint as admin
from gateway.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    ServerError,
    StoreUnavailable,
    TongxingError,
)
from gateway.federation.explicit_views import blueprint as federation_explicit  # X19, §12.2
from gateway.federation.views import admin_blueprint as federation_admin
from gateway.federation.views import blueprint as federation
from gateway.health import blueprint as health
from gateway.limits import RequestLimits
from gateway.logs import RequestIds
from gateway.provider import language
from gateway.provider.answers import HOST_PREFIX
from gateway.provider.authorize import blueprint as authorize
from gateway.provider.backchannel import blueprint as backchannel
from gateway.provider.consents import blueprint as consents
from gateway.provider.discovery import blueprint as discovery
from gateway.provider.logout import blueprint as logout
from gateway.provider.mandates import blueprint as mandates
from gateway.provider.oauth import EXTENSION, build_oauth_server
from gateway.provider.par import blueprint as par  # RFC 9126 (P20)
from gateway.provider.proofing import blueprint as proofing
from gateway.provider.stepup import blueprint as stepup
from gateway.provider.token import blueprint as token
from gateway.provider.userinfo import blueprint as userinfo
from gateway.request_metrics import instrument
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.store.contract import StoreUnavailableError

log = logging.getLogger(__name__)

# Pages may not be framed (clickjacking on the login and consent pages) and leak no referrer.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


SESSIONLESS_PATHS = frozenset(
    {
        "/token",
        "/par",
        "/introspect",
        "/revoke",
        "/userinfo",
        "/jwks",
        "/verification",
        "/healthz",
        "/readyz",
        "/status",
        "/metrics",
    }
)
"""Endpoints for machines (portals, regions, probes): they never use the forms' cookie."""
SESSIONLESS_PREFIXES = ("/.well-known/", "/admin/", "/backchannel-logout/", "/federation/")
"""Likewise, by prefix: discovery and federation documents, the admin API, regions' logouts."""


class PageSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened for the gateway's pages only.

    The session holds nothing but the CSRF tokens of the gateway's own forms
    (:mod:`gateway.provider.csrf`). The endpoints portals, regions and probes call (the token
    endpoint, RFC 6749 §3.2; userinfo, OIDC Core §5.3; introspection and revocation, RFC 7662
    and RFC 7009; discovery and the JWKS, OIDC Discovery §4; the admin API) never use it, so
    for them it is neither opened nor saved: no cookie verified, no serializer built, no
    ``Vary: Cookie`` (about 3 % of a userinfo answer's CPU). They get Flask's null session,
    which refuses any write: a view that tried would fail loudly, not set a cookie.

    Decided by path, before the URL is matched (Flask opens the session first); the paths are
    fixed by the blueprints, :data:`SESSIONLESS_PATHS` and :data:`SESSIONLESS_PREFIXES`.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        path = request.path
        if path in SESSIONLESS_PATHS or path.startswith(SESSIONLESS_PREFIXES):
            return None  # Flask's null session; is_null_session: never saved
        return super().open_session(app, request)


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    """Build the gateway. ``services`` may be passed in by tests and the demo."""
    if services is None:
        services = build_services(settings or Settings())  # type: ignore[call-arg]
    app = Flask(__name__)
    app.session_interface = PageSessionInterface()
    app.config["SECRET_KEY"] = services.settings.session_secret.get_secret_value()
    app.config["SESSION_COOKIE_SECURE"] = not services.settings.insecure_allow_http
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if not services.settings.insecure_allow_http:  # the forms' cookie, as the sign-in's
        app.config["SESSION_COOKIE_NAME"] = f"{HOST_PREFIX}tongxing_forms"
    app.config["JSON_AS_ASCII"] = False
    app.extensions["tongxing"] = services
    if services.settings.proxy_hops:
        hops = services.settings.proxy_hops
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )

    app.extensions[EXTENSION] = build_oauth_server(services.tokens)
    blueprints = (
        discovery,
        authorize,
        stepup,
        consents,
        mandates,
        proofing,
        token,
        par,
        userinfo,
        logout,
        backchannel,
        health,
        admin,
        federation,  # issue 17: OpenID Federation 1.0
        federation_admin,
        federation_explicit,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)

    instrument(app)  # request counts and times, /metrics (internal, as the probes)
    RequestIds.install(app)  # X-Request-ID in and out, in every log line (gateway.logs)
    RequestLimits.install(app, services.settings)  # before any store access; views find it
    app.before_request(_refuse_undecodable_query)
    app.after_request(_security_headers)
    app.context_processor(language.template_values)  # which language leads on every page
    app.register_error_handler(TongxingError, render_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(StoreUnavailableError, _store_unavailable)
    app.register_error_handler(Exception, _unexpected)
    return app


def _refuse_undecodable_query() -> None:
    """Refuse a query string that is not UTF-8 before a view reads ``request.args``.

    Percent-encoded bytes that are not UTF-8 are decoded with replacement characters, but raw
    ones (a WSGI server hands the request line over as it came) make Werkzeug's ``args`` raise
    :class:`UnicodeDecodeError`, a 500 on every endpoint that reads a parameter (THREAT_MODEL
    row 7: bad input costs a refusal). RFC 3986 §2 allows only ASCII in a URI's query.
    """
    try:
        request.query_string.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(
            "the query string is not UTF-8",
            message_zh="查询字符串不是有效的 UTF-8。",
            message_en="The query string is not valid UTF-8.",
        ) from None


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def wants_json() -> bool:
    """API callers get JSON errors, people get a page. The federation's endpoints are always
    API (OpenID Federation 1.0 §8.9: ``application/json`` with ``error`` and
    ``error_description``, also for what Werkzeug or an unexpected fault answers)."""
    if (
        request.path.startswith(
            ("/admin/", "/token", "/introspect", "/revoke", "/userinfo", "/federation/")
        )
        or request.path == "/.well-known/openid-federation"
    ):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def render_error(error: TongxingError) -> tuple[Response | str, int]:
    """The one answer to every :class:`TongxingError`: JSON for API callers, a page for people.

    Both carry the class's code and texts; the operators' ``detail`` goes to the log only.
    """
    return _answer(error, error.status)


def _answer(error: TongxingError, status: int) -> tuple[Response | str, int]:
    log.log(
        logging.WARNING if status >= 500 else logging.INFO,
        "%s %s answered %s %s: %r",
        request.method,
        request.path,
        status,
        error.code,
        error.detail,
        extra={"event": "request.refused", "error_code": error.code, "status": status},
    )
    if wants_json():
        body: dict[str, object] = {"error": error.code, "error_description": error.message_en}
        body.update(error.details)
        return jsonify(body), status
    page = render_template(
        "error.html",
        code=error.code,
        title_zh=error.title_zh,
        title_en=error.title_en,
        message_zh=error.message_zh,
        message_en=error.message_en,
    )
    return page, status


def _http_error(error: HTTPException) -> tuple[Response | str, int]:
    """What Werkzeug refused before (or instead of) a view, in the gateway's words.

    Its status stays Werkzeug's (a body too large is 413): the HTTP layer decided it.
    """
    if error.code == 404:
        return render_error(NotFound())
    if error.code == 405:
        return render_error(MethodNotAllowed())
    refused = InvalidRequest(type(error).__name__, message_en=error.description or None)
    return _answer(refused, error.code or 400)


def _store_unavailable(error: StoreUnavailableError) -> Response:
    """The store is down (a restart, a failover): 503 with ``Retry-After``, one log line."""
    log.warning("%s %s: the store is unavailable: %s", request.method, request.path, error)
    response = make_response(render_error(StoreUnavailable(str(error))))
    response.headers["Retry-After"] = str(StoreUnavailable.retry_after)
    return response


def _unexpected(error: Exception) -> tuple[Response | str, int]:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return render_error(ServerError())
