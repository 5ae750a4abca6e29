"""Regions as federation entities: the gateway as relying party of a federated OpenID Provider
(OpenID Federation 1.0 §5.1.3, §10, issue 17).

A region registered with ``metadata_from: "federation"`` is configured by its entity identifier
alone (its ``issuer``). Its metadata is not read from its discovery document: the gateway
resolves it with its own trust anchor (:meth:`TrustAnchor.resolve
<gateway.federation.anchor.TrustAnchor.resolve>`, §8.3), i.e.

* the entity must be a recorded subordinate of kind ``region`` of this trust anchor;
* its entity configuration (§9) is fetched from ``<entity id>/.well-known/openid-federation``
  and verified with the keys of the subordinate statement (§10.2): a configuration signed with
  any other key is refused before anything it says is used;
* the platform's metadata policy, merged with the subordinate's own, is applied (§6.1.4.2);
* the resolved ``openid_provider`` metadata must name the entity identifier as its ``issuer``
  (§5.1.3: an OP's ``issuer`` MUST equal its Entity Identifier);
* its keys are taken from ``jwks`` (inline) or ``signed_jwks_uri`` (§5.2.1: a JWT signed with
  the entity's federation keys, fetched through the guarded outbound session), else from
  ``jwks_uri`` as for a discovery region (:class:`~gateway.broker.metadata.MetadataCache`).

The copy lives until the resolved chain's earliest ``exp`` (§10.4, the resolve response's
``exp``) and only while the subordinate record is unchanged (:meth:`FederatedRegions.version`):
the platform removing or re-keying the region takes effect at the next sign-in. A chain that
fails makes the region unusable with :class:`RegionNotTrusted`: the page of an unavailable
region, never a 5xx, the §8.9 reason in the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from gateway.broker.errors import RegionMetadataInvalid
from gateway.errors import FederationError
from gateway.federation.anchor import FetchError, TrustAnchor, fetch_signed
from gateway.federation.statements import (
    JWK_SET_MEDIA_TYPE,
    JWK_SET_TYP,
    StatementError,
    check_public_jwks,
    unverified_claims,
    verify_statement,
)
from gateway.registry import Region

log = logging.getLogger(__name__)

ENTITY_TYPE: Final = "openid_provider"

__all__ = [
    "ENTITY_TYPE",
    "FederatedRegions",
    "RegionNotTrusted",
    "ResolvedRegion",
]


class RegionNotTrusted(RegionMetadataInvalid):
    """The region's trust chain does not resolve (OpenID Federation 1.0 §10): it is unknown to
    the trust anchor, its entity configuration is signed with a key the subordinate statement
    does not list, it expired, its metadata breaks the policy or names another ``issuer``.

    The person sees the page of an unavailable region (same title and message); the answer is
    a 400, not a 5xx: nothing is down, the region is not (or no longer) trusted."""

    code = "region_not_trusted"
    status = 400


@dataclass(frozen=True)
class ResolvedRegion:
    """What the trust chain says about a region: its policy-applied ``openid_provider``
    metadata, its keys when given by value or signed (else ``None``: ``jwks_uri``), how long the
    chain holds (epoch seconds) and the subordinate record it was resolved under."""

    metadata: dict[str, Any]
    jwks: dict[str, Any] | None
    expires_at: float
    version: datetime


class FederatedRegions:
    """Resolves federated regions through ``anchor`` (no cache here: the
    :class:`~gateway.broker.metadata.MetadataCache` keeps the result like a discovery
    document, until :attr:`ResolvedRegion.expires_at`)."""

    def __init__(self, anchor: TrustAnchor) -> None:
        self.anchor = anchor

    def version(self, region: Region) -> datetime | None:
        """The subordinate record's ``updated_at`` (``None`` when it is gone or not a region):
        a cached resolution made under another version is stale."""
        found = self.anchor.store.federation_subordinate_by_entity(region.issuer)
        if found is None or found.kind != "region":
            return None
        return found.updated_at

    def resolve(self, region: Region) -> ResolvedRegion:
        """Resolve ``region`` now; :class:`RegionNotTrusted` saying why when it cannot be."""
        try:
            return self._resolve(region)
        except RegionNotTrusted as error:
            log.warning("federated region %s refused: %s", region.code, error.detail)
            raise

    def _resolve(self, region: Region) -> ResolvedRegion:
        entity_id = region.issuer
        subordinate = self.anchor.store.federation_subordinate_by_entity(entity_id)
        if subordinate is None or subordinate.kind != "region":
            raise RegionNotTrusted(
                region.code, "federation: not a recorded subordinate region of this trust anchor"
            )
        try:
            response = self.anchor.resolve(entity_id, self.anchor.entity_id, [ENTITY_TYPE])
        except FederationError as error:
            raise RegionNotTrusted(
                region.code, f"federation: {error.code}: {str(error)[:300]}"
            ) from None
        # Signed by this process's anchor a moment ago: its claims are read as they are.
        claims = unverified_claims(response)
        metadata = claims.get("metadata", {}).get(ENTITY_TYPE)
        if not isinstance(metadata, dict):
            raise RegionNotTrusted(region.code, "federation: no openid_provider metadata")
        if metadata.get("issuer") != entity_id:
            # §5.1.3: the OP's issuer MUST be its Entity Identifier.
            raise RegionNotTrusted(
                region.code,
                f"federation: metadata issuer {str(metadata.get('issuer'))[:200]!r} is not the "
                "entity identifier",
            )
        leaf = unverified_claims(claims["trust_chain"][0])  # verified by the anchor (§10.2)
        jwks = self._keys(region, metadata, leaf.get("jwks"))
        return ResolvedRegion(
            metadata=dict(metadata),
            jwks=jwks,
            expires_at=float(claims["exp"]),
            version=subordinate.updated_at,
        )

    def _keys(
        self, region: Region, metadata: dict[str, Any], federation_jwks: Any
    ) -> dict[str, Any] | None:
        """The protocol keys by value (``jwks``) or from ``signed_jwks_uri`` (§5.2.1), else
        ``None`` (the cache fetches ``jwks_uri``)."""
        if "jwks" in metadata:
            try:
                return check_public_jwks(metadata["jwks"])
            except ValueError as error:
                raise RegionNotTrusted(region.code, f"federation: jwks: {error}") from None
        uri = metadata.get("signed_jwks_uri")
        if uri is None:
            return None
        if not isinstance(uri, str) or not isinstance(federation_jwks, dict):
            raise RegionNotTrusted(region.code, "federation: unusable signed_jwks_uri")
        token = self._fetch(region, uri)
        try:
            claims = verify_statement(
                token, federation_jwks, typ=JWK_SET_TYP, now=self.anchor.clock()
            )
        except StatementError as error:
            raise RegionNotTrusted(region.code, f"federation: signed JWK Set: {error}") from None
        if claims.get("iss") != region.issuer:
            raise RegionNotTrusted(region.code, "federation: signed JWK Set iss is not the entity")
        try:
            return check_public_jwks({"keys": claims.get("keys")})
        except ValueError as error:
            raise RegionNotTrusted(region.code, f"federation: signed JWK Set: {error}") from None

    def _fetch(self, region: Region, url: str) -> str:
        """GET the Signed JWK Set through the anchor's guarded outbound session."""
        try:
            return fetch_signed(self.anchor.session, url, JWK_SET_MEDIA_TYPE)
        except FetchError as error:
            raise RegionNotTrusted(region.code, f"federation: signed_jwks_uri {error}") from None
