"""The UserInfo endpoint (OIDC Core §5.3), protected by bearer tokens (RFC 6750)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request

from gateway.provider.authorize import oauth
from gateway.store.contract import token_hash

blueprint = Blueprint("userinfo", __name__)


def _bearer_error(error: str, description: str, status: int) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    response.headers["WWW-Authenticate"] = f'Bearer error="{error}"'
    return response


@blueprint.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        response = jsonify({"error": "invalid_request"})
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="tongxing"'
        return response
    _, provider = oauth()
    found = provider.store.get_access_token_session(token_hash(value.strip()), datetime.now(UTC))
    if found is None:
        return _bearer_error("invalid_token", "the access token is not valid", 401)
    record, session = found
    if "openid" not in record.scope.split():
        return _bearer_error("insufficient_scope", "the token lacks the openid scope", 403)
    portal = provider.services.registry.portal(record.client_id)
    if portal is None:
        return _bearer_error("invalid_token", "the portal is no longer registered", 401)
    user = provider.session_user(record.subject, session)
    response = jsonify(provider.user_claims(portal, user, record.scope))
    response.headers["Cache-Control"] = "no-store"
    return response
