"""The UserInfo endpoint (OIDC Core §5.3), protected by bearer tokens (RFC 6750)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from gateway.services import current_services
from gateway.tokens import BearerRefusal

blueprint = Blueprint("userinfo", __name__)


def _bearer_error(refusal: BearerRefusal) -> Response:
    response = jsonify({"error": refusal.error, "error_description": refusal.description})
    response.status_code = refusal.status
    response.headers["WWW-Authenticate"] = f'Bearer error="{refusal.error}"'
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
    claims = current_services().tokens.userinfo(value.strip())
    if isinstance(claims, BearerRefusal):
        return _bearer_error(claims)
    response = jsonify(claims)
    response.headers["Cache-Control"] = "no-store"
    return response
