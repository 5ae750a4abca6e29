"""Step-up pages: enrol a TOTP authenticator or use it, then resume the authorization request.

Plain HTML forms (no JavaScript), zh-CN first and English second. Every form carries a CSRF
token; the request to resume is the browser's pending authorization, bound to its SSO session
(:meth:`gateway.signin.SignIn.step_up_session`), never taken from the URL, so these pages
cannot be turned into an open redirect. Throttling and lock-out live in
:class:`gateway.mfa.TotpService` and its store, so they hold on every path and every replica.
"""

from __future__ import annotations

import base64

from flask import Blueprint, render_template, request, url_for
from werkzeug.wrappers import Response

from gateway.mfa import MfaError
from gateway.provider import csrf
from gateway.provider.answers import pending_id, render, session_id
from gateway.services import Services, current_services
from gateway.store.contract import SsoSession

blueprint = Blueprint("stepup", __name__)
FORM = "stepup"  # the CSRF purpose of the enrol and verify forms


def _sso(services: Services) -> SsoSession:
    return services.signin.step_up_session(pending_id(), session_id())


def _client_ip() -> str:
    return request.remote_addr or "unknown"


def _label(sso: SsoSession) -> str:
    name = sso.claims.get("name")
    return str(name) if name else sso.subject[:12]


def _form(services: Services, sso: SsoSession, error: MfaError | None = None) -> tuple[str, int]:
    status = services.totp.status(sso.subject)
    code = 200 if error is None else error.status
    if status.enrolled:
        page = render_template("mfa_verify.html", csrf=csrf.token(FORM), error=error)
        return page, code
    enrolment = services.totp.begin_enrolment(sso.subject, _label(sso))
    qr = base64.b64encode(enrolment.qr_svg.encode()).decode()
    grouped = " ".join(enrolment.secret[i : i + 4] for i in range(0, len(enrolment.secret), 4))
    page = render_template(
        "mfa_enrol.html",
        csrf=csrf.token(FORM),
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


@blueprint.post("/mfa/enrol")
def enrol() -> tuple[str, int] | Response:
    services = current_services()
    sso = _sso(services)
    csrf.require(FORM)
    try:
        codes = services.totp.confirm_enrolment(
            sso.subject, request.form.get("code", ""), _client_ip()
        )
    except MfaError as error:
        return _form(services, sso, error)
    services.signin.stepped_up(sso, ("otp",))
    page = render_template("mfa_recovery.html", codes=codes, next=url_for("stepup.resume"))
    return page, 200


@blueprint.post("/mfa/verify")
def verify() -> tuple[str, int] | Response:
    services = current_services()
    sso = _sso(services)
    csrf.require(FORM)
    recovery = request.form.get("recovery_code", "").strip()
    try:
        if recovery:
            verified = services.totp.verify_recovery_code(sso.subject, recovery, _client_ip())
        else:
            verified = services.totp.verify(sso.subject, request.form.get("code", ""), _client_ip())
    except MfaError as error:
        return _form(services, sso, error)
    services.signin.stepped_up(sso, verified.amr)
    return resume()


@blueprint.route("/mfa/continue", methods=["GET", "POST"])
def resume() -> Response:
    """The portal's request, answered with the raised session."""
    return render(current_services().signin.resume(pending_id(), session_id()))
