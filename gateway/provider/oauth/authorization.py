"""The authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1-2), validated once.

Authlib checks the client, the redirect URI (by the portal's rule,
:meth:`~gateway.registry.Portal.accepts_redirect_uri`: exact, but for the port of a native app's
loopback URI, RFC 8252 §7.3), the response type, the scope, the nonce and PKCE (required of
public clients, so of every native app); this module adds what the gateway asks on top
(``prompt`` values, ``max_age``, bounded parameters, the scope cut down to what the portal is
registered for) and returns the request as the sign-in keeps it: a typed
:class:`~gateway.store.contract.AuthorizationRequest`. From there on the request is never parsed
again; the sign-in resumes it from its record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload

from gateway.errors import (
    FederatedClientRefused,
    FederationError,
    InvalidRequestObject,
    InvalidRequestUri,
    RequestObjectRequired,
    UnknownClient,
    UnregisteredRedirectUri,
    UnsupportedResponseType,
    UnverifiedClient,
)
from gateway.federation.registration import (
    AutomaticRegistration,
    RequestObjectError,
    is_entity_id,
    request_parameters,
    verify_request_object,
)
from gateway.observe import SignInFailed
from gateway.registry import Portal
from gateway.signin import RefusedRequest
from gateway.store.contract import AuthorizationRequest, token_hash
from gateway.store.contract.pushed_requests import PushedRequestStore
from gateway.verified import ClaimsRequestError, parse_claims_request

if TYPE_CHECKING:
    from .server import OAuthServer

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
"""What every ``request_uri`` the gateway issues at ``/par`` starts with (RFC 9126 §2.2)."""
MAX_PARAMETER_LENGTH = 2048
"""The longest value of a parameter the gateway keeps for the answer (bad input costs a
refusal, never an unbounded record: THREAT_MODEL row 7)."""
KEPT = (
    "scope",
    "state",
    "nonce",
    "prompt",
    "max_age",
    "login_hint",
    "acr_values",
    "ui_locales",
    "id_token_hint",
    "region",
)

_UNVERIFIED: dict[str, type[UnverifiedClient]] = {
    cls.code: cls for cls in (UnknownClient, UnregisteredRedirectUri, UnsupportedResponseType)
}


def parse_authorization_request(server: OAuthServer) -> AuthorizationRequest:
    """The current HTTP request to ``/authorize``, validated.

    Raises an :class:`~gateway.errors.UnverifiedClient` when the client or redirect URI cannot
    be verified (a page for the person: no redirect to an unverified URI, RFC 6749 §4.1.2.1),
    and :class:`~gateway.signin.RefusedRequest` for any other error (for the portal). The page
    is a sign-in that failed before a portal could be named: said as
    :class:`~gateway.observe.SignInFailed` with its code (the refusal for the portal is said
    by :meth:`gateway.signin.SignIn.refused`, which answers it).
    """
    try:
        return _validated(server)
    except UnverifiedClient as error:
        server.tokens.events.emit(SignInFailed(portal=None, region=None, reason=error.code))
        raise


def _validated(server: OAuthServer) -> AuthorizationRequest:
    oauth_request = server.create_oauth2_request(None)
    pushed = _pushed_request(server, oauth_request)
    if not pushed:
        _federated_request(server, oauth_request)
    return validated_request(server, oauth_request, pushed=pushed)


def validated_request(
    server: OAuthServer, oauth_request: Any, *, pushed: bool
) -> AuthorizationRequest:
    """The authorization request ``oauth_request`` holds (its request object already taken,
    for a portal of automatic registration), validated; ``pushed`` when its parameters came
    from ``/par`` (RFC 9126): a portal that must push (§6) is refused otherwise."""
    payload = oauth_request.payload
    _refuse_unprintable_echoes(server, payload)
    try:
        grant = server.get_authorization_grant(oauth_request)
        grant.validate_no_multiple_request_parameter(oauth_request)
        redirect_uri: str = grant.validate_authorization_request()
    except InvalidClientError as error:
        raise _unverified(error) from None
    except OAuth2Error as error:
        if error.redirect_uri is None:
            raise _unverified(error) from None
        raise RefusedRequest(
            error.error,
            error.description or None,
            error.redirect_uri,
            payload.state,
            payload.data.get("client_id"),  # verified, with the redirect URI
        ) from None
    values: dict[str, str] = {k: v for k in KEPT if (v := payload.data.get(k)) is not None}
    client_id: str = grant.request.client.client_id

    def refuse(description: str) -> RefusedRequest:
        return RefusedRequest(
            "invalid_request", description, redirect_uri, payload.state, client_id
        )

    too_long = sorted(k for k, v in values.items() if len(v) > MAX_PARAMETER_LENGTH)
    if too_long:
        raise refuse(f"{too_long[0]} is longer than {MAX_PARAMETER_LENGTH} characters")
    prompt = tuple(values.get("prompt", "").split())
    if "none" in prompt and len(prompt) > 1:  # OIDC Core §3.1.2.1
        raise refuse("Invalid 'prompt' parameter.")
    max_age = values.get("max_age")
    if max_age is not None and (not max_age.isdigit() or len(max_age) > 10):
        raise refuse("max_age must be a non-negative integer")
    scope = _granted_scope(grant.request.client.portal, values.get("scope"))
    if scope is None:
        raise RefusedRequest(
            "invalid_scope",
            "the portal is not registered for the openid scope it must ask for",
            redirect_uri,
            payload.state,
            client_id,
        )
    if not pushed and (
        server.tokens.settings.require_pushed_authorization_requests
        or grant.request.client.portal.require_pushed_authorization_requests
    ):  # RFC 9126 §6: only pushed requests are taken from this portal
        raise refuse("this portal's authorization requests must be pushed (RFC 9126)")
    claims = _claims_parameter(payload.data.get("claims"), refuse)
    hint = values.get("id_token_hint")
    return AuthorizationRequest(
        client_id=client_id,
        redirect_uri=redirect_uri,
        scope=scope,
        state=values.get("state"),
        nonce=values.get("nonce"),
        code_challenge=payload.data.get("code_challenge"),
        code_challenge_method=payload.data.get("code_challenge_method"),
        prompt=prompt,
        max_age=int(max_age) if max_age is not None else None,
        login_hint=values.get("login_hint"),
        acr_values=values.get("acr_values"),
        ui_locales=values.get("ui_locales"),
        hinted_subject=server.tokens.hinted_subject(hint) if hint else None,
        region=values.get("region"),
        claims=claims,
    )


def _pushed_request(server: OAuthServer, oauth_request: Any) -> bool:
    """Replace the query with the pushed request its ``request_uri`` names (RFC 9126 §4: only
    the pushed parameters are used), taken once from the store; ``False`` when there is no
    ``request_uri``.

    The ``request_uri`` must be one this gateway issued (never fetched: THREAT_MODEL row 1),
    live, unused, and pushed by the portal ``client_id`` names (RFC 9126 §4, §7.3); else
    :class:`~gateway.errors.InvalidRequestUri`, a page: the redirect URI is only known from the
    pushed request. Another portal's attempt leaves the request to its owner.
    """
    data = oauth_request.payload.data
    reference = data.get("request_uri")
    if reference is None:
        return False
    client_id = data.get("client_id")
    if not isinstance(reference, str) or not reference.startswith(REQUEST_URI_PREFIX):
        raise InvalidRequestUri("request_uri is not a reference this gateway issued at /par")
    if not isinstance(client_id, str) or not client_id:
        raise InvalidRequestUri("client_id is required with request_uri (RFC 9126 §4)")
    if len(oauth_request.payload.datalist.get("request_uri", [])) > 1:
        raise InvalidRequestUri("request_uri is repeated")
    tokens = server.tokens
    store = pushed_requests(tokens.store)
    taken = store.take_pushed_request(token_hash(reference), client_id, tokens.clock())
    if taken is None:
        raise InvalidRequestUri("request_uri is unknown, expired, used or another portal's")
    oauth_request.payload = BasicOAuth2Payload(dict(taken.parameters))
    return True


class ClientAuthenticationFailed(ValueError):  # noqa: N818 - named after what happened
    """The client did not authenticate (RFC 6749 §5.2 ``invalid_client``); the message says
    why."""


def authenticated_portal(server: OAuthServer, oauth_request: Any, methods: list[str]) -> Portal:
    """The portal the request authenticates as, by one of ``methods`` and the portal's own
    registered method (RFC 9126 §2: as at the token endpoint), or
    :class:`ClientAuthenticationFailed`."""
    try:
        client = server.authenticate_client(oauth_request, methods, endpoint="par")
    except InvalidClientError as error:
        raise ClientAuthenticationFailed(
            error.description or "client authentication failed"
        ) from None
    portal: Portal = client.portal
    return portal


def pushed_requests(store: object) -> PushedRequestStore:
    """The token service's store as the pushed requests' (it is the whole
    :class:`~gateway.store.contract.Store`, :func:`gateway.services.wire`)."""
    return cast(PushedRequestStore, store)


def _federated_request(server: OAuthServer, oauth_request: Any) -> None:
    """The request of a portal of automatic registration (OpenID Federation 1.0 §12.1), as
    its signed request object says it, before Authlib validates it.

    When ``client_id`` is an entity identifier and the platform enables automatic registration,
    its trust chain is resolved (§12.1, §10: a failure is ``invalid_client``, a page); the
    request must then be a request object by value (§12.1.1.1, RFC 9101 §5.1: else
    ``invalid_request``) signed with a key of the resolved metadata's ``jwks``, for this OP,
    not expired, used once (``jti``, remembered in the store): else ``invalid_request_object``
    (RFC 9101 §6.3), a page, since the redirect URI it names is only trusted once it verifies.
    Its claims then replace the query's parameters (RFC 9101 §5: only they are used).
    Any other request is left as it is. ``/par`` takes the request object the same way
    (OpenID Federation 1.0 §12.1.1.2: :func:`federated_request`).
    """
    automatic = server.tokens.registry.federated
    client_id = oauth_request.payload.data.get("client_id")
    if not isinstance(automatic, AutomaticRegistration) or not is_entity_id(client_id):
        return
    try:
        portal = automatic.resolve(client_id)
    except FederationError as error:
        raise FederatedClientRefused(
            f"{error.code}: {error.detail or error.message_en}"[:300]
        ) from None
    data = oauth_request.payload.data
    token = data.get("request")
    if "request_uri" in data or not isinstance(token, str) or not token:
        raise RequestObjectRequired("send the authorization request as a request object by value")
    tokens = server.tokens
    now = tokens.clock()
    try:
        claims = verify_request_object(token, portal, tokens.settings.issuer_url, now)
    except RequestObjectError as error:
        raise InvalidRequestObject(str(error)) from None
    remember = datetime.fromtimestamp(float(claims["exp"]), UTC) + timedelta(minutes=1)
    if not tokens.store.use_assertion(portal.client_id, f"request:{claims['jti']}", remember, now):
        raise InvalidRequestObject("the request object was used before (jti)")
    oauth_request.payload = BasicOAuth2Payload(request_parameters(claims))


federated_request = _federated_request


def _claims_parameter(value: str | None, refuse: Callable[[str], RefusedRequest]) -> str | None:
    """The ``claims`` request parameter (OIDC Core §5.5), validated and normalised, bounded
    by :data:`gateway.verified.MAX_CLAIMS_PARAMETER`: a malformed one is ``invalid_request``
    at the portal's redirect URI (RFC 6749 §4.1.2.1; IDA §5 for ``verified_claims``)."""
    if value is None:
        return None
    try:
        return parse_claims_request(value).text
    except ClaimsRequestError as error:
        raise refuse(str(error)) from None


def _printable(value: str) -> bool:
    """Whether ``value`` is all VSCHAR (%x20-7E), what RFC 6749 Appendix A allows in
    ``client_id``, ``response_type`` and (as an ASCII URI) ``redirect_uri``."""
    return all(" " <= char <= "~" for char in value)


def _refuse_unprintable_echoes(server: OAuthServer, payload: Any) -> None:
    """Refuse, before Authlib sees them, the values Authlib would echo in an error description.

    Authlib quotes ``response_type`` and ``redirect_uri`` in its ``error_description``, which
    must be printable ASCII (RFC 6749 §4.1.2.1), and raises :class:`ValueError` (a 500) when the
    request held anything else. None of these three parameters may hold such characters (RFC
    6749 Appendix A), so the answer is the one Authlib would give for any unsupported value: a
    page when the client or its redirect URI cannot be verified, else
    ``unsupported_response_type`` at the verified redirect URI (RFC 6749 §4.1.2.1).
    """
    client_id, redirect_uri, response_type = (
        payload.data.get(name) for name in ("client_id", "redirect_uri", "response_type")
    )
    if client_id is not None and not _printable(client_id):
        raise UnknownClient("client_id holds characters outside printable ASCII")
    if redirect_uri is not None and not _printable(redirect_uri):
        raise UnregisteredRedirectUri("redirect_uri holds characters outside printable ASCII")
    if response_type is None or _printable(response_type):
        return
    client = server.query_client(client_id) if client_id else None
    target = (redirect_uri or client.get_default_redirect_uri()) if client is not None else None
    if client is None or not target or not client.check_redirect_uri(target):
        raise UnsupportedResponseType("response_type holds characters outside printable ASCII")
    raise RefusedRequest(
        "unsupported_response_type",
        "response_type holds characters outside printable ASCII",
        target,
        payload.state,
        client.client_id,
    )


def _granted_scope(portal: Portal, requested: str | None) -> str | None:
    """The scope the sign-in carries: the requested one less what the portal is not registered
    for (RFC 6749 §3.3; the token response then names what was granted), or ``None`` when
    ``openid`` is not left (OIDC Core §3.1.2.1: an OpenID request must have it; the portal gets
    ``invalid_scope`` at its redirect URI, RFC 6749 §4.1.2.1). Codes, tokens, userinfo and
    introspection all follow from this value, never from the raw request.
    """
    granted = portal.granted_scope(requested)
    return granted if "openid" in granted.split() else None


def _unverified(error: OAuth2Error) -> UnverifiedClient:
    """A page for the person, named after the OAuth error Authlib raised (any other is
    reported as the redirect URI it could not verify)."""
    page = _UNVERIFIED.get(error.error, UnregisteredRedirectUri)
    return page(f"{error.error}: {error.description or 'no description'}"[:300])


__all__ = [
    "MAX_PARAMETER_LENGTH",
    "REQUEST_URI_PREFIX",
    "ClientAuthenticationFailed",
    "authenticated_portal",
    "federated_request",
    "parse_authorization_request",
    "pushed_requests",
    "validated_request",
]
