"""The OpenID Provider face: what portals talk to (OIDC Core, RFC 6749, RFC 7009, RFC 7662)."""
