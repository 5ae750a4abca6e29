"""Step-up pages: use a bound TOTP authenticator, then resume the authorization request.

Plain HTML forms (no JavaScript), zh-CN first and English second. Every form carries a CSRF
token; the request to resume is the browser's pending authorization, bound to its SSO session
(:meth:`gateway.signin.SignIn.step_up_session`), never taken from the URL, so these pages
cannot be turned into an open redirect. Throttling and lock-out live in
:class:`gateway.mfa.TotpService` and its store, so they hold on every path and every replica.

No factor is bound here. A session is stepped up only because its region vouched less than the
portal needs, and a factor may be bound only by a session whose region vouched at least the
level the factor will give (NIST SP 800-63B §6.1.2.1, :class:`gateway.mfa.BindingRule`): a
person without a factor is told how to get one (a stronger regional sign-in and the account
page, or the help desk) and the portal gets ``unmet_authentication_requirements`` (OIDC Core
§3.1.2.6). See ``docs/security/second-factor.md``.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from gateway.mfa import InvalidCodeError, LockedOutError, MfaError, SlowDownError
from gateway.observe import SteppedUp
from gateway.provider import csrf
from gateway.provider.answers import pending_id, render, session_id
from gateway.provider.proofing import service as proofing_service
from gateway.services import Services, current_services
from gateway.store.contract import SsoSession

blueprint = Blueprint("stepup", __name__)
FORM = "stepup"  # the CSRF purpose of the verify and cancel forms


@blueprint.after_request
def _no_store(response: Response) -> Response:
    """Second-factor pages are never cached (RFC 9111 §5.2.2.5; ``Pragma`` for HTTP/1.0)."""
    return no_store(response)


def no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _sso(services: Services) -> SsoSession:
    return services.signin.step_up_session(pending_id(), session_id())


def client_ip() -> str:
    return request.remote_addr or "unknown"


def form_page(template: str, status: int, error: MfaError | None, **values: object) -> Response:
    """A form page; a :class:`SlowDownError` adds ``Retry-After`` (RFC 9110 §10.2.3)."""
    page = render_template(template, error=error, **values)
    response = Response(page, status=status, mimetype="text/html")
    if isinstance(error, SlowDownError):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def _form(services: Services, sso: SsoSession, error: MfaError | None = None) -> Response:
    code = 200 if error is None else error.status
    if services.totp.status(sso.subject).enrolled:
        return form_page("mfa_verify.html", code, error, csrf=csrf.token(FORM))
    # No factor, and this session may not bind one (it vouched less than loa2 at its region).
    return form_page("mfa_unbound.html", code, error, csrf=csrf.token(FORM))


@blueprint.get("/mfa")
def second_factor() -> Response:
    services = current_services()
    sso = _sso(services)
    if proofing_service(services).due(sso):  # two factors already: loa3 needs proofing
        return redirect(url_for("proofing.start"), code=303)
    return _form(services, sso)


@blueprint.post("/mfa/verify")
def verify() -> Response:
    services = current_services()
    sso = _sso(services)
    csrf.require(FORM)
    recovery = request.form.get("recovery_code", "").strip()
    method = "recovery_code" if recovery else "totp"
    try:
        if recovery:
            verified = services.totp.verify_recovery_code(sso.subject, recovery, client_ip())
        else:
            verified = services.totp.verify(sso.subject, request.form.get("code", ""), client_ip())
    except MfaError as error:
        outcome = _OUTCOMES.get(type(error))
        if outcome is not None:  # a check that was made (or refused by the throttle)
            services.events.emit(SteppedUp(subject=sso.subject, method=method, outcome=outcome))
        return _form(services, sso, error)
    # The check is spent in the store by now; the session is raised next.
    services.events.emit(SteppedUp(subject=sso.subject, method=method, outcome="accepted"))
    services.signin.stepped_up(sso, verified.amr)
    return resume()


_OUTCOMES: dict[type[MfaError], str] = {
    InvalidCodeError: "wrong",
    LockedOutError: "locked_out",
    SlowDownError: "slowed",
}
"""The :class:`~gateway.observe.SteppedUp` outcome of each refusal; ``NotEnrolledError``
checked nothing, so it is not a step-up attempt."""


@blueprint.post("/mfa/cancel")
def cancel() -> Response:
    """No factor to step up with: the portal hears ``unmet_authentication_requirements``."""
    services = current_services()
    _sso(services)
    csrf.require(FORM)
    why = "no second factor is bound; a password sign-in cannot bind one"
    return render(services.signin.cannot_step_up(pending_id(), session_id(), why))


@blueprint.route("/mfa/continue", methods=["GET", "POST"])
def resume() -> Response:
    """The portal's request, answered with the raised session."""
    return render(current_services().signin.resume(pending_id(), session_id()))
