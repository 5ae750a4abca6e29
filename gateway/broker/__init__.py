"""The OIDC broker: the gateway as a confidential client of each region's identity provider.

No Flask here: the sign-in (:mod:`gateway.signin`) calls :class:`RegionClient`, and the views
render the :class:`~gateway.broker.errors.BrokerError` it may raise.

* :mod:`~gateway.broker.metadata`: discovery and JWK Set cache (OIDC Discovery §4, RFC 7517)
* :mod:`~gateway.broker.client`: authentication request, callback, code exchange (OIDC Core §3.1)
* :mod:`~gateway.broker.id_token`: ID token validation (OIDC Core §3.1.3.7)
* :mod:`~gateway.broker.pkce`: RFC 7636 S256
* :mod:`~gateway.broker.transport`: bounded HTTP to the regions
* :mod:`~gateway.broker.errors`: one error class per failure, with zh-CN and English messages
"""

from gateway.broker.client import (
    CallbackParams,
    LoginStart,
    LoginTransaction,
    RegionClient,
    UpstreamIdentity,
)
from gateway.broker.errors import (
    BrokerError,
    CallbackInvalid,
    IdentityNumberInvalid,
    IdentityNumberMissing,
    InvalidUpstreamToken,
    LoginExpired,
    MixUpError,
    RegionMetadataInvalid,
    RegionUnavailable,
    StaleAuthentication,
    StateMismatch,
    TokenExchangeFailed,
    UpstreamAccessDenied,
    UpstreamError,
    UpstreamInteractionRequired,
)
from gateway.broker.metadata import CachePolicy, MetadataCache, ProviderMetadata
from gateway.broker.transport import HttpLimits

__all__ = [
    "BrokerError",
    "CachePolicy",
    "CallbackInvalid",
    "CallbackParams",
    "HttpLimits",
    "IdentityNumberInvalid",
    "IdentityNumberMissing",
    "InvalidUpstreamToken",
    "LoginExpired",
    "LoginStart",
    "LoginTransaction",
    "MetadataCache",
    "MixUpError",
    "ProviderMetadata",
    "RegionClient",
    "RegionMetadataInvalid",
    "RegionUnavailable",
    "StaleAuthentication",
    "StateMismatch",
    "TokenExchangeFailed",
    "UpstreamAccessDenied",
    "UpstreamError",
    "UpstreamIdentity",
    "UpstreamInteractionRequired",
]
