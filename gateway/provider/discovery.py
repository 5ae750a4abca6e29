"""Discovery (OpenID Connect Discovery 1.0 §3-4) and the JWKS (RFC 7517) of the national key.

With the ``claims`` request parameter (OIDC Core §5.5: ``claims_parameter_supported``) and the
OP metadata of OpenID Connect for Identity Assurance 1.0 §8 (``verified_claims_supported``,
``trust_frameworks_supported``, ``evidence_supported``, ``documents_supported``,
``claims_in_verified_claims_supported``) for the proofing providers the platform configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Response, jsonify

from gateway.services import current_services
from gateway.verified import VERIFIED_CLAIMS, ProofingProviderSettings, discovery_metadata

blueprint = Blueprint("discovery", __name__)

SCOPES = ["openid", "profile", "phone", "id_number", "offline_access"]
CLAIMS = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "sid",
    "name",
    "phone_number",
    "id_number",
    "home_region",
]


#: Request object algorithms (RFC 9101 §10.1, OIDC Discovery §3), taken from portals of automatic
#: registration only (OpenID Federation 1.0 §12.1.1.1).
REQUEST_OBJECT_ALGORITHMS = ["RS256", "PS256", "ES256", "ES384"]


def metadata(
    issuer: str,
    proofing: Sequence[ProofingProviderSettings] = (),
    *,
    automatic_registration: bool = False,
    explicit_registration: bool = False,
    require_pushed: bool = False,
) -> dict[str, Any]:
    """The provider metadata; every endpoint sits below the issuer URL. With
    ``automatic_registration`` (OpenID Federation 1.0 §12.1), the ``request`` parameter is
    supported (RFC 9101 §10.1), for the portals that must use it. With
    ``explicit_registration`` (§12.2), the ``federation_registration_endpoint`` and
    ``client_registration_types_supported`` naming the registration types on (§5.1.3). The
    pushed authorization request endpoint (RFC 9126 §5) is always there; ``require_pushed``
    says every portal must use it."""
    claims = [*CLAIMS, VERIFIED_CLAIMS] if proofing else CLAIMS
    requests: dict[str, Any] = {"request_parameter_supported": automatic_registration}
    if automatic_registration:
        requests["request_object_signing_alg_values_supported"] = REQUEST_OBJECT_ALGORITHMS
    if automatic_registration or explicit_registration:  # §5.1.3
        requests["client_registration_types_supported"] = [
            *(["automatic"] if automatic_registration else []),
            *(["explicit"] if explicit_registration else []),
        ]
    if explicit_registration:  # §12.2
        requests["federation_registration_endpoint"] = f"{issuer}/federation/register"
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "pushed_authorization_request_endpoint": f"{issuer}/par",  # RFC 9126 §5
        "require_pushed_authorization_requests": require_pushed,
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks",
        "end_session_endpoint": f"{issuer}/logout",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256", "PS256"],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": SCOPES,
        "claims_supported": claims,
        "acr_values_supported": ["loa1", "loa2", "loa3"],
        "prompt_values_supported": ["none", "login"],
        "ui_locales_supported": ["zh-CN", "en"],
        "claims_parameter_supported": True,
        **requests,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
        **discovery_metadata(proofing),
    }


@blueprint.get("/.well-known/openid-configuration")
def openid_configuration() -> Response:
    services = current_services()
    settings = services.settings
    response = jsonify(
        metadata(
            settings.issuer_url,
            settings.proofing_providers,
            automatic_registration=settings.federation_automatic_registration,
            explicit_registration=settings.federation_explicit_registration,
            require_pushed=settings.require_pushed_authorization_requests,
        )
    )
    response.cache_control.public = True
    response.cache_control.max_age = 3600
    return response


@blueprint.get("/jwks")
def jwks() -> Response:
    response = jsonify(current_services().keys.jwks())
    response.cache_control.public = True
    # Short: a key published before it signs must reach every cache before it is used.
    response.cache_control.max_age = 300
    response.mimetype = "application/jwk-set+json"
    return response
