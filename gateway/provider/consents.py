"""A person's consents: what they agreed to release to which portal, and withdrawing it.

Withdrawing a consent means the portal gets those claims only after asking again; tokens already
issued are not recalled (they expire on their own, as their claims were released then).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from flask import Blueprint, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from gateway.errors import GatewayError
from gateway.provider.authorize import CLAIM_LABELS
from gateway.services import current_services
from gateway.sessions import SESSION_COOKIE
from gateway.store.contract import SsoSession

blueprint = Blueprint("consents", __name__)
CSRF = "consents_csrf"


def _signed_in() -> SsoSession:
    sso = current_services().sessions.find(request.cookies.get(SESSION_COOKIE), datetime.now(UTC))
    if sso is None:
        raise GatewayError(
            "login_required",
            "请先登录",
            "Sign in first",
            "查看和撤销授权需要先通过任一网站登录。",
            "Sign in through any portal to see and withdraw your consents.",
            status=401,
        )
    return sso


@blueprint.get("/consents")
def consents() -> str:
    services = current_services()
    sso = _signed_in()
    rows = []
    for consent in services.store.list_consents(sso.subject):
        portal = services.registry.portal(consent.client_id)
        rows.append((consent, portal))
    token: str = session.setdefault(CSRF, secrets.token_urlsafe(24))
    return render_template("consents.html", rows=rows, labels=CLAIM_LABELS, csrf=token)


@blueprint.post("/consents/revoke")
def revoke() -> Response:
    services = current_services()
    sso = _signed_in()
    if not secrets.compare_digest(request.form.get("csrf", ""), session.get(CSRF, "-")):
        raise GatewayError(
            "invalid_request",
            "请求已失效",
            "Form expired",
            "页面已过期，请重新打开。",
            "This page has expired; open it again.",
        )
    services.store.revoke_consent(sso.subject, request.form.get("client_id", ""), datetime.now(UTC))
    return redirect(url_for("consents.consents"), code=303)
