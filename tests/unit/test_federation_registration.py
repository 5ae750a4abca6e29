"""Automatic registration's pure parts (OpenID Federation 1.0 §12.1): the portal made from
resolved metadata, and the request object's checks (§12.1.1.1, RFC 9101 §4-§6)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from gateway.errors import FederationInvalidMetadata
from gateway.federation.registration import (
    RequestObjectError,
    portal_from_metadata,
    request_parameters,
    verify_request_object,
)

ENTITY = "https://portal.hangzhou.example.cn"
ISSUER = "https://tongxing.example.cn"
KEY = ECKey.generate_key("P-256")


def public_jwks(key: ECKey = KEY) -> dict[str, Any]:
    return {"keys": [{**key.as_dict(private=False), "kid": key.thumbprint()}]}


def metadata(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "client_name": "杭州市民卡",
        "redirect_uris": ["https://portal.hangzhou.example.cn/cb"],
        "token_endpoint_auth_method": "private_key_jwt",
        "client_registration_types": ["automatic"],
        "jwks": public_jwks(),
        "scope": "openid profile id_number payments",
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def test_the_portal_is_the_resolved_metadata_with_the_entity_id_as_client_id() -> None:
    portal = portal_from_metadata(ENTITY, metadata(default_acr_values=["loa2"]))
    assert portal.client_id == ENTITY
    assert portal.token_endpoint_auth_method.value == "private_key_jwt"
    assert portal.client_secret_hash is None
    assert portal.scopes == ["openid", "profile"]  # id_number and unknown scopes left out
    assert portal.subject_type == "pairwise"
    assert portal.sector_identifier == "portal.hangzhou.example.cn"
    assert portal.minimum_level == "loa2"
    assert portal.may_receive_id_number is False


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"client_registration_types": ["explicit"]}, "client_registration_types"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "private_key_jwt"),
        ({"jwks": None, "jwks_uri": "https://x.example/jwks"}, "jwks by value"),
        ({"jwks": {"keys": [KEY.as_dict(private=True)]}}, "jwks"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "redirect_uris"),
        ({"scope": ["openid"]}, "scope"),
    ],
)
def test_metadata_the_gateway_cannot_take_is_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(FederationInvalidMetadata, match=reason):
        portal_from_metadata(ENTITY, metadata(**changes))


def test_registration_types_are_recommended_and_name_the_type_used_when_given() -> None:
    """§5.1.2: ``client_registration_types`` is RECOMMENDED: without it the RP is taken; with
    it, the registration type in use must be among them."""
    assert portal_from_metadata(ENTITY, metadata(client_registration_types=None)).client_id
    explicit = metadata(client_registration_types=["explicit"])
    assert portal_from_metadata(ENTITY, explicit, "explicit").client_id == ENTITY
    with pytest.raises(FederationInvalidMetadata, match="include explicit"):
        portal_from_metadata(ENTITY, metadata(), "explicit")


def request_object(key: ECKey = KEY, header: dict[str, Any] | None = None, **claims: Any) -> str:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ENTITY,
        "client_id": ENTITY,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 60,
        "jti": "one",
        "response_type": "code",
        "max_age": 600,
        "claims": {"userinfo": {"name": None}},
    }
    values.update(claims)
    values = {k: v for k, v in values.items() if v is not None}
    typed = {"alg": "ES256", "kid": key.thumbprint(), "typ": "oauth-authz-req+jwt"}
    return jwt.encode(header or typed, values, key)


def test_a_good_request_object_gives_its_parameters() -> None:
    portal = portal_from_metadata(ENTITY, metadata())
    claims = verify_request_object(request_object(), portal, ISSUER, datetime.now(UTC))
    assert verify_request_object(request_object(aud=[ISSUER]), portal, ISSUER, datetime.now(UTC))
    parameters = request_parameters(claims)
    assert parameters["response_type"] == "code"
    assert parameters["max_age"] == "600"
    assert parameters["claims"] == '{"userinfo":{"name":null}}'
    assert "jti" not in parameters
    assert "aud" not in parameters


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (
            lambda: request_object(
                ECKey.generate_key("P-256"),
                {"alg": "ES256", "kid": KEY.thumbprint(), "typ": "oauth-authz-req+jwt"},
            ),
            "bad signature",
        ),
        (lambda: request_object(aud="https://other.example"), "aud"),
        # §12.1.1.1: aud names the OP and nothing else; no sub (no reuse as a client assertion).
        (lambda: request_object(aud=[ISSUER, "https://other.example"]), "nothing else"),
        (lambda: request_object(sub=ENTITY), "no sub"),
        (lambda: request_object(iss="https://other.example"), "iss"),
        (lambda: request_object(exp=int(time.time()) - 600), "expired"),
        (lambda: request_object(exp=int(time.time()) + 3600), "too late"),
        (lambda: request_object(jti=None), "jti"),
        (lambda: request_object(request="x.y.z"), "request"),
        (
            lambda: request_object(header={"alg": "ES256", "kid": KEY.thumbprint(), "typ": "JWT"}),
            "typ",
        ),
        (lambda: "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.", "algorithm"),
    ],
)
def test_a_bad_request_object_is_refused(token: Any, reason: str) -> None:
    portal = portal_from_metadata(ENTITY, metadata())
    with pytest.raises(RequestObjectError, match=reason):
        verify_request_object(token(), portal, ISSUER, datetime.now(UTC))
