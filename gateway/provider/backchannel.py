"""The receiver of a region's back-channel logout (OpenID Connect Back-Channel Logout 1.0).

The gateway is each region's relying party, registered there with
``{issuer}/backchannel-logout/{code}`` as its ``backchannel_logout_uri``. When the person's
session at the region ends (a logout at the region, an administrator ending it), the region POSTs
a Logout Token here (§2.5); a valid one (§2.6, :mod:`gateway.broker.logout_token`) ends every
gateway session that the region's session opened, with its grants, and every portal of those
sessions is told in turn (§2.7; THREAT_MODEL.md row 5: logout means logout, both ways).

Answers (§2.8): 200 when the token was valid, whether or not a session was still live; 400 with
``{"error": "invalid_request", "error_description": ...}`` otherwise. An unknown region, a
disabled one and a bad token get the same answer, which names no check (the log does). Both carry
``Cache-Control: no-store``. The body is bounded; no body makes the receiver answer 5xx.
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from gateway.broker.errors import BrokerError
from gateway.broker.logout_token import (
    LogoutTokenExpectations,
    RegionLogout,
    validate_logout_token,
)
from gateway.errors import LogoutTokenInvalid
from gateway.registry import CODE_PATTERN, Region
from gateway.services import Services, current_services

log = logging.getLogger(__name__)

blueprint = Blueprint("backchannel", __name__)

MAX_BODY = 32 * 1024
"""The largest request body read: a logout token is bounded at 16 KiB, form-encoded it grows."""
LEEWAY = 180.0
"""Clock skew allowed on ``iat`` and ``exp``, as for the region's ID tokens."""
MAX_TOKEN_AGE = 600.0
"""How old (``iat``) a logout token may be: a region sends it as the session ends."""
_CODE = re.compile(CODE_PATTERN)
FORM = "application/x-www-form-urlencoded"


def replay_key(region: str) -> str:
    """The replay store's client key of a region's logout tokens: a ``jti`` is used once per
    region (§2.6 step 8), whichever replica receives it."""
    return f"backchannel-logout:{region}"


@blueprint.post("/backchannel-logout/<region_code>")
def backchannel_logout(region_code: str) -> Response:
    services = current_services()
    try:
        region = _region(services, region_code)
        logout = _logout(services, region)
    except (LogoutTokenInvalid, BrokerError) as error:
        log.info(
            "back-channel logout for region %r refused: %s",
            region_code[:64],
            getattr(error, "detail", "") or str(error),
            extra={"event": "backchannel_logout.refused"},
        )
        return _answer(
            jsonify(error="invalid_request", error_description=LogoutTokenInvalid.message_en), 400
        )
    ended = services.sessions.end_region_logout(
        region.code, logout.sid, logout.sub, services.clock()
    )
    log.info(
        "back-channel logout from region %s ended %d session(s)",
        region.code,
        ended,
        extra={"event": "backchannel_logout.accepted", "sessions_ended": ended},
    )
    return _answer(Response(status=200), 200)


def _region(services: Services, code: str) -> Region:
    region = services.registry.region(code) if _CODE.fullmatch(code) else None
    if region is None or not region.enabled:
        raise LogoutTokenInvalid(f"region {code[:64]!r} is unknown or disabled")
    return region


def _logout(services: Services, region: Region) -> RegionLogout:
    """Read the form (§2.5), validate its token (§2.6) and use its ``jti`` once (step 8)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise LogoutTokenInvalid("the request body is too large")
    if request.mimetype != FORM:
        raise LogoutTokenInvalid("the request is not form-encoded")
    request.max_content_length = MAX_BODY
    try:
        tokens = request.form.getlist("logout_token")
    except HTTPException:  # a body larger than announced, or one the parser refuses
        raise LogoutTokenInvalid("the request body cannot be read") from None
    if len(tokens) != 1:
        raise LogoutTokenInvalid("the request needs exactly one logout_token")
    now = services.clock()
    logout = validate_logout_token(
        tokens[0],
        region=region.code,
        expected=LogoutTokenExpectations(
            issuer=region.issuer,
            client_id=region.client_id,
            now=now.timestamp(),
            leeway=LEEWAY,
            max_token_age=MAX_TOKEN_AGE,
        ),
        resolve_key=lambda kid, alg: services.regions.find_key(region, kid, alg),
    )
    remember_until = now.fromtimestamp(logout.remember_until, now.tzinfo)
    if not services.store.use_assertion(replay_key(region.code), logout.jti, remember_until, now):
        raise LogoutTokenInvalid(f"region {region.code}: the logout token's jti was used before")
    return logout


def _answer(response: Response, status: int) -> Response:
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response
