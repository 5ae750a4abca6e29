"""Identity proofing pages and the verification endpoint (thin views over
:mod:`gateway.proofing`).

* ``GET /proofing/start``: the step-up page sends a person here when the portal needs ``loa3``
  and the session has two factors but no verified claims; they go on to the proofing provider.
* ``GET /proofing/callback``: the provider's answer (OIDC Core §3.1.2.5), then the portal's.
* ``POST /verification``: the verification result only (网号/网证): a portal, with the person's
  access token (RFC 6750 §2.1) and ``name`` and ``id_number`` in the form body, learns whether
  they are the signed-in person's: ``{"match": true}`` or ``{"match": false}``, nothing else.
  Limited per portal (``rate_limits.verification``) and per address (:mod:`gateway.limits`),
  audited.
"""

from __future__ import annotations

import math

from flask import Blueprint, current_app, jsonify, redirect, request
from werkzeug.wrappers import Response

from gateway.broker import RegionClient
from gateway.errors import InvalidRequest, TooManyRequests, VerificationTokenInvalid
from gateway.limits import limit
from gateway.proofing import (
    MAX_NAME_LENGTH,
    MAX_NUMBER_LENGTH,
    ProofingService,
    VerificationHeld,
)
from gateway.provider.answers import pending_id, render, session_id
from gateway.services import Services, current_services

blueprint = Blueprint("proofing", __name__)


@blueprint.after_request
def _no_store(response: Response) -> Response:
    """Never cached (RFC 9111 §5.2.2.5): the answers name a person."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def service(services: Services) -> ProofingService:
    """The proofing service of this gateway, made once per application."""
    made: ProofingService | None = current_app.extensions.get("tongxing_proofing")
    if made is None:
        verified = services.tokens.verified
        if verified is None:  # pragma: no cover - gateway.services wires it
            raise RuntimeError("the verified-claims service is not wired")
        made = ProofingService(
            settings=services.settings,
            store=services.store,
            sessions=services.sessions,
            sealer=services.sealer,
            verified=verified,
            signin=services.signin,
            broker=lambda region: RegionClient(region, services.regions),
            clock=services.clock,
        )
        current_app.extensions["tongxing_proofing"] = made
    return made


@blueprint.get("/proofing/start")
def start() -> Response:
    services = current_services()
    url = service(services).start(pending_id(), session_id())
    return redirect(url, code=303)


@blueprint.get("/proofing/callback")
def callback() -> Response:
    services = current_services()
    params = request.args.to_dict(flat=False)
    return render(service(services).complete(params, pending_id(), session_id()))


@blueprint.post("/verification")
def verification() -> Response:
    """The verification result only: ``match`` true or false (never the number).

    Limited (:mod:`gateway.limits`, RFC 6585 §4): per address before this view runs, per portal
    here once the access token has named the portal."""
    services = current_services()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 512:
        raise VerificationTokenInvalid("no bearer token")
    name, number = request.form.get("name", ""), request.form.get("id_number", "")
    if not name or not number or len(name) > MAX_NAME_LENGTH or len(number) > MAX_NUMBER_LENGTH:
        raise InvalidRequest("name and id_number are required, and bounded")
    proofing = service(services)
    client_id = proofing.token_client(token.strip())
    if client_id is None:
        raise VerificationTokenInvalid("the access token is not a live token of a person")
    refused = limit("verification", client_id)
    if refused is not None:
        return refused
    try:
        verified = proofing.verify(token.strip(), name, number)
    except VerificationHeld as held:
        retry_after = max(1, math.ceil((held.until - services.clock()).total_seconds()))
        error = TooManyRequests(
            "verification: this portal's answers about this person are held",
            details={"retry_after": retry_after},
        )
        response = current_app.make_response(current_app.handle_user_exception(error))
        response.headers["Retry-After"] = str(retry_after)  # RFC 6585 §4, RFC 9110 §10.2.3
        return response
    if verified is None:  # pragma: no cover - ended between the two reads
        raise VerificationTokenInvalid("the access token is not a live token of a person")
    return jsonify({"match": verified.match})
