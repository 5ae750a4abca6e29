"""RP-Initiated Logout 1.0 (``end_session_endpoint``) with back-channel notification.

A logout request that proves itself with an ``id_token_hint`` for the current session ends it at
once; any other request is confirmed by the person first (a logout is a state change a third
party must not trigger, §2 and §6). ``post_logout_redirect_uri`` is honoured only when it is
registered, exactly, for the portal the request identifies.

A logout that ends a live session goes on to the region that signed the person in, when it
publishes an ``end_session_endpoint`` (:mod:`gateway.provider.region_logout`): the browser comes
back through the gateway and only then reaches the portal's ``post_logout_redirect_uri``.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request
from werkzeug.wrappers import Response

from gateway.errors import (
    LogoutClientMismatch,
    LogoutHintForeign,
    LogoutHintInvalid,
    LogoutParameterTooLong,
    LogoutRedirectUnregistered,
)
from gateway.keys import TokenRejectedError
from gateway.provider import csrf, region_logout
from gateway.provider.answers import delete_cookie, session_id
from gateway.provider.oauth.authorization import MAX_PARAMETER_LENGTH
from gateway.provider.region_logout import (
    MAX_PORTAL_STATE_BYTES,
    Onward,
    form_post,
    region_logout_request,
    to_portal,
)
from gateway.registry import Portal
from gateway.services import Services, current_services
from gateway.sessions import SESSION_COOKIE

blueprint = Blueprint("logout", __name__)
# The way back from the region's logout is part of this logout: it is served with it.
blueprint.register_blueprint(region_logout.blueprint)
PARAMS = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales")
FORM = "logout"  # the CSRF purpose of the confirmation form (one-shot)
MAX_LENGTHS = {"id_token_hint": 8192}  # the others: MAX_PARAMETER_LENGTH, as at /authorize


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
    # Bounded as at /authorize; the portal's state travels sealed through the region and back.
    too_long = [k for k, v in params.items() if len(v) > MAX_LENGTHS.get(k, MAX_PARAMETER_LENGTH)]
    if len(params.get("state", "").encode()) > MAX_PORTAL_STATE_BYTES:
        too_long.append("state")
    if too_long:
        raise LogoutParameterTooLong(f"{too_long[0]} is too long")
    hint = _hint(services, params.get("id_token_hint"))
    portal = _portal(services, hint, params.get("client_id"))
    target = params.get("post_logout_redirect_uri")
    if target is not None and (portal is None or target not in portal.post_logout_redirect_uris):
        raise LogoutRedirectUnregistered()
    now = services.clock()
    sso = services.sessions.find(session_id(), now)
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
        services.sessions.end(sso.session_hash, now, "portal" if proven else "person")
        # The person's session at the region ends too (THREAT_MODEL row 5); the region sends
        # the browser back through the gateway, which then answers as below.
        onward = Onward()  # the signed-out page
        if portal is not None and target is not None:
            onward = Onward(portal.client_id, target, params.get("state"))
        at_region = region_logout_request(services, sso, onward, now)
        if at_region is not None:
            response = form_post(at_region)
            delete_cookie(response, SESSION_COOKIE)
            return response
    if target is not None:
        response = redirect(to_portal(target, params.get("state")), 303)
    else:
        response = Response(render_template("logged_out.html"), mimetype="text/html")
    delete_cookie(response, SESSION_COOKIE)
    return response


def _pairwise(services: Services) -> bytes:
    return services.settings.pairwise_secret.get_secret_value().encode()
