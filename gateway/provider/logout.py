"""RP-Initiated Logout 1.0 (``end_session_endpoint``) with back-channel notification.

A logout request that proves itself with an ``id_token_hint`` for the current session ends it at
once; any other request is confirmed by the person first (a logout is a state change a third
party must not trigger, §2 and §6). ``post_logout_redirect_uri`` is honoured only when it is
registered, exactly, for the portal the request identifies.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, redirect, render_template, request
from werkzeug.wrappers import Response

from gateway.errors import (
    LogoutClientMismatch,
    LogoutHintForeign,
    LogoutHintInvalid,
    LogoutRedirectUnregistered,
)
from gateway.keys import TokenRejectedError
from gateway.provider import csrf
from gateway.registry import Portal
from gateway.services import Services, current_services
from gateway.sessions import SESSION_COOKIE

blueprint = Blueprint("logout", __name__)
PARAMS = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales")
FORM = "logout"  # the CSRF purpose of the confirmation form (one-shot)


def _hint(services: Services, token: str | None) -> dict[str, object] | None:
    if not token:
        return None
    try:
        claims = services.keys.verify(token)
    except TokenRejectedError:
        raise LogoutHintInvalid() from None
    if claims.get("iss") != services.settings.issuer_url:
        raise LogoutHintForeign()
    return claims


def _portal(
    services: Services, hint: dict[str, object] | None, client_id: str | None
) -> Portal | None:
    audience = hint.get("aud") if hint else None
    if isinstance(audience, list):
        audience = audience[0] if len(audience) == 1 else None
    if client_id and audience and client_id != audience:
        raise LogoutClientMismatch()
    wanted = client_id or (audience if isinstance(audience, str) else None)
    return services.registry.portal(wanted) if wanted else None


@blueprint.route("/logout", methods=["GET", "POST"])
def logout() -> Response | str:
    services = current_services()
    params = {k: v for k in PARAMS if (v := request.values.get(k))}
    hint = _hint(services, params.get("id_token_hint"))
    portal = _portal(services, hint, params.get("client_id"))
    target = params.get("post_logout_redirect_uri")
    if target is not None and (portal is None or target not in portal.post_logout_redirect_uris):
        raise LogoutRedirectUnregistered()
    now = services.clock()
    sso = services.sessions.find(request.cookies.get(SESSION_COOKIE), now)
    if sso is not None:
        proven = (
            hint is not None
            and portal is not None
            and hint.get("sub") == portal.subject_for(sso.subject, _pairwise(services))
        )
        confirmed = request.method == "POST" and csrf.matches(FORM, spend=True)
        if not (proven or confirmed):
            return render_template(
                "logout_confirm.html", params=params.items(), csrf=csrf.token(FORM, fresh=True)
            )
        services.sessions.end(sso.session_hash, now)
    if target is not None:
        query = {"state": params["state"]} if "state" in params else {}
        separator = "&" if "?" in target else "?"
        response = redirect(f"{target}{separator}{urlencode(query)}" if query else target, 303)
    else:
        response = Response(render_template("logged_out.html"))
    response.delete_cookie(SESSION_COOKIE)
    return response


def _pairwise(services: Services) -> bytes:
    return services.settings.pairwise_secret.get_secret_value().encode()
