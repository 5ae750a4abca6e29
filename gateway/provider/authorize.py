"""The authorization endpoint (OIDC Core §3.1.2), the region callback, and the consent page.

Each view parses the HTTP request, makes one call to the sign-in (:mod:`gateway.signin`) and
renders its answer (:mod:`gateway.provider.answers`). The portal's request is validated here
once, by the provider (:mod:`gateway.provider.oauth`); after that the sign-in resumes it from
its one stored record, named by the browser's pending-authorization cookie.
"""

from __future__ import annotations

from flask import Blueprint, request
from werkzeug.wrappers import Response

from gateway.errors import ConsentRequestExpired, TongxingError
from gateway.provider import csrf
from gateway.provider.answers import (
    CONSENT_FORM,
    PENDING_FIELD,
    pending_id,
    render,
    render_refusal,
    session_id,
    set_session,
)
from gateway.provider.oauth import current_oauth
from gateway.services import current_services
from gateway.signin import RefusedRequest

blueprint = Blueprint("authorize", __name__)


@blueprint.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response:
    """A portal's authorization request; or the chooser's answer to one (``pending``)."""
    signin = current_services().signin
    if PENDING_FIELD in request.args:
        form, region = request.args.get(PENDING_FIELD), request.args.get("region")
        return render(signin.choose(pending_id(), form, region))
    try:
        parsed = current_oauth().parse_authorization_request()
    except RefusedRequest as refused:
        return render(signin.refused(refused))
    return render(signin.begin(parsed, session_id()))


@blueprint.get("/callback/<code>")
def callback(code: str) -> Response:
    """The region's authorization response (OIDC Core §3.1.2.5), one URI per region."""
    signin = current_services().signin
    completion = signin.complete(code, request.args.to_dict(flat=False), pending_id())
    if isinstance(completion.answer, TongxingError):
        # The person signed in, but the portal's request no longer stands: a page says why.
        response = render_refusal(completion.answer)
    else:
        response = render(completion.answer)
    if completion.session is not None:
        set_session(response, completion.session)
    return response


@blueprint.post("/consent")
def consent() -> Response:
    """The consent page's answer: remembered when given, ``access_denied`` when refused."""
    if not csrf.matches(CONSENT_FORM):
        raise ConsentRequestExpired("the consent form came back without this session's token")
    allow = request.form.get("decision") == "allow"
    form = request.form.get(PENDING_FIELD)
    return render(current_services().signin.consent(pending_id(), form, session_id(), allow))
