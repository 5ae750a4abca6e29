"""The UserInfo endpoint (OIDC Core §5.3), protected by bearer tokens (RFC 6750).

OIDC Core §5.3.1: the client sends the access token "using the Authorization header field or as
a form-encoded body parameter" (RFC 6750 §2.1 and §2.2), by GET or POST. Those two ways are
accepted here; the third of RFC 6750, the URI query (§2.3), is refused: a token in a URL lands
in logs and histories (RFC 6750 §5.3, "don't pass bearer tokens in page URLs"), and OIDC does
not ask a provider to take it. A request that uses more than one way is refused too (RFC 6750
§2: "Clients MUST NOT use more than one method to transmit the token in each request"), with
``invalid_request`` and 400 (§3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from gateway.services import current_services
from gateway.tokens import BearerRefusal

blueprint = Blueprint("userinfo", __name__)

FORM = "application/x-www-form-urlencoded"
#: A form that carries an access token is small; a larger body is refused before it is read.
MAX_BODY = 16 * 1024


@dataclass(frozen=True)
class _Missing:
    """No bearer token at all (RFC 6750 §3.1: no error code in ``WWW-Authenticate`` then)."""


def _bearer_error(refusal: BearerRefusal) -> Response:
    response = jsonify({"error": refusal.error, "error_description": refusal.description})
    response.status_code = refusal.status
    response.headers["WWW-Authenticate"] = f'Bearer error="{refusal.error}"'
    return response


def _invalid_request(description: str) -> BearerRefusal:
    return BearerRefusal("invalid_request", description, 400)


def _body_tokens() -> list[str] | BearerRefusal:
    """The ``access_token`` values of a form-encoded POST body (RFC 6750 §2.2): only a POST's,
    and only when the body is ``application/x-www-form-urlencoded``, as §2.2 requires."""
    if request.method != "POST":
        return []
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _invalid_request("the request body is too large")
    request.max_content_length = MAX_BODY
    try:
        if request.mimetype != FORM:
            # A token elsewhere in a body (JSON, multipart) is none of RFC 6750's ways.
            return []
        return request.form.getlist("access_token")
    except HTTPException:  # a body larger than announced, or one the parser refuses
        return _invalid_request("the request body cannot be read")


def _presented_token() -> str | _Missing | BearerRefusal:
    """The one access token of the request, in the header or a form body, or why not."""
    if "access_token" in request.args:
        return _invalid_request(
            "the access token must not be sent in the URI query; send it in the Authorization "
            "header or a form-encoded POST body (OIDC Core §5.3.1, RFC 6750 §2)"
        )
    body = _body_tokens()
    if isinstance(body, BearerRefusal):
        return body
    header = request.headers.get("Authorization")
    if header is not None and body:
        return _invalid_request(
            "the access token was sent both in the Authorization header and in the body; "
            "use one (RFC 6750 §2)"
        )
    if len(body) > 1:
        return _invalid_request("the body holds more than one access_token")
    if body:
        return body[0] or _invalid_request("access_token is empty")
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        # No token, or another scheme: RFC 6750 §3.1 answers both without an error code.
        return _Missing()
    return value.strip()


@blueprint.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    token = _presented_token()
    if isinstance(token, _Missing):
        response = jsonify({"error": "invalid_request"})
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="tongxing"'
        return response
    if isinstance(token, BearerRefusal):
        return _bearer_error(token)
    claims = current_services().tokens.userinfo(token)
    if isinstance(claims, BearerRefusal):
        return _bearer_error(claims)
    response = jsonify(claims)
    response.headers["Cache-Control"] = "no-store"
    return response
