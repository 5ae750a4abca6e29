"""RP-Initiated Logout 1.0 at the region: the gateway, as the region's relying party, logs out.

A logout at the gateway that ends a live SSO session also ends the person's session at the
region that signed them in (THREAT_MODEL row 5: the next person at the same browser meets a
password form). When the region publishes an ``end_session_endpoint`` (RP-Initiated Logout 1.0
§2.1, in its discovery document), :func:`region_logout_request` builds the Logout Request (§2): the
region's own ID token of the sign-in as ``id_token_hint`` (kept sealed in the session), the
gateway's ``client_id``, ``post_logout_redirect_uri`` = ``{issuer}/logout/return/{region}``
(registered at the region, see ``realms/_base.json.j2``) and a ``state``. The request is a form
POST (§2: the OP supports GET and POST), since the region's ID token carries the identity number
and a URL would leave it in browser history and access logs (THREAT_MODEL row 8).

The ``state`` (§2, §3) carries where the browser goes after the region: the portal's registered
``post_logout_redirect_uri`` and the portal's own ``state``, or the signed-out page. It is sealed
(AES-GCM, :mod:`gateway.sealing`) and bound to the region, so it cannot be forged, read, or
brought back through another region's return; it expires after :data:`RETURN_LIFETIME`; and its
``jti`` is spent once in the store's replay table (a row that expires with it), so a return is
followed once. ``GET /logout/return/<region>`` (:func:`logout_return`) checks all of that, then
checks again that the target is still registered for the portal: it never redirects anywhere
else, and a refused return is an error page, not a redirect.

A region without ``end_session_endpoint``, or whose metadata cannot be had, is not asked: the
gateway answers as if it had none (the gateway session is over either way).

A logout with no browser of the session (a portal's server sending its ``id_token_hint``, see
:mod:`gateway.provider.logout`) has nobody to carry the form: :func:`end_at_region_from_server`
sends the same Logout Request from the gateway's server instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from flask import Blueprint, redirect, render_template, request
from werkzeug.wrappers import Response

from gateway.broker.errors import BrokerError
from gateway.errors import LogoutReturnInvalid
from gateway.registry import Portal, loopback_redirect
from gateway.sealing import SecretUnreadableError
from gateway.services import Services, current_services
from gateway.sessions import open_region_id_token
from gateway.store.contract import SsoSession

__all__ = [
    "MAX_PORTAL_STATE_BYTES",
    "RETURN_LIFETIME",
    "Onward",
    "RegionLogoutRequest",
    "blueprint",
    "end_at_region_from_server",
    "form_post",
    "region_logout_request",
    "return_uri",
    "to_portal",
]

log = logging.getLogger(__name__)

blueprint = Blueprint("region_logout", __name__)

RETURN_LIFETIME = timedelta(minutes=10)
"""How long a person may take at the region's logout (a confirmation page, at most)."""
MAX_PORTAL_STATE_BYTES = 1024
"""The longest portal ``state`` (UTF-8) a logout carries through the region and back."""
MAX_STATE_LENGTH = 4096
"""A longer ``state`` was not made here: refused before any decoding."""
REPLAY_NAMESPACE = "tongxing:logout-return"
"""The replay table's ``client_id`` for spent returns: no portal's id has a colon."""
AUTO_SUBMIT = 'document.getElementById("region-logout").submit();'
PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "base-uri 'none'; script-src 'sha256-"
    + base64.b64encode(hashlib.sha256(AUTO_SUBMIT.encode()).digest()).decode()
    + "'"
)
"""The gateway's page policy (``gateway.app``) plus this page's one script, by its hash."""


@dataclass(frozen=True)
class Onward:
    """Where the browser goes once the region has logged the person out.

    ``target`` is a ``post_logout_redirect_uri`` already checked as registered for the portal
    ``client_id`` (RP-Initiated Logout 1.0 §3), with the portal's ``state``; no target means the
    gateway's signed-out page.
    """

    client_id: str | None = None
    target: str | None = None
    state: str | None = None


def return_uri(issuer: str, region: str) -> str:
    """The gateway's ``post_logout_redirect_uri`` at ``region`` (one per region, as callbacks)."""
    return f"{issuer.rstrip('/')}/logout/return/{region}"


@dataclass(frozen=True)
class RegionLogoutRequest:
    """A Logout Request for the region's ``end_session_endpoint`` (RP-Initiated Logout 1.0 §2).

    ``params`` may hold the region's ID token (``id_token_hint``), which carries the identity
    number: hence no ``repr``, and the request is sent as a form POST, never in a URL that
    browser history and access logs would keep.
    """

    endpoint: str
    params: Mapping[str, str] = field(repr=False)


def region_logout_request(
    services: Services, session: SsoSession, onward: Onward, now: datetime
) -> RegionLogoutRequest | None:
    """The Logout Request at the region of ``session`` (RP-Initiated Logout 1.0 §2), or
    ``None`` when the region publishes no ``end_session_endpoint`` (or is unknown, or its
    metadata cannot be had: the gateway session is over either way).

    Without a kept region ID token (a session opened before they were kept) only ``client_id``
    identifies the gateway; the region may then ask the person to confirm (§2, §6).
    """
    region = services.registry.region(session.region)
    if region is None:
        return None
    try:
        endpoint = services.regions.metadata(region).end_session_endpoint
    except BrokerError as error:
        log.warning("region %s: no logout at the region: %s", region.code, error.detail)
        return None
    if endpoint is None:
        return None
    params = {"client_id": region.client_id}
    id_token = open_region_id_token(services.sealer, session)
    if id_token is not None:
        params["id_token_hint"] = id_token
    params["post_logout_redirect_uri"] = return_uri(services.settings.issuer_url, region.code)
    params["state"] = _seal_state(services, region.code, onward, now)
    return RegionLogoutRequest(endpoint, params)


def end_at_region_from_server(services: Services, session: SsoSession) -> bool:
    """Send the Logout Request for ``session`` to its region from the gateway's server, when
    there is no browser of the session to carry it (a portal's logout by ``id_token_hint``
    alone: :func:`gateway.provider.logout.logout`). Whether the region accepted it.

    RP-Initiated Logout 1.0 §2 lets the OP take the request by POST; made from a server it is
    what Keycloak calls "back-channel" logout to an upstream, and Keycloak as a region ends the
    session its ID token's ``sid`` names without a confirmation, since the hint proves who
    asks. Without the region's ID token (a session opened before they were kept) nothing is
    sent: the region would ask for a confirmation nobody is there to give. Form-encoded, as
    the browser's is (the ID token carries the identity number: no URL, THREAT_MODEL row 8);
    no ``post_logout_redirect_uri`` and no ``state``, since no browser follows. The endpoint
    passed the outbound rule when the region's metadata was read; the request is bounded by
    the region's timeouts and follows no redirect.
    """
    region = services.registry.region(session.region)
    if region is None:
        return False
    try:
        endpoint = services.regions.metadata(region).end_session_endpoint
    except BrokerError as error:
        log.warning("region %s: no logout at the region: %s", region.code, error.detail)
        return False
    id_token = open_region_id_token(services.sealer, session)
    if endpoint is None or id_token is None:
        return False
    limits = services.regions.limits
    try:
        response = services.regions.session.post(
            endpoint,
            data={"id_token_hint": id_token, "client_id": region.client_id},
            timeout=(limits.connect_timeout, limits.read_timeout),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        log.warning("region %s: logout at the region failed: %s", region.code, type(exc).__name__)
        return False
    with response:
        if response.status_code >= 400:
            log.warning(
                "region %s: logout at the region answered %s", region.code, response.status_code
            )
            return False
    return True


def form_post(logout: RegionLogoutRequest) -> Response:
    """The page that POSTs the Logout Request to the region (§2: the OP supports GET and POST).

    It submits itself with one inline script, allowed by its hash alone; without scripts the
    person presses the button. ``no-store``: the page holds the region's ID token.
    """
    page = render_template(
        "region_logout.html",
        endpoint=logout.endpoint,
        params=sorted(logout.params.items()),
        script=AUTO_SUBMIT,
    )
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@blueprint.route("/logout/return/<region>", methods=["GET"])
def logout_return(region: str) -> Response | str:
    """The region's redirect after its logout (RP-Initiated Logout 1.0 §3): on to the portal's
    registered ``post_logout_redirect_uri`` with the portal's ``state``, or the signed-out page.

    A ``state`` that is missing, not sealed here for this region, expired or spent raises
    :class:`LogoutReturnInvalid` (an error page, no redirect).
    """
    services = current_services()
    now = services.clock()
    onward = _open_state(services, region, request.args.get("state"), now)
    if onward.target is not None:
        return redirect(to_portal(onward.target, onward.state), 303)
    # No target asked for, or the portal or its registration went away meanwhile.
    return Response(render_template("logged_out.html"), mimetype="text/html")


# -- the sealed state ------------------------------------------------------------------------


def _binding(region: str) -> str:
    # The cipher binds to a "subject"; this purpose and region keep a state from opening as
    # anything else, or at another region's return.
    return f"logout_return:{region}"


def _seal_state(services: Services, region: str, onward: Onward, now: datetime) -> str:
    """``jti``, expiry and where to go next, sealed for ``region``'s return (at most about 2 KB
    of URL: the state comes back in a query that WSGI servers bound near 4 KB).

    The target is carried by its hash and found again among the portal's registered URIs at
    the return; a native app's loopback target, registered without the port it names this time
    (RFC 8252 §7.3), also carries its host and port (``netloc``), from which it is rebuilt out of
    a registered URI (:func:`_registered_target`). The portal's ``state`` follows the JSON
    header as raw UTF-8 (at most :data:`MAX_PORTAL_STATE_BYTES`, checked by the logout).
    """
    header: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "exp": int((now + RETURN_LIFETIME).timestamp()),
    }
    portal_state = b""
    if onward.target is not None:
        header |= {"client_id": onward.client_id, "target": _digest(onward.target)}
        if loopback_redirect(onward.target) is not None:
            header["netloc"] = urlsplit(onward.target).netloc
        if onward.state is not None:
            header["with_state"] = True
            portal_state = onward.state.encode()
    plain = json.dumps(header, separators=(",", ":")).encode() + b"\n" + portal_state
    sealed = services.sealer.cipher.encrypt(plain, _binding(region))
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()


def _open_state(services: Services, region: str, state: str | None, now: datetime) -> Onward:
    where = f"logout return at {region[:40]!r}"
    if not state or len(state) > MAX_STATE_LENGTH:
        raise LogoutReturnInvalid(f"{where}: no usable state")
    try:
        raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
        plain = services.sealer.cipher.decrypt(raw, _binding(region))
        head, _, tail = plain.partition(b"\n")
        header = json.loads(head)
        portal_state = tail.decode()
    except (binascii.Error, ValueError, SecretUnreadableError):
        # Forged, altered, or sealed for another region's return.
        raise LogoutReturnInvalid(f"{where}: the state was not sealed here for it") from None
    if not isinstance(header, dict):
        raise LogoutReturnInvalid(f"{where}: a malformed state")
    jti, exp = header.get("jti"), header.get("exp")
    if not isinstance(jti, str) or not isinstance(exp, int) or isinstance(exp, bool):
        raise LogoutReturnInvalid(f"{where}: a malformed state")
    expires_at = datetime.fromtimestamp(exp, now.tzinfo)
    if expires_at <= now:
        raise LogoutReturnInvalid(f"{where}: the state has expired")
    if not services.store.use_assertion(REPLAY_NAMESPACE, jti, expires_at, now):
        raise LogoutReturnInvalid(f"{where}: the state was used already")
    client_id, digest = header.get("client_id"), header.get("target")
    portal = services.registry.portal(client_id) if isinstance(client_id, str) else None
    if portal is None or not isinstance(digest, str):
        return Onward()  # no target asked for, or the portal went away meanwhile
    target = _registered_target(portal, digest, header.get("netloc"))
    if target is None:
        return Onward()
    return Onward(portal.client_id, target, portal_state if header.get("with_state") else None)


def _registered_target(portal: Portal, digest: str, netloc: object) -> str | None:
    """The URI whose hash is ``digest`` and which ``portal`` accepts now as a
    ``post_logout_redirect_uri`` (§3: only a URI registered now, for this portal, is ever a
    target): one of its registered URIs, or for a native app a registered loopback URI with the
    host and port the app named (``netloc``, sealed with the digest; RFC 8252 §7.3), accepted
    again by :meth:`~gateway.registry.Portal.accepts_post_logout_redirect_uri`."""
    candidates = list(portal.post_logout_redirect_uris)
    if isinstance(netloc, str):
        for registered in portal.post_logout_redirect_uris:
            loopback = loopback_redirect(registered)
            if loopback is not None:
                candidates.append(f"http://{netloc}{loopback[1]}")
    return next(
        (
            uri
            for uri in candidates
            if _digest(uri) == digest and portal.accepts_post_logout_redirect_uri(uri)
        ),
        None,
    )


def _digest(uri: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(uri.encode()).digest()).rstrip(b"=").decode()


def to_portal(target: str, state: str | None) -> str:
    """The portal's ``post_logout_redirect_uri`` with its ``state`` (RP-Initiated Logout 1.0
    §3), as the gateway's own logout answers it."""
    if state is None:
        return target
    separator = "&" if "?" in target else "?"
    return f"{target}{separator}{urlencode({'state': state})}"
