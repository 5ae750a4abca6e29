"""Step-up pages: enrol a TOTP authenticator or use it, then resume the authorization request.

Plain HTML forms (no JavaScript), zh-CN first and English second. Every form carries a CSRF
token; the request to resume is kept in the signed Flask session, never taken from the URL, so
these pages cannot be turned into an open redirect. Throttling and lock-out live in
:class:`gateway.mfa.TotpService` and its store, so they hold on every path and every replica.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from flask import Blueprint, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from gateway.errors import GatewayError
from gateway.mfa import MfaError
from gateway.provider.authorize import STEP_UP_CONTINUE
from gateway.services import Services, current_services
from gateway.sessions import SESSION_COOKIE
from gateway.store.contract import SsoSession

blueprint = Blueprint("stepup", __name__)
CSRF = "stepup_csrf"


def _sso(services: Services) -> SsoSession:
    sso = services.sessions.find(request.cookies.get(SESSION_COOKIE), datetime.now(UTC))
    if sso is None or not session.get(STEP_UP_CONTINUE):
        raise GatewayError(
            "login_expired",
            "登录已过期",
            "Sign-in expired",
            "请返回原网站重新登录。",
            "Go back to the site and sign in again.",
        )
    return sso


def _csrf() -> str:
    token: str = session.setdefault(CSRF, secrets.token_urlsafe(24))
    return token


def _check_csrf() -> None:
    if not secrets.compare_digest(request.form.get("csrf", ""), session.get(CSRF, "-")):
        raise GatewayError(
            "invalid_request",
            "请求已失效",
            "Form expired",
            "页面已过期，请重新打开。",
            "This page has expired; open it again.",
        )


def _client_ip() -> str:
    return request.remote_addr or "unknown"


def _label(sso: SsoSession) -> str:
    name = sso.claims.get("name")
    return str(name) if name else sso.subject[:12]


def _form(services: Services, sso: SsoSession, error: MfaError | None = None) -> tuple[str, int]:
    status = services.totp.status(sso.subject)
    code = 200 if error is None else error.status
    if status.enrolled:
        page = render_template("mfa_verify.html", csrf=_csrf(), error=error)
        return page, code
    enrolment = services.totp.begin_enrolment(sso.subject, _label(sso))
    qr = base64.b64encode(enrolment.qr_svg.encode()).decode()
    grouped = " ".join(enrolment.secret[i : i + 4] for i in range(0, len(enrolment.secret), 4))
    page = render_template(
        "mfa_enrol.html",
        csrf=_csrf(),
        error=error,
        qr=qr,
        secret=grouped,
        uri=enrolment.provisioning_uri,
    )
    return page, code


@blueprint.get("/mfa")
def second_factor() -> tuple[str, int]:
    services = current_services()
    return _form(services, _sso(services))


def _stepped_up(services: Services, sso: SsoSession, amr: tuple[str, ...]) -> None:
    methods = tuple(dict.fromkeys((*sso.amr, *amr, "mfa")))
    services.store.raise_session_assurance(sso.session_hash, "loa2", methods, datetime.now(UTC))


@blueprint.post("/mfa/enrol")
def enrol() -> tuple[str, int] | Response:
    services = current_services()
    sso = _sso(services)
    _check_csrf()
    try:
        codes = services.totp.confirm_enrolment(
            sso.subject, request.form.get("code", ""), _client_ip()
        )
    except MfaError as error:
        return _form(services, sso, error)
    _stepped_up(services, sso, ("otp",))
    page = render_template("mfa_recovery.html", codes=codes, next=url_for("stepup.resume"))
    return page, 200


@blueprint.post("/mfa/verify")
def verify() -> tuple[str, int] | Response:
    services = current_services()
    sso = _sso(services)
    _check_csrf()
    recovery = request.form.get("recovery_code", "").strip()
    try:
        if recovery:
            verified = services.totp.verify_recovery_code(sso.subject, recovery, _client_ip())
        else:
            verified = services.totp.verify(sso.subject, request.form.get("code", ""), _client_ip())
    except MfaError as error:
        return _form(services, sso, error)
    _stepped_up(services, sso, verified.amr)
    return resume()


@blueprint.route("/mfa/continue", methods=["GET", "POST"])
def resume() -> Response:
    target = session.pop(STEP_UP_CONTINUE, None)
    if not isinstance(target, str) or not target.startswith("/authorize?"):
        raise GatewayError(
            "login_expired",
            "登录已过期",
            "Sign-in expired",
            "请返回原网站重新登录。",
            "Go back to the site and sign in again.",
        )
    return redirect(target, code=303)
