"""The token (RFC 6749 §3.2), revocation (RFC 7009) and introspection (RFC 7662) endpoints."""

from __future__ import annotations

from flask import Blueprint, Response

from gateway.provider.oauth import current_oauth

blueprint = Blueprint("token", __name__)


@blueprint.post("/token")
def token() -> Response:
    return current_oauth().token_response()


@blueprint.post("/revoke")
def revoke() -> Response:
    return current_oauth().revocation_response()


@blueprint.post("/introspect")
def introspect() -> Response:
    return current_oauth().introspection_response()
