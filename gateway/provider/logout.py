"""RP-Initiated Logout 1.0 (``end_session_endpoint``) with back-channel notification.

A logout request that proves itself with an ``id_token_hint`` for the current session ends it at
once; any other request is confirmed by the person first (a logout is a state change a third
party must not trigger, §2 and §6). ``post_logout_redirect_uri`` is honoured only when it is
registered, exactly, for the portal the request identifies; a native app's loopback URI matches
whatever port it names, as its redirect URIs do (RFC 8252 §7.3,
:meth:`~gateway.registry.Portal.accepts_post_logout_redirect_uri`).

A logout that ends a live session goes on to the region that signed the person in, when it
publishes an ``end_session_endpoint`` (:mod:`gateway.provider.region_logout`): the browser comes
back through the gateway and only then reaches the portal's ``post_logout_redirect_uri``.

**A hint and no browser session.** A portal may send the logout from its server, with the ID
token it was given and no cookie: Keycloak brokering to the gateway does so in its
"back-channel" logout mode, when the person signs out of Keycloak. The hint then names the
session by its ``aud`` and ``sid`` (the ``sid`` the gateway put in that portal's ID tokens of
the session: Back-Channel Logout 1.0 §2.1, ``backchannel_logout_session_supported``), and its
``sub`` must be the person's at that portal. If that session is live it is ended: its grants
revoked, every portal of it told by logout token, as a browser logout does, and the region
asked from the server (:func:`~gateway.provider.region_logout.end_at_region_from_server`).
If nothing live is named, nothing is ended, and the answer says so
(``logout_nothing.html``): never "signed out" for a logout that did not happen.

Why no confirmation: §2 asks for one when there is no hint, or when the hint "does not belong
to the current OP session with the RP"; this one names a current session with that RP, and
is signed by the gateway, so §6's concern (a logout request without a valid hint is a means of
denial of service) does not arise; §2 lets the OP accept an expired hint for a current session.
Keycloak's own logout endpoint does the same (an ``id_token_hint`` naming a live session, no
cookie: a back-channel logout of that session). Nobody could confirm anyway: there is no browser.

The attacker (THREAT_MODEL row 5) holds an old ID token, say from the browser history of a
stolen laptop (a GET logout URL carries one). A ``sid`` is one portal's in one session, and a
session is one browser's: the token names the session it was issued in and no other. That
session ended when the person logged out, or expired, and then the token ends nothing; the
person's current session, in another browser or after signing in again, has another ``sid``.
While it is live, the session named is the laptop's own, whose cookie the holder has anyway.
So the token can end at most what the spec lets its RP end, the session it identifies. An ID
token without ``sid`` (one refreshed outside a sign-in) names no session: it ends nothing
without a browser session. A logout token (same key, ``events`` claim) is no hint at all.

With a browser session, the hint proves the request when its ``sid`` names that session (or,
without ``sid``, its ``sub`` is the session's person at the portal); a hint naming another
session is not proof, and the person confirms a logout of their own session.
"""

from __future__ import annotations

from datetime import datetime

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
    end_at_region_from_server,
    form_post,
    region_logout_request,
    to_portal,
)
from gateway.registry import Portal
from gateway.services import Services, current_services
from gateway.sessions import SESSION_COOKIE
from gateway.store.contract import SsoSession

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
    if "events" in claims:
        # A logout token (Back-Channel Logout 1.0 §2.4) is signed by the same key; it is not an
        # ID token, and a portal's copy must not become a request to log anyone out.
        raise LogoutHintInvalid()
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


def _named(
    services: Services, hint: dict[str, object] | None, portal: Portal | None, now: datetime
) -> SsoSession | None:
    """The live session the hint was issued in, for ``portal`` (its audience), or ``None``."""
    if hint is None or portal is None:
        return None
    sid, sub = hint.get("sid"), hint.get("sub")
    if not isinstance(sid, str) or not isinstance(sub, str):
        return None
    return services.sessions.named_by(portal.client_id, sid, sub, now)


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
    if target is not None and (
        portal is None or not portal.accepts_post_logout_redirect_uri(target)
    ):
        raise LogoutRedirectUnregistered()
    now = services.clock()
    named = _named(services, hint, portal, now)
    sso = services.sessions.find(session_id(), now)
    if sso is not None:
        proven = (
            hint is not None
            and portal is not None
            and hint.get("sub") == portal.subject_for(sso.subject, _pairwise(services))
            and (named.session_hash == sso.session_hash if named is not None else "sid" not in hint)
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
        ended = True
    elif named is not None:
        # No browser session: the portal's server asks, with the hint (module docstring).
        ended = services.sessions.end(named.session_hash, now, "portal").ended
        if ended:
            end_at_region_from_server(services, named)
    else:
        ended = False
    if target is not None:
        # §3: back to the portal, which asked for it; nothing is said here of what ended.
        response = redirect(to_portal(target, params.get("state")), 303)
    else:
        page = "logged_out.html" if ended else "logout_nothing.html"
        response = Response(render_template(page), mimetype="text/html")
    delete_cookie(response, SESSION_COOKIE)
    return response


def _pairwise(services: Services) -> bytes:
    return services.settings.pairwise_secret.get_secret_value().encode()
