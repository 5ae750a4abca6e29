"""The Flask application factory: wires blueprints and services; nothing else."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway.admin.api import blueprint as admin
from gateway.errors import GatewayError, method_not_allowed, not_found, server_error
from gateway.health import blueprint as health
from gateway.provider.authorize import blueprint as authorize
from gateway.provider.consents import blueprint as consents
from gateway.provider.discovery import blueprint as discovery
from gateway.provider.logout import blueprint as logout
from gateway.provider.server import build_authorization_server
from gateway.provider.stepup import blueprint as stepup
from gateway.provider.token import blueprint as token
from gateway.provider.userinfo import blueprint as userinfo
from gateway.services import Services, build_services
from gateway.settings import Settings

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


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    """Build the gateway. ``services`` may be passed in by tests and the demo."""
    if services is None:
        services = build_services(settings or Settings())  # type: ignore[call-arg]
    app = Flask(__name__)
    app.config["SECRET_KEY"] = services.settings.session_secret.get_secret_value()
    app.config["SESSION_COOKIE_SECURE"] = not services.settings.insecure_allow_http
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["JSON_AS_ASCII"] = False
    app.extensions["tongxing"] = services
    if services.settings.proxy_hops:
        hops = services.settings.proxy_hops
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )

    app.extensions["tongxing.oauth"] = build_authorization_server(services)
    blueprints = (discovery, authorize, stepup, consents, token, userinfo, logout, health, admin)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)

    app.after_request(_security_headers)
    app.register_error_handler(GatewayError, render_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    return app


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def wants_json() -> bool:
    """API callers get JSON errors, people get a page."""
    if request.path.startswith(("/admin/", "/token", "/introspect", "/revoke", "/userinfo")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def render_error(error: GatewayError) -> tuple[Response | str, int]:
    if wants_json():
        body: dict[str, object] = {"error": error.code, "error_description": error.message_en}
        body.update(error.details)
        return jsonify(body), error.status
    page = render_template(
        "error.html",
        code=error.code,
        title_zh=error.title_zh,
        title_en=error.title_en,
        message_zh=error.message_zh,
        message_en=error.message_en,
    )
    return page, error.status


def _http_error(error: HTTPException) -> tuple[Response | str, int]:
    if error.code == 404:
        return render_error(not_found())
    if error.code == 405:
        return render_error(method_not_allowed())
    gateway_error = GatewayError(
        "invalid_request",
        "请求无效",
        "Invalid request",
        "请求格式不正确。",
        error.description or "The request is malformed.",
        status=error.code or 400,
    )
    return render_error(gateway_error)


def _unexpected(error: Exception) -> tuple[Response | str, int]:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return render_error(server_error())
