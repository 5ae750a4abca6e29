"""The authorization server: Authlib's Flask server with the gateway's grants and endpoints.

Built once per application (:func:`build_oauth_server`). Grants are registered as classes,
which Authlib instantiates per token request with this server; endpoints and client
authentication are registered as instances made with it. Either way they reach the token
service as ``server.tokens``: no class attribute is ever assigned, so two applications in one
process (tests, the demo) never share a provider.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749.authenticate_client import authenticate_client_secret_basic
from flask import Response, current_app

from gateway.store.contract import AuthorizationRequest
from gateway.tokens import TokenService

from .adapters import PortalClient
from .authorization import parse_authorization_request
from .endpoints import Introspection, PrivateKeyJwt, Revocation
from .grants import CodeGrant, OpenIDCodeExtension, PortalCredentialsGrant, RefreshGrant, S256Only

EXTENSION = "tongxing.oauth"  # the key of the application's server in ``app.extensions``


class OAuthServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's authorization server for Flask, serving :class:`~gateway.tokens.TokenService`."""

    def __init__(self, tokens: TokenService) -> None:
        super().__init__(query_client=self._portal_client, save_token=_saved_by_the_grant)
        self.tokens = tokens
        self.register_token_generator("default", _no_default_generator)
        self.register_grant(CodeGrant, [S256Only(required=True), OpenIDCodeExtension()])
        self.register_grant(RefreshGrant)
        self.register_grant(PortalCredentialsGrant)
        self.register_endpoint(Revocation(self))
        self.register_endpoint(Introspection(self))
        self.register_client_auth_method(PrivateKeyJwt.CLIENT_AUTH_METHOD, PrivateKeyJwt(tokens))
        self.register_client_auth_method("client_secret_basic", _client_secret_basic)

    def _portal_client(self, client_id: str | None) -> PortalClient | None:
        portal = self.tokens.portal(client_id)
        return PortalClient(portal) if portal is not None else None

    # -- what the views call ------------------------------------------------------------------

    def parse_authorization_request(self) -> AuthorizationRequest:
        """The current request to ``/authorize``, validated (see :mod:`.authorization`)."""
        return parse_authorization_request(self)

    def token_response(self) -> Response:
        """The token endpoint's answer to the current request (RFC 6749 §3.2, §5)."""
        response: Response = self.create_token_response()
        return response

    def revocation_response(self) -> Response:
        """The revocation endpoint's answer (RFC 7009 §2)."""
        response: Response = self.create_endpoint_response(Revocation.ENDPOINT_NAME)
        return response

    def introspection_response(self) -> Response:
        """The introspection endpoint's answer (RFC 7662 §2)."""
        response: Response = self.create_endpoint_response(Introspection.ENDPOINT_NAME)
        return response


def _client_secret_basic(query_client: Any, request: Any) -> Any:
    """``client_secret_basic`` (RFC 6749 §2.3.1) that reads a malformed header as no credentials.

    Authlib's parser raises on a ``Basic`` header without credentials, with non-ASCII base64 or
    with credentials that are not UTF-8 (RFC 7617 §2): a 500 for what is a failed client
    authentication, ``invalid_client`` with 401 (RFC 6749 §5.2).
    """
    header = request.headers.get("Authorization") or ""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic" or not credentials.strip():
        return None
    try:
        base64.b64decode(credentials.strip().encode("ascii"), validate=True).decode("utf-8")
    except (UnicodeError, binascii.Error):
        return None
    return authenticate_client_secret_basic(query_client, request)


def build_oauth_server(tokens: TokenService) -> OAuthServer:
    """The authorization server of one application."""
    return OAuthServer(tokens)


def current_oauth() -> OAuthServer:
    """The authorization server of the application handling the current request."""
    server: OAuthServer = current_app.extensions[EXTENSION]
    return server


def _saved_by_the_grant(*_: Any) -> None:
    """Each grant stores what it issues itself, in the transaction that issues it."""


def _no_default_generator(**_: Any) -> dict[str, Any]:
    raise RuntimeError("every grant issues its own tokens")


__all__ = ["EXTENSION", "OAuthServer", "build_oauth_server", "current_oauth"]
