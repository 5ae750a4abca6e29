"""RP-Initiated Logout 1.0 (``end_session_endpoint``) with back-channel notification.

A logout request that proves itself with an ``id_token_hint`` for the current session ends it at
once; any other request is confirmed by the person first (a logout is a state change a third
party must not trigger, §2 and §6). ``post_logout_redirect_uri`` is honoured only when it is
registered, exactly, for the portal the request identifies.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from urllib.parse import urlencode

from flask import Blueprint, redirect, render_template, request, session
from werkzeug.wrappers import Response

from gateway.errors import GatewayError
from gateway.keys import TokenRejectedError
from gateway.registry import Portal
from gateway.services import Services, current_services
from gateway.sessions import SESSION_COOKIE

blueprint = Blueprint("logout", __name__)
PARAMS = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales")


def _refused(message_zh: str, message_en: str) -> GatewayError:
    return GatewayError(
        "invalid_request", "无法退出登录", "Cannot sign out", message_zh, message_en
    )


def _hint(services: Services, token: str | None) -> dict[str, object] | None:
    if not token:
        return None
    try:
        claims = services.keys.verify(token)
    except TokenRejectedError:
        raise _refused("id_token_hint 无效。", "The id_token_hint is not valid.") from None
    if claims.get("iss") != services.settings.issuer_url:
        raise _refused("id_token_hint 不是本网关签发的。", "The id_token_hint is not ours.")
    return claims


def _portal(
    services: Services, hint: dict[str, object] | None, client_id: str | None
) -> Portal | None:
    audience = hint.get("aud") if hint else None
    if isinstance(audience, list):
        audience = audience[0] if len(audience) == 1 else None
    if client_id and audience and client_id != audience:
        raise _refused(
            "client_id 与 id_token_hint 不一致。", "client_id does not match the id_token_hint."
        )
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
        raise _refused(
            "退出后的跳转地址未在该网站的注册信息中。",
            "post_logout_redirect_uri is not registered for this portal.",
        )
    now = datetime.now(UTC)
    sso = services.sessions.find(request.cookies.get(SESSION_COOKIE), now)
    if sso is not None:
        proven = (
            hint is not None
            and portal is not None
            and hint.get("sub") == portal.subject_for(sso.subject, _pairwise(services))
        )
        confirmed = request.method == "POST" and secrets.compare_digest(
            request.form.get("csrf", ""), session.pop("logout_csrf", "-")
        )
        if not (proven or confirmed):
            session["logout_csrf"] = token = secrets.token_urlsafe(24)
            return render_template("logout_confirm.html", params=params.items(), csrf=token)
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
