"""The OAuth 2.0 / OpenID Connect protocol core, on Authlib: the only package that imports it.

* :mod:`.authorization`: the authorization request, validated once (RFC 6749 §4.1.1,
  OIDC Core §3.1.2);
* :mod:`.grants`: authorization code, refresh token and client credentials at the token
  endpoint (RFC 6749 §4.1.3, §6, §4.4; OIDC Core §3.1.3);
* :mod:`.endpoints`: revocation (RFC 7009), introspection (RFC 7662), ``private_key_jwt``
  (RFC 7523);
* :mod:`.adapters`: the gateway's records as Authlib's client, code and token models;
* :mod:`.server`: the server that holds them, one per application.

What is issued, and to whom, is decided outside, protocol-free: :mod:`gateway.tokens` (codes,
tokens, claims) and :mod:`gateway.signin` (the sign-in). Authlib has no type hints; everything
it hands back is adapted here, typed.
"""

from gateway.provider.oauth.server import (
    EXTENSION,
    OAuthServer,
    build_oauth_server,
    current_oauth,
)

__all__ = ["EXTENSION", "OAuthServer", "build_oauth_server", "current_oauth"]
