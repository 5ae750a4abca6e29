"""Automatic registration (OpenID Federation 1.0 §12.1): a portal signs in by its entity
identifier, with no registration kept.

A portal whose client identifier is its entity identifier (an https URL, §12.1: "the RP uses its
Entity Identifier as its Client ID") and whom the platform recorded as a subordinate of the
trust anchor (``PUT /admin/v1/federation/subordinates/portal/{key}``, without a portal
registration) is resolved on first use: its entity configuration fetched and verified through
the anchor's resolve (§8.3, §10.2: the chain RP entity configuration -> the gateway's
subordinate statement about it -> the gateway's own configuration), the metadata policy applied
(§6.1.4.2), and the resolved ``openid_relying_party`` metadata (§5.1.3) turned into an
in-memory :class:`~gateway.registry.Portal` for this gateway's provider:

* ``redirect_uris``, ``post_logout_redirect_uris``, ``backchannel_logout_uri``, checked as an
  admin-API registration is;
* ``token_endpoint_auth_method`` ``private_key_jwt`` only (OIDC Core §9), against the ``jwks``
  of the resolved metadata (by value: ``jwks_uri`` and ``signed_jwks_uri`` are not taken); no
  secret ever exists;
* ``scope`` (RFC 7591 §2) limited to what the gateway serves (and the policy let through);
* ``subject_type`` pairwise unless the metadata says ``public`` (the policy may forbid it), the
  sector being the host of the entity identifier (OIDC Core §8.1);
* the minimum level from the first of ``default_acr_values`` (OIDC Registration §2) the gateway
  knows, else ``loa1``: the platform forces it with a policy ``value``.

Nothing is stored as a registration (§12.1: the registration lasts as long as the chain). The
resolved portal is kept in a bounded copy until the chain's earliest expiry (§8.3.2: the
resolve response's ``exp``), and only while the subordinate record is unchanged: the platform
removing or re-keying it takes effect at the next lookup. Codes, grants and tokens are stored
under the entity identifier as ``client_id``, so it is bounded by :data:`MAX_ENTITY_ID_LENGTH`
(the store's client-id columns).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from pydantic import ValidationError

from gateway.errors import (
    AutomaticRegistrationRefused,
    FederationError,
    FederationInvalidMetadata,
    FederationNotFound,
)
from gateway.federation.anchor import TrustAnchor
from gateway.federation.statements import StatementError, check_public_jwks, unverified_claims
from gateway.registry import Portal, Registry

#: The longest entity identifier taken as a client identifier: the store's client-id columns
#: (``String(255)``); a longer one is ``invalid_client``.
MAX_ENTITY_ID_LENGTH: Final = 255
#: At most this many resolved portals are kept; the copy is emptied when full.
CACHE_ENTRIES: Final = 1000
#: What the gateway serves a portal registered automatically (its discovery ``scopes_supported``
#: less ``id_number``: a national identity number is never released to a portal nobody
#: registered).
AUTOMATIC_SCOPES: Final = ("openid", "profile", "phone", "offline_access")
_LEVELS: Final = ("loa1", "loa2", "loa3")
_GRANTS: Final = ("authorization_code", "refresh_token")
ENTITY_TYPE: Final = "openid_relying_party"


@dataclass(frozen=True)
class _Entry:
    portal: Portal
    expires_at: float  # the chain's earliest exp, seconds since the epoch
    updated_at: datetime  # the subordinate record's, when resolved


def is_entity_id(client_id: str | None) -> bool:
    """Whether ``client_id`` has the form of an entity identifier (§1.2: an https URL): the
    only client identifiers automatic registration looks at. Registered portals' client ids
    never have it (``CLIENT_ID_PATTERN``)."""
    return bool(client_id) and str(client_id).startswith("https://")


class AutomaticRegistration:
    """The portals of automatic registration (§12.1), resolved through ``anchor``."""

    def __init__(self, anchor: TrustAnchor, registry: Registry) -> None:
        self.anchor = anchor
        self.registry = registry
        self._lock = threading.Lock()
        self._cached: dict[str, _Entry] = {}

    def portal(self, client_id: str) -> Portal | None:
        """The portal ``client_id`` names by automatic registration, or ``None`` (what a client
        lookup needs: the token endpoint then answers ``invalid_client``)."""
        if not is_entity_id(client_id):
            return None
        try:
            return self.resolve(client_id)
        except FederationError:
            return None

    def resolve(self, client_id: str) -> Portal:
        """The portal ``client_id`` names, from the copy while its chain holds, else resolved
        now; :class:`~gateway.errors.FederationError` (a subclass naming the §8.9 reason, or
        :class:`AutomaticRegistrationRefused`) when it cannot sign in."""
        if not is_entity_id(client_id) or len(client_id) > MAX_ENTITY_ID_LENGTH:
            raise AutomaticRegistrationRefused(
                f"a client identifier for automatic registration is an https entity identifier "
                f"of at most {MAX_ENTITY_ID_LENGTH} characters"
            )
        subordinate = self.anchor.store.federation_subordinate_by_entity(client_id)
        if subordinate is None or subordinate.kind != "portal":
            raise FederationNotFound(f"{client_id[:200]} does not chain to this trust anchor")
        if self.registry.portal(subordinate.key) is not None:
            raise AutomaticRegistrationRefused(
                "this entity is a registered portal: it signs in with its registered client_id"
            )
        now = self.anchor.clock()
        with self._lock:
            entry = self._cached.get(client_id)
        if (
            entry is not None
            and entry.expires_at > now.timestamp()
            and entry.updated_at == subordinate.updated_at
        ):
            return entry.portal
        # §8.3: the anchor's own resolution; its answer is signed in this process, so its
        # claims are read as they are.
        response = self.anchor.resolve(client_id, self.anchor.entity_id, [ENTITY_TYPE])
        try:
            claims = unverified_claims(response)
        except StatementError as error:  # pragma: no cover - the anchor signed it just now
            raise AutomaticRegistrationRefused(str(error)) from None
        metadata = claims.get("metadata", {}).get(ENTITY_TYPE)
        if not isinstance(metadata, dict):
            raise FederationInvalidMetadata("the entity has no openid_relying_party metadata")
        portal = portal_from_metadata(client_id, metadata)
        with self._lock:
            if len(self._cached) >= CACHE_ENTRIES:
                self._cached.clear()
            self._cached[client_id] = _Entry(portal, float(claims["exp"]), subordinate.updated_at)
        return portal


def portal_from_metadata(
    entity_id: str,
    metadata: Mapping[str, Any],
    registration_type: Literal["automatic", "explicit"] = "automatic",
) -> Portal:
    """The in-memory registration of ``entity_id`` from its resolved, policy-applied
    ``openid_relying_party`` metadata (§5.1.2, §12.1, §12.2), or
    :class:`FederationInvalidMetadata` saying what the gateway cannot take."""
    types = metadata.get("client_registration_types")
    # §5.1.2: RECOMMENDED; when the RP names its registration types, the one it uses is among
    # them (the platform makes it required with an ``essential`` metadata policy, §6.1.3.1.7).
    if types is not None and (not isinstance(types, list) or registration_type not in types):
        raise FederationInvalidMetadata(
            f"client_registration_types must include {registration_type}"
        )
    method = metadata.get("token_endpoint_auth_method", "private_key_jwt")
    if method != "private_key_jwt":
        raise FederationInvalidMetadata(
            "automatic registration authenticates with private_key_jwt only (§12.1)"
        )
    if "jwks" not in metadata:
        raise FederationInvalidMetadata(
            "the openid_relying_party metadata needs jwks by value (jwks_uri is not taken)"
        )
    try:
        jwks = check_public_jwks(metadata["jwks"])
    except ValueError as error:
        raise FederationInvalidMetadata(f"jwks: {error}") from None
    scope = metadata.get("scope", "openid profile")
    if not isinstance(scope, str):
        raise FederationInvalidMetadata("scope must be a string of space-separated scopes")
    scopes = [name for name in dict.fromkeys(scope.split()) if name in AUTOMATIC_SCOPES]
    grants = metadata.get("grant_types", ["authorization_code"])
    if not isinstance(grants, list):
        raise FederationInvalidMetadata("grant_types must be an array")
    acr = metadata.get("default_acr_values")
    level = next((v for v in acr if v in _LEVELS), "loa1") if isinstance(acr, list) else "loa1"
    name = metadata.get("client_name")
    if not isinstance(name, str) or not name.strip():
        name = urlsplit(entity_id).hostname or entity_id
    names = {"zh": name[:100], "en": name[:100]}
    document: dict[str, Any] = {
        "client_id": "federated-portal",  # replaced by the entity identifier below
        "names": names,
        "owner": "federation",
        "application_type": "web",
        "redirect_uris": metadata.get("redirect_uris"),
        "post_logout_redirect_uris": metadata.get("post_logout_redirect_uris", []),
        "backchannel_logout_uri": metadata.get("backchannel_logout_uri"),
        "sector_identifier_uri": entity_id,  # OIDC Core §8.1: the sector is the entity's host
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": jwks,
        "grant_types": [grant for grant in _GRANTS if grant in grants] or ["authorization_code"],
        "scopes": scopes,
        "subject_type": "public" if metadata.get("subject_type") == "public" else "pairwise",
        "minimum_level": level,
    }
    alg = metadata.get("id_token_signed_response_alg")
    if alg is not None:
        document["id_token_signed_response_alg"] = alg
    try:
        portal = Portal.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()[:3]
        )
        raise FederationInvalidMetadata(
            f"openid_relying_party metadata: {problems}"[:400]
        ) from None
    return portal.model_copy(update={"client_id": entity_id})


# --- §12.1.1.1: the signed request object --------------------------------------------------------

#: RFC 9101 §4, §10.8: the media type an explicitly typed request object carries in ``typ``.
REQUEST_OBJECT_TYP: Final = "oauth-authz-req+jwt"
#: Signature algorithms taken on request objects (never ``none`` or an HMAC: RFC 8725 §3.1).
REQUEST_OBJECT_ALGORITHMS: Final = ("RS256", "PS256", "ES256", "ES384")
#: A request object lives at most this long (its ``jti`` is remembered for as long).
REQUEST_OBJECT_LIFETIME: Final = timedelta(minutes=10)
_SKEW: Final = timedelta(seconds=60)


class RequestObjectError(ValueError):
    """The request object does not verify; the message says why (never key material)."""


def verify_request_object(token: str, portal: Portal, issuer: str, now: datetime) -> dict[str, Any]:
    """The authorization request's parameters from the signed request object of an
    automatically registered portal (§12.1.1.1; RFC 9101 §5.1, §6), or
    :class:`RequestObjectError`.

    Signed (never ``none``) with a key of the portal's resolved metadata ``jwks``, chosen by
    ``kid``; ``typ`` absent or ``oauth-authz-req+jwt``; ``iss`` and ``client_id`` the entity
    identifier, no ``sub``, ``aud`` this OP's issuer (its entity identifier) and nothing else,
    ``exp`` in the future but
    within :data:`REQUEST_OBJECT_LIFETIME`, ``jti`` present (single use is the caller's,
    through the store), no ``request`` or ``request_uri`` inside (RFC 9101 §4).
    """
    try:
        compact = jws.extract_compact(token.encode("ascii"))
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError):
        raise RequestObjectError("the request object is not a compact JWS") from None
    header = compact.headers()
    alg = header.get("alg")
    if alg not in REQUEST_OBJECT_ALGORITHMS:
        raise RequestObjectError(f"algorithm {str(alg)[:16]!r} is not accepted")
    if header.get("typ", REQUEST_OBJECT_TYP) != REQUEST_OBJECT_TYP:
        raise RequestObjectError(f"typ must be {REQUEST_OBJECT_TYP}")
    if {"jwk", "jku", "x5u", "x5c"} & header.keys():
        raise RequestObjectError("the header carries its own key")
    keys = [key for key in (portal.jwks or {}).get("keys", []) if isinstance(key, dict)]
    kid = header.get("kid")
    candidates = [key for key in keys if key.get("kid") == kid] if kid is not None else keys
    if len(candidates) != 1:
        raise RequestObjectError("the kid names no key of the entity's resolved metadata")
    try:
        key = JWKRegistry.import_key(candidates[0])
        valid = jws.validate_compact(compact, key, registry=jws.JWSRegistry(algorithms=[alg]))
    except (JoseError, ValueError, TypeError):
        valid = False
    if not valid:
        raise RequestObjectError("bad signature")
    if not isinstance(claims, dict):
        raise RequestObjectError("the payload is not a JSON object")
    _check_request_claims(claims, portal.client_id, issuer, now)
    return claims


def _check_request_claims(
    claims: Mapping[str, Any], client_id: str, issuer: str, now: datetime
) -> None:
    if claims.get("iss") != client_id or claims.get("client_id") != client_id:
        raise RequestObjectError("iss and client_id must be the entity identifier")
    # §12.1.1.1: sub MUST NOT be present, so that the request object cannot serve as a
    # private_key_jwt client assertion (RFC 7523 §3: iss = sub = client_id).
    if "sub" in claims:
        raise RequestObjectError("a request object holds no sub")
    # §12.1.1.1: aud MUST be the OP's entity identifier and MUST NOT include any other values.
    aud = claims.get("aud")
    if aud != issuer and aud != [issuer]:
        raise RequestObjectError("aud must be this OpenID Provider's issuer and nothing else")
    exp, moment = claims.get("exp"), now.timestamp()
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise RequestObjectError("exp is required")
    if exp <= moment - _SKEW.total_seconds():
        raise RequestObjectError("expired")
    if exp > moment + (REQUEST_OBJECT_LIFETIME + _SKEW).total_seconds():
        raise RequestObjectError("expires too late")
    for name in ("iat", "nbf"):
        value = claims.get(name)
        if value is not None and (
            not isinstance(value, int | float) or value > moment + _SKEW.total_seconds()
        ):
            raise RequestObjectError(f"{name} is in the future or not a number")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 255:
        raise RequestObjectError("jti is required")
    if "request" in claims or "request_uri" in claims:
        raise RequestObjectError("a request object holds no request or request_uri")


def request_parameters(claims: Mapping[str, Any]) -> dict[str, str]:
    """The request object's claims as authorization request parameters (RFC 9101 §5: only
    these are used): strings as they are, ``claims`` (OIDC Core §5.5) and other JSON values
    serialised, the JWT's own claims (``iss``, ``aud``, ``exp``, ``iat``, ``nbf``, ``jti``)
    left out."""
    parameters: dict[str, str] = {}
    for name, value in claims.items():
        if name in ("iss", "aud", "exp", "iat", "nbf", "jti") or value is None:
            continue
        if isinstance(value, str):
            parameters[name] = value
        elif isinstance(value, bool):
            parameters[name] = "true" if value else "false"
        elif isinstance(value, int):
            parameters[name] = str(value)
        else:
            parameters[name] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return parameters


__all__ = [
    "AUTOMATIC_SCOPES",
    "MAX_ENTITY_ID_LENGTH",
    "REQUEST_OBJECT_TYP",
    "AutomaticRegistration",
    "RequestObjectError",
    "is_entity_id",
    "portal_from_metadata",
    "request_parameters",
    "verify_request_object",
]
