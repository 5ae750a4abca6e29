"""Explicit registration (OpenID Federation 1.0 §12.2): a portal posts its entity configuration
and is given a client identifier.

Behind ``TONGXING_FEDERATION_EXPLICIT_REGISTRATION`` (off by default: the endpoint answers
``not_found``). A portal the platform recorded as a subordinate of the trust anchor (kind
``portal``, ``PUT /admin/v1/federation/subordinates/portal/{key}``, as for automatic
registration, §12.1) POSTs to ``/federation/register`` (the OP's
``federation_registration_endpoint``, §5.1.2):

* its entity configuration, ``application/entity-statement+jwt``, or a trust chain starting
  with it, ``application/trust-chain+json`` (§12.2.1; from a trust chain only the entity
  configuration is taken, §12.2.2 step 2: the gateway is the trust anchor and builds the chain
  itself, and a chain ending at another anchor is ``invalid_trust_anchor``);
* processed as §12.2.2 says: the configuration verifies with a key of the anchor's subordinate
  statement about the entity and with its own ``jwks`` (§10.2,
  :meth:`~gateway.federation.anchor.TrustAnchor.resolve_posted`), its ``iss`` and ``sub`` are
  the entity, its ``authority_hints`` name the anchor, its ``aud`` is this OP's entity
  identifier and nothing else (§12.2.1), the metadata policy is applied (§6.1.4.2) and the
  resolved ``openid_relying_party`` metadata must be acceptable to this OP
  (:func:`~gateway.federation.registration.portal_from_metadata`: ``private_key_jwt`` with
  ``jwks`` by value, redirect URIs as an admin-API registration's);
* a registration is kept in the store (revision 0015): a new ``client_id``
  (:data:`CLIENT_ID_PREFIX` and 128 random bits, a form no admin-API client id has), replacing
  the entity's previous registration (§12.2.2 step 4), usable until the chain's earliest expiry
  (§12.2.6, §12.3) and only while the subordinate record is unchanged since (the platform
  re-keying or removing it invalidates the registration: the portal registers again);
* the answer is an ``explicit-registration-response+jwt`` (§12.2.3) signed with the federation
  key: ``iss`` the OP, ``sub`` and ``aud`` the portal, ``trust_anchor`` and
  ``authority_hints`` the anchor (the portal's immediate superior), ``exp`` the registration's,
  ``jwks`` the posted configuration's, and the registered ``openid_relying_party`` metadata
  with its ``client_id``.

Errors are JSON ``error`` and ``error_description`` (§12.2.4, §8.9; RFC 7591 §3.2.2 for
``invalid_client_metadata`` and ``invalid_redirect_uri``), never a 5xx for what was posted. The
registered portal then signs in like any portal authenticating with ``private_key_jwt`` (OIDC
Core §9), against the ``jwks`` of its resolved metadata; :attr:`gateway.registry.Registry.
explicit` finds it by client id, reading the store, so it works in every process.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError

from gateway.errors import (
    ExplicitRegistrationInvalidClientMetadata,
    ExplicitRegistrationInvalidRedirectUri,
    FederationError,
    FederationInvalidMetadata,
    FederationInvalidTrustChain,
    FederationNotFound,
)
from gateway.federation.anchor import TrustAnchor
from gateway.federation.registration import ENTITY_TYPE, portal_from_metadata
from gateway.federation.statements import (
    StatementError,
    unverified_claims,
)
from gateway.registry import Portal, Registry
from gateway.store.contract.federation_registrations import (
    FederationRegistration,
    FederationRegistrationStore,
)

#: §5.1.2 ``federation_registration_endpoint``, below the issuer.
REGISTRATION_PATH: Final = "/federation/register"
#: §12.2.1: a trust chain as the request body (§4.4, a JSON array of statements).
TRUST_CHAIN_MEDIA_TYPE: Final = "application/trust-chain+json"
#: §12.2.3: the response's ``typ`` and content type.
RESPONSE_TYP: Final = "explicit-registration-response+jwt"
RESPONSE_MEDIA_TYPE: Final = "application/explicit-registration-response+jwt"
#: What every assigned client id starts with: never an admin-API client id
#: (``CLIENT_ID_PATTERN`` has no colon) nor an entity identifier (automatic registration).
CLIENT_ID_PREFIX: Final = "fedreg:"
_PLACEHOLDER_CLIENT_ID: Final = "federated-portal"


class ExplicitRegistration:
    """Explicit registrations (§12.2) under ``anchor``, kept in ``store``."""

    def __init__(
        self, anchor: TrustAnchor, registry: Registry, store: FederationRegistrationStore
    ) -> None:
        self.anchor = anchor
        self.registry = registry
        self.store = store

    # --- §12.2.2: processing a request -------------------------------------------------------

    def register(self, configuration: str) -> str:
        """Register the portal whose entity configuration ``configuration`` is (§12.2.2) and
        return the signed registration response (§12.2.3); a
        :class:`~gateway.errors.FederationError` naming the §12.2.4 error otherwise."""
        try:
            entity_id = unverified_claims(configuration).get("iss")
        except StatementError as error:
            raise FederationError(f"entity configuration: {error}") from None
        if not isinstance(entity_id, str) or not entity_id:
            raise FederationError("the entity configuration has no iss")
        subordinate = self.anchor.store.federation_subordinate_by_entity(entity_id)
        if subordinate is None or subordinate.kind != "portal":
            raise FederationInvalidTrustChain(
                f"{entity_id[:200]} is not a portal subordinate of this trust anchor",
                message_en="The entity is not a portal subordinate of this trust anchor.",
            )
        if self.registry.portal(subordinate.key) is not None:
            raise FederationError(
                "this entity is a registered portal: it signs in with its registered client_id",
                message_en="A registered portal signs in with its registered client_id.",
            )
        try:
            leaf, chain, _ = self.anchor.resolve_posted(configuration, [ENTITY_TYPE])
        except FederationNotFound:  # removed meanwhile
            raise FederationInvalidTrustChain("the entity is not a subordinate") from None
        aud = leaf.get("aud")
        if aud != self.anchor.entity_id and aud != [self.anchor.entity_id]:
            # §12.2.1, §12.2.2 step 1: the OP's entity identifier and no other value.
            raise FederationError(
                "aud must be this OP's entity identifier only",
                message_en="The aud claim must be this OpenID Provider's entity identifier only.",
            )
        metadata = chain["metadata"].get(ENTITY_TYPE)
        if not isinstance(metadata, dict):
            raise FederationInvalidMetadata("the entity has no openid_relying_party metadata")
        portal = acceptable_portal(entity_id, metadata)
        now = self.anchor.clock()
        expires_at = datetime.fromtimestamp(int(chain["exp"]), UTC)
        client_id = CLIENT_ID_PREFIX + secrets.token_hex(16)
        self.store.put_federation_registration(
            FederationRegistration(
                client_id=client_id,
                entity_id=entity_id,
                portal=portal.model_dump(mode="json", exclude={"client_id"}),
                created_at=now,
                expires_at=expires_at,
            )
        )
        registered = portal.model_copy(update={"client_id": client_id})
        claims: dict[str, Any] = {
            "iss": self.anchor.entity_id,
            "sub": entity_id,
            "aud": entity_id,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "trust_anchor": self.anchor.entity_id,
            # §12.2.3: the portal's immediate superior in the chain: the anchor itself.
            "authority_hints": [self.anchor.entity_id],
            "metadata": {ENTITY_TYPE: registered_metadata(metadata, registered)},
        }
        if isinstance(leaf.get("jwks"), dict):
            claims["jwks"] = leaf["jwks"]  # §12.2.3: a verbatim copy of the request's
        return self.anchor.keys.sign(claims, typ=RESPONSE_TYP)

    # --- the registry's lookup ---------------------------------------------------------------

    def portal(self, client_id: str) -> Portal | None:
        """The explicitly registered portal ``client_id`` names, or ``None``: unknown, expired
        (§12.2.6), or its subordinate record removed, no longer a portal, or changed since it
        registered (§12.3: the OP may invalidate a registration before its expiry)."""
        if not client_id.startswith(CLIENT_ID_PREFIX) or len(client_id) > 255:
            return None
        now = self.anchor.clock()
        found = self.store.federation_registration(client_id, now)
        if found is None:
            return None
        subordinate = self.anchor.store.federation_subordinate_by_entity(found.entity_id)
        if (
            subordinate is None
            or subordinate.kind != "portal"
            or subordinate.updated_at > found.created_at
        ):
            return None
        try:
            portal = Portal.model_validate({**found.portal, "client_id": _PLACEHOLDER_CLIENT_ID})
        except ValidationError:
            return None  # kept by an older gateway whose portals had other rules
        return portal.model_copy(update={"client_id": client_id})


def acceptable_portal(entity_id: str, metadata: dict[str, Any]) -> Portal:
    """The portal this OP registers from the resolved ``openid_relying_party`` metadata, or
    ``invalid_client_metadata`` / ``invalid_redirect_uri`` (§12.2.2 step 6, RFC 7591 §3.2.2).

    §5.1.2: ``client_registration_types``, when given, names ``explicit``; the rest is what
    automatic registration takes (:func:`portal_from_metadata`)."""
    try:
        return portal_from_metadata(entity_id, metadata, "explicit")
    except FederationInvalidMetadata as error:
        text = (error.detail or error.message_en)[:400]
        if "redirect_uri" in text:
            raise ExplicitRegistrationInvalidRedirectUri(text, message_en=text) from None
        raise ExplicitRegistrationInvalidClientMetadata(text, message_en=text) from None


def registered_metadata(resolved: dict[str, Any], portal: Portal) -> dict[str, Any]:
    """§12.2.3: the registration the OP created, as ``openid_relying_party`` metadata: the
    resolved metadata with what the OP registered (and may have changed) over it, the assigned
    ``client_id`` and the parameters with default values spelled out."""
    registered: dict[str, Any] = {
        **resolved,
        "client_id": portal.client_id,
        "client_registration_types": ["explicit"],
        "redirect_uris": portal.redirect_uris,
        "post_logout_redirect_uris": portal.post_logout_redirect_uris,
        "grant_types": list(portal.grant_types),
        "response_types": ["code"],
        "scope": " ".join(portal.scopes),
        "token_endpoint_auth_method": portal.token_endpoint_auth_method.value,
        "jwks": portal.jwks,
        "subject_type": portal.subject_type,
        "id_token_signed_response_alg": portal.id_token_signed_response_alg,
        "default_acr_values": [portal.minimum_level],
    }
    if portal.backchannel_logout_uri is None:
        registered.pop("backchannel_logout_uri", None)
    else:
        registered["backchannel_logout_uri"] = portal.backchannel_logout_uri
    for ignored in ("jwks_uri", "signed_jwks_uri"):  # not taken (jwks by value only)
        registered.pop(ignored, None)
    return registered


__all__ = [
    "CLIENT_ID_PREFIX",
    "REGISTRATION_PATH",
    "RESPONSE_MEDIA_TYPE",
    "RESPONSE_TYP",
    "TRUST_CHAIN_MEDIA_TYPE",
    "ExplicitRegistration",
    "acceptable_portal",
    "registered_metadata",
]
