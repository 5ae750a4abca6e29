"""The pushed authorization request endpoint (RFC 9126), ``POST /par``.

A portal sends its authorization request here, server to server, authenticated as at the token
endpoint (RFC 9126 §2: ``client_secret_basic``/``post``, ``private_key_jwt``, or a public native
app by its ``client_id``), and gets a one-time ``request_uri`` for ``/authorize`` (§2.2, §4).
The request is validated exactly as ``/authorize`` validates it
(:func:`~gateway.provider.oauth.authorization.validated_request`): registered redirect URI,
scopes, PKCE, the ``claims`` parameter; what is refused is said in JSON (§2.3), never at a
redirect URI. Its parameters are kept in the store (every process takes it) for
``pushed_request_lifetime`` (60 s by default, §2.2: short), and ``/authorize`` takes them once.

A portal of automatic registration (OpenID Federation 1.0 §12.1.1.2) authenticates with
``private_key_jwt`` against the keys of its resolved metadata, the assertion's ``aud`` being
this OP's entity identifier and nothing else (§12.1.1.2.1), and pushes its request as the
signed request object §12.1.1.1 requires, verified and used once as at ``/authorize``.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, jsonify
from joserfc import jws
from joserfc.errors import JoseError

from gateway.errors import TongxingError, UnverifiedClient
from gateway.federation.registration import is_entity_id
from gateway.provider.oauth import current_oauth
from gateway.provider.oauth.authorization import (
    REQUEST_URI_PREFIX,
    ClientAuthenticationFailed,
    authenticated_portal,
    federated_request,
    pushed_requests,
    validated_request,
)
from gateway.signin import RefusedRequest
from gateway.store.contract import DuplicateRecordError, token_hash
from gateway.store.contract.pushed_requests import PushedRequest, PushedRequestTooLargeError

blueprint = Blueprint("par", __name__)

#: RFC 9126 §2: the client authentication methods of the token endpoint.
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
#: Client authentication parameters: never part of the pushed request kept for /authorize.
_AUTHENTICATION = frozenset(
    {"client_secret", "client_assertion", "client_assertion_type", "request_uri"}
)


class _Refused(Exception):  # noqa: N818 - named after what happened
    """An error response of RFC 9126 §2.3 (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@blueprint.post("/par")
def par() -> Response:
    """RFC 9126 §2.1: push an authorization request; 201 with its ``request_uri`` (§2.2)."""
    try:
        reference, lifetime = _push()
    except _Refused as refused:
        response = jsonify(error=refused.error, error_description=refused.description)
        response.status_code = refused.status
        if refused.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="tongxing"'
    else:
        response = jsonify(request_uri=reference, expires_in=int(lifetime.total_seconds()))
        response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


def _push() -> tuple[str, timedelta]:
    server = current_oauth()
    tokens = server.tokens
    oauth_request = server.create_oauth2_request(None)
    data = oauth_request.payload.data
    if "request_uri" in data:  # RFC 9126 §2.1
        raise _Refused("invalid_request", "request_uri is not taken at the PAR endpoint")
    try:
        portal = authenticated_portal(server, oauth_request, AUTH_METHODS)
    except ClientAuthenticationFailed as error:
        raise _Refused("invalid_client", str(error), 401) from None
    client_id = portal.client_id
    if data.get("client_id", client_id) != client_id:  # RFC 9126 §2.1
        raise _Refused("invalid_request", "client_id is not the authenticated client's")
    automatic = is_entity_id(client_id)
    if automatic:
        _check_federated_assertion(data.get("client_assertion"), tokens.settings.issuer_url)
    try:
        if automatic:
            federated_request(server, oauth_request)  # §12.1.1.1: the request object, used once
        validated_request(server, oauth_request, pushed=True)
    except UnverifiedClient as error:
        raise _Refused(error.code, _description(error)) from None
    except RefusedRequest as refused:
        raise _Refused(refused.error, refused.description or refused.error) from None
    parameters = {
        name: str(value)
        for name, value in oauth_request.payload.data.items()
        if name not in _AUTHENTICATION and value is not None
    }
    parameters["client_id"] = client_id
    lifetime = tokens.settings.pushed_request_lifetime
    reference = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)  # 256 bits (RFC 9126 §2.2)
    pushed = PushedRequest(
        reference_hash=token_hash(reference),
        client_id=client_id,
        parameters=parameters,
        expires_at=tokens.clock() + lifetime,
    )
    try:
        pushed_requests(tokens.store).save_pushed_request(pushed)
    except PushedRequestTooLargeError as error:
        raise _Refused("invalid_request", str(error)) from None
    except DuplicateRecordError:  # pragma: no cover - 256 random bits
        raise _Refused("invalid_request", "try again") from None
    return reference, lifetime


def _check_federated_assertion(assertion: Any, issuer: str) -> None:
    """OpenID Federation 1.0 §12.1.1.2.1: a portal of automatic registration authenticates
    with ``private_key_jwt`` (verified already, against its resolved ``jwks``), the JWT's
    ``aud`` this OP's entity identifier and nothing else."""
    if not isinstance(assertion, str):
        raise _Refused(
            "invalid_client", "automatic registration authenticates with private_key_jwt", 401
        )
    try:
        claims = json.loads(jws.extract_compact(assertion.encode("ascii")).payload)
    except (JoseError, ValueError, UnicodeError):  # pragma: no cover - verified already
        claims = None
    aud = claims.get("aud") if isinstance(claims, dict) else None
    if aud != issuer and aud != [issuer]:
        raise _Refused(
            "invalid_client", "the assertion's aud must be this OP's entity identifier only", 401
        )


def _description(error: TongxingError) -> str:
    detail = getattr(error, "detail", None)
    return str(detail or error.message_en)[:300]


__all__ = ["blueprint"]
