"""What the sign-in's answers (:mod:`gateway.signin`) become over HTTP: redirects, pages, cookies.

The browser keeps three cookies for the sign-in, each HttpOnly and ``SameSite=Lax`` (sent on the
top-level navigation back from a region), ``Secure`` unless the gateway runs on plain HTTP for
tests:

* :data:`PENDING_COOKIE`: the opaque id of its pending authorization, and nothing else. It binds
  the round trip to the region to this browser: a callback URL planted in another browser
  finds no such cookie (login CSRF, RFC 6749 §10.12, RFC 9700 §4.7).
* :data:`REGION_COOKIE`: the region chosen last, preselected on the chooser.
* :data:`~gateway.sessions.SESSION_COOKIE`: the SSO session's opaque id.

Under https each name carries the ``__Host-`` prefix (RFC 6265bis §4.1.3.2): the browser then
takes the cookie only when it is ``Secure``, from a secure origin, with ``Path=/`` and no
``Domain``, so a sibling host (``*.gov.cn``) or a plain-HTTP page cannot plant or overwrite one
(a session fixation or login CSRF vector). The names are read through :func:`cookie_name`.
"""

from __future__ import annotations

from flask import current_app, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from gateway.errors import TongxingError
from gateway.provider import csrf
from gateway.provider.chooser import chooser_view
from gateway.provider.labels import CLAIM_LABELS
from gateway.provider.language import current_lead
from gateway.services import current_services
from gateway.sessions import SESSION_COOKIE
from gateway.signin import (
    Answer,
    AskConsent,
    ChooseEnterprise,
    ChooseRegion,
    PendingCookie,
    SessionCookie,
    StepUp,
    ToPortal,
    ToRegion,
)

PENDING_COOKIE = "tongxing_login"
REGION_COOKIE = "tongxing_region"
REGION_COOKIE_AGE = 365 * 86400
HOST_PREFIX = "__Host-"
PENDING_FIELD = "pending"  # the form field that names the pending authorization a page answers
CONSENT_FORM = "consent"  # the CSRF purpose of the consent page
SEARCH_FIELD = "q"  # the chooser's search, a GET field beside PENDING_FIELD


def cookie_name(base: str) -> str:
    """``base`` as the browser knows it: ``__Host-`` prefixed unless on plain HTTP (tests)."""
    return base if current_services().settings.insecure_allow_http else f"{HOST_PREFIX}{base}"


def read_cookie(base: str) -> str | None:
    return request.cookies.get(cookie_name(base))


def delete_cookie(response: Response, base: str) -> None:
    """Expire the cookie with the attributes it was set with (a ``__Host-`` one needs them)."""
    response.delete_cookie(
        cookie_name(base), path="/", secure=_secure(), httponly=True, samesite="Lax"
    )


def pending_id() -> str | None:
    """The opaque id of this browser's pending authorization, if it has one."""
    return read_cookie(PENDING_COOKIE)


def session_id() -> str | None:
    """The opaque id of this browser's SSO session, if it has one."""
    return read_cookie(SESSION_COOKIE)


def render(answer: Answer) -> Response:
    """The HTTP response for an answer of the sign-in."""
    response: Response
    if isinstance(answer, ToPortal):
        # A code answers a GET with 302 as Authlib did; an error, or any answer to a form post,
        # is a 303 (RFC 9700 §4.12: a 307 would replay the form at the portal).
        see_other = answer.error is not None or request.method == "POST"
        response = redirect(answer.url, code=303 if see_other else 302)
        end_pending(response)
        return response
    if isinstance(answer, ToRegion):
        response = redirect(answer.url, code=303)
        _cookie(response, REGION_COOKIE, answer.region, REGION_COOKIE_AGE)
    elif isinstance(answer, ChooseRegion):
        response = Response(_chooser_page(answer), mimetype="text/html")
    elif isinstance(answer, StepUp):
        response = redirect(url_for("stepup.second_factor"), code=303)
    elif isinstance(answer, ChooseEnterprise):  # whom the person acts for (issue 16)
        response = redirect(url_for("mandates.acting_for"), code=303)
    else:
        page = _consent_page(answer)
        response = Response(page, mimetype="text/html")
    set_pending(response, answer.pending)
    return response


def _chooser_page(answer: ChooseRegion) -> str:
    """The chooser, grouped by kind, the remembered region first, filtered by the search
    ``q`` the page's own GET form sent (no JavaScript: :mod:`gateway.provider.chooser`)."""
    last = read_cookie(REGION_COOKIE)
    query = request.args.get(SEARCH_FIELD)
    return render_template(
        "chooser.html",
        view=chooser_view(answer.regions, last, query),
        last=last,
        field=PENDING_FIELD,
        search=SEARCH_FIELD,
        form=answer.form,
        lead=current_lead(answer.ui_locales),
    )


def _consent_page(answer: AskConsent) -> str:
    return render_template(
        "consent.html",
        lead=current_lead(answer.ui_locales),
        portal=answer.portal,
        claims=answer.claims,
        labels=CLAIM_LABELS,
        csrf=csrf.token(CONSENT_FORM),
        field=PENDING_FIELD,
        form=answer.form,
    )


def render_refusal(error: TongxingError) -> Response:
    """The error page for a sign-in whose portal can no longer be answered; it is over."""
    response = make_response(current_app.handle_user_exception(error))
    end_pending(response)
    return response


def end_pending(response: Response) -> None:
    """The pending authorization is over: the browser forgets its id."""
    if cookie_name(PENDING_COOKIE) in request.cookies:
        delete_cookie(response, PENDING_COOKIE)


def set_pending(response: Response, pending: PendingCookie) -> None:
    _cookie(response, PENDING_COOKIE, pending.value, pending.max_age)


def set_session(response: Response, session: SessionCookie) -> None:
    _cookie(response, SESSION_COOKIE, session.value, session.max_age)


def _cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        cookie_name(name),
        value,
        max_age=max_age,
        path="/",
        secure=_secure(),
        httponly=True,
        samesite="Lax",
    )


def _secure() -> bool:
    return not current_services().settings.insecure_allow_http


__all__ = [
    "CONSENT_FORM",
    "HOST_PREFIX",
    "PENDING_COOKIE",
    "PENDING_FIELD",
    "REGION_COOKIE",
    "SEARCH_FIELD",
    "cookie_name",
    "delete_cookie",
    "end_pending",
    "pending_id",
    "read_cookie",
    "render",
    "render_refusal",
    "session_id",
    "set_pending",
    "set_session",
]
