"""The OpenID Provider face: what portals talk to (OIDC Core, RFC 6749, RFC 7009, RFC 7662).

The modules here are thin views (parse, call one service, render); the protocol core is
:mod:`gateway.provider.oauth`, the only package that imports Authlib, and the sign-in itself
is :mod:`gateway.signin`. See ``docs/architecture.md``.
"""
