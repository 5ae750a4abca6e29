"""The federation registration endpoint (OpenID Federation 1.0 §12.2.1-§12.2.4): parses the
POST and renders the answer; :class:`~gateway.federation.explicit.ExplicitRegistration` decides.
Answers ``not_found`` (404) unless the platform enabled explicit registration."""

from __future__ import annotations

import json
from typing import Final

from flask import Blueprint, Response, jsonify, request

from gateway.errors import (
    FederationError,
    FederationInvalidTrustAnchor,
    FederationInvalidTrustChain,
    FederationNotFound,
)
from gateway.federation.anchor import MAX_STATEMENT_BYTES
from gateway.federation.explicit import (
    REGISTRATION_PATH,
    RESPONSE_MEDIA_TYPE,
    TRUST_CHAIN_MEDIA_TYPE,
    ExplicitRegistration,
)
from gateway.federation.statements import (
    ENTITY_STATEMENT_MEDIA_TYPE,
    StatementError,
    unverified_claims,
)
from gateway.services import current_services

#: A trust chain holds at most this many statements (the anchor's chains have three).
MAX_CHAIN_STATEMENTS: Final = 8
MAX_BODY_BYTES: Final = MAX_STATEMENT_BYTES * MAX_CHAIN_STATEMENTS

blueprint = Blueprint("federation_explicit", __name__)


def _registration() -> ExplicitRegistration:
    services = current_services()
    found = services.registry.explicit
    if not isinstance(found, ExplicitRegistration) or services.federation is None:
        raise FederationNotFound(
            "explicit registration is not enabled",
            message_en="Explicit registration is not enabled on this OpenID Provider.",
        )
    return found


@blueprint.errorhandler(FederationError)
def _error(error: FederationError) -> tuple[Response, int]:
    """§12.2.4: ``application/json`` with ``error`` and ``error_description``."""
    response = jsonify({"error": error.code, "error_description": error.message_en})
    response.cache_control.no_store = True
    return response, error.status


@blueprint.post(REGISTRATION_PATH)
def register() -> Response:
    """§12.2.1: the entity configuration or trust chain is the whole POST body."""
    registration = _registration()
    media_type = request.mimetype
    if media_type not in (ENTITY_STATEMENT_MEDIA_TYPE, TRUST_CHAIN_MEDIA_TYPE):
        raise FederationError(
            "unsupported content type",
            message_en=f"Post {ENTITY_STATEMENT_MEDIA_TYPE} or {TRUST_CHAIN_MEDIA_TYPE}.",
        )
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise FederationError("too large", message_en="The registration request is too large.")
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise FederationError("too large", message_en="The registration request is too large.")
    try:
        text = body.decode("ascii").strip()
    except UnicodeDecodeError:
        raise FederationError(
            "not ASCII", message_en="The registration request is not a JWS or JSON array."
        ) from None
    if media_type == TRUST_CHAIN_MEDIA_TYPE:
        text = _configuration_from_chain(text, registration.anchor.entity_id)
    elif len(text) > MAX_STATEMENT_BYTES:
        raise FederationError("too large", message_en="The entity configuration is too large.")
    token = registration.register(text)
    response = Response(token, mimetype=RESPONSE_MEDIA_TYPE)
    response.cache_control.no_store = True
    return response


def _configuration_from_chain(text: str, anchor_id: str) -> str:
    """§12.2.2 step 2: the entity configuration a posted trust chain starts with (§4.4); a
    chain that ends at another trust anchor is ``invalid_trust_anchor``."""
    try:
        chain = json.loads(text)
    except ValueError:
        chain = None
    if (
        not isinstance(chain, list)
        or not 0 < len(chain) <= MAX_CHAIN_STATEMENTS
        or not all(isinstance(item, str) and item for item in chain)
    ):
        raise FederationError(
            "not a trust chain",
            message_en="A trust chain is a JSON array of statements, the entity's first.",
        )
    if len(chain) > 1:
        try:
            root = unverified_claims(chain[-1])
        except StatementError:
            raise FederationInvalidTrustChain("the chain's last statement is no JWS") from None
        if root.get("iss") != anchor_id:
            raise FederationInvalidTrustAnchor("the trust chain ends at another trust anchor")
    return str(chain[0])


__all__ = ["blueprint"]
