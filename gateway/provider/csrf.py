"""CSRF tokens for the gateway's own forms (synchronizer token pattern, RFC 6749 §10.12 in spirit).

Each form has a purpose (``"consent"``, ``"stepup"``, ...); its token lives in the signed Flask
session under ``<purpose>_csrf`` and comes back in the form field ``csrf``. A cross-site page can
make the browser post, but cannot read the token, so a post without it is refused. Session keys
and the field name are what they were before this module existed, so a form rendered before an
upgrade still posts after it.
"""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

from gateway.errors import FormExpired

FIELD = "csrf"


def _key(purpose: str) -> str:
    return f"{purpose}_csrf"


def token(purpose: str, *, fresh: bool = False) -> str:
    """The token to put in the form of ``purpose``: the session's, or a new one when it has none
    or ``fresh`` asks for a new one (a one-shot form)."""
    key = _key(purpose)
    current = session.get(key)
    if fresh or not isinstance(current, str):
        current = session[key] = secrets.token_urlsafe(24)
    return current


def matches(purpose: str, *, spend: bool = False) -> bool:
    """Whether the posted form carries the session's token for ``purpose``.

    ``spend`` removes the token from the session whatever the outcome (a one-shot form). A
    session without a token never matches. Compared as bytes in constant time: any posted text,
    however odd, is a refusal and never an error.
    """
    key = _key(purpose)
    expected = session.pop(key, None) if spend else session.get(key)
    if not isinstance(expected, str):
        return False
    sent = request.form.get(FIELD, "")
    return hmac.compare_digest(sent.encode(), expected.encode())


def require(purpose: str) -> None:
    """Refuse the request with :class:`~gateway.errors.FormExpired` unless :func:`matches`."""
    if not matches(purpose):
        raise FormExpired(f"the {purpose} form came back without this session's CSRF token")
