"""The token (RFC 6749 §3.2), revocation (RFC 7009) and introspection (RFC 7662) endpoints."""

from __future__ import annotations

from flask import Blueprint, Response

from gateway.provider.authorize import oauth

blueprint = Blueprint("token", __name__)


@blueprint.post("/token")
def token() -> Response:
    server, _ = oauth()
    response: Response = server.create_token_response()
    return response


@blueprint.post("/revoke")
def revoke() -> Response:
    server, _ = oauth()
    response: Response = server.create_endpoint_response("revocation")
    return response


@blueprint.post("/introspect")
def introspect() -> Response:
    server, _ = oauth()
    response: Response = server.create_endpoint_response("introspection")
    return response
