"""A person's consents: what they agreed to release to which portal, and withdrawing it.

Withdrawing a consent means the portal gets those claims only after asking again; tokens already
issued are not recalled (they expire on their own, as their claims were released then).
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from gateway.errors import LoginRequired
from gateway.provider import csrf
from gateway.provider.labels import CLAIM_LABELS
from gateway.services import current_services
from gateway.sessions import SESSION_COOKIE
from gateway.store.contract import SsoSession

blueprint = Blueprint("consents", __name__)
FORM = "consents"  # the CSRF purpose of the withdraw buttons


def _signed_in() -> SsoSession:
    sso = current_services().sessions.find(
        request.cookies.get(SESSION_COOKIE), current_services().clock()
    )
    if sso is None:
        raise LoginRequired()
    return sso


@blueprint.get("/consents")
def consents() -> str:
    services = current_services()
    sso = _signed_in()
    rows = []
    for consent in services.store.list_consents(sso.subject):
        portal = services.registry.portal(consent.client_id)
        rows.append((consent, portal))
    return render_template("consents.html", rows=rows, labels=CLAIM_LABELS, csrf=csrf.token(FORM))


@blueprint.post("/consents/revoke")
def revoke() -> Response:
    services = current_services()
    sso = _signed_in()
    csrf.require(FORM)
    services.store.revoke_consent(sso.subject, request.form.get("client_id", ""), services.clock())
    return redirect(url_for("consents.consents"), code=303)
