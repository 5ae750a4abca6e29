"""Pages for legal persons (issue 16): whom a person acts for at a portal, and mandates.

* ``/acting-for``: during a sign-in at a portal that accepts enterprises, the person picks the
  enterprise they act for (:meth:`gateway.signin.SignIn.acting_for_page` and ``act_for``).
* ``/account/mandates``: a legal representative, signed in through the e-business-licence
  system in this session, grants mandates (a one-time invitation shown once) and revokes them;
  an agent accepts an invitation made for them and sees their live mandates
  (:class:`gateway.mandates.Mandates`).

Views only parse and render (house rule 4). Every form carries this browser's CSRF token
(:mod:`gateway.provider.csrf`); the acting-for form also the handle of its sign-in, as the
consent page does. Pages are never cached: they show an invitation code, or whom a person acts
for.
"""

from __future__ import annotations

import datetime
from typing import Final

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from gateway.errors import LoginRequired, MandateInvalid, TongxingError
from gateway.provider import csrf
from gateway.provider.answers import PENDING_FIELD, pending_id, render, session_id
from gateway.provider.language import current_lead
from gateway.provider.stepup import no_store
from gateway.services import Services, current_services
from gateway.store.contract import SsoSession

blueprint = Blueprint("mandates", __name__)
ACTING_FOR_FORM: Final = "acting_for"  # the CSRF purpose of the acting-for page
ACCOUNT_FORM: Final = "mandates"  # the CSRF purpose of the mandates page's forms
CHOICE_FIELD: Final = "choice"


@blueprint.after_request
def _no_store(response: Response) -> Response:
    return no_store(response)


# --- the acting-for page -------------------------------------------------------------------------


@blueprint.get("/acting-for")
def acting_for() -> Response:
    """The choice of whom to act for, as the sign-in stands now."""
    page = current_services().signin.acting_for_page(pending_id(), session_id())
    html = render_template(
        "acting_for.html",
        lead=current_lead(page.ui_locales),
        portal=page.portal,
        choices=page.choices,
        csrf=csrf.token(ACTING_FOR_FORM),
        field=PENDING_FIELD,
        form=page.form,
        choice_field=CHOICE_FIELD,
    )
    return Response(html, mimetype="text/html")


@blueprint.post("/acting-for")
def act_for() -> Response:
    csrf.require(ACTING_FOR_FORM)
    answer = current_services().signin.act_for(
        pending_id(),
        request.form.get(PENDING_FIELD),
        session_id(),
        request.form.get(CHOICE_FIELD, ""),
    )
    return render(answer)


# --- the account page: mandates ------------------------------------------------------------------


def _signed_in(services: Services) -> SsoSession:
    sso = services.sessions.find(session_id(), services.clock())
    if sso is None:
        raise LoginRequired()
    return sso


def _page(
    services: Services,
    sso: SsoSession,
    *,
    error: TongxingError | None = None,
    invitation: str | None = None,
) -> Response:
    mandates = services.signin.mandates
    seat = mandates.seat(sso)
    representing = seat[0] if seat is not None and seat[1] == "legal_representative" else None
    portals = {p.client_id: p for p in services.registry.portals()}
    html = render_template(
        "mandates.html",
        error=error,
        invitation=invitation,
        seat=seat,
        representing=representing,
        granted=mandates.of_enterprise(representing) if representing else [],
        portals=portals,
        enterprise_portals=mandates.enterprise_portals() if representing else [],
        held=mandates.of_agent(sso.subject),
        now=services.clock(),
        csrf=csrf.token(ACCOUNT_FORM),
    )
    return Response(html, status=200 if error is None else error.status, mimetype="text/html")


@blueprint.get("/account/mandates")
def account() -> Response:
    services = current_services()
    return _page(services, _signed_in(services))


@blueprint.post("/account/mandates/grant")
def grant() -> Response:
    """A legal representative grants a mandate: the invitation code is shown once, here."""
    services = current_services()
    sso = _signed_in(services)
    csrf.require(ACCOUNT_FORM)
    try:
        valid_until = _end_of_day(request.form.get("valid_until", ""))
        invitation = services.signin.mandates.grant(
            sso,
            portals=request.form.getlist("portal"),
            sectors=request.form.get("sectors", "").replace("，", ",").split(","),
            valid_until=valid_until,
            agent_number=request.form.get("agent_id_number", ""),
        )
    except TongxingError as error:
        if error.status >= 500:
            raise
        return _page(services, sso, error=error)
    return _page(services, sso, invitation=invitation.code)


@blueprint.post("/account/mandates/revoke")
def revoke() -> Response:
    services = current_services()
    sso = _signed_in(services)
    csrf.require(ACCOUNT_FORM)
    services.signin.mandates.revoke(sso, request.form.get("mandate", ""))
    return redirect(url_for("mandates.account"), code=303)


@blueprint.post("/account/mandates/accept")
def accept() -> Response:
    """An agent accepts the invitation a representative gave them."""
    services = current_services()
    sso = _signed_in(services)
    csrf.require(ACCOUNT_FORM)
    try:
        services.signin.mandates.accept(sso, request.form.get("invitation", ""))
    except TongxingError as error:
        if error.status >= 500:
            raise
        return _page(services, sso, error=error)
    return redirect(url_for("mandates.account"), code=303)


def _end_of_day(text: str) -> datetime.datetime:
    """The date a form sent (``YYYY-MM-DD``, China Standard Time) as the end of that day."""
    try:
        day = datetime.date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise MandateInvalid(
            "no end date",
            message_zh="请填写授权的截止日期。",
            message_en="Give the date the mandate ends.",
        ) from None
    china = datetime.timezone(datetime.timedelta(hours=8))
    end = datetime.datetime.combine(day, datetime.time(23, 59, 59), tzinfo=china)
    return end.astimezone(datetime.UTC)


__all__ = ["blueprint"]
