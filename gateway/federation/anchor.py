"""The trust anchor: what the gateway says about itself and its subordinates (OpenID Federation
1.0 §3, §8.1-§8.3, §9).

* :meth:`TrustAnchor.entity_configuration`: the gateway's own statement (§9), ``iss`` = ``sub``
  = its issuer URL, its federation keys, ``federation_entity`` metadata with the endpoints, and
  ``openid_provider`` metadata that is the discovery document (OIDC Discovery §3); no
  ``authority_hints``: it is the trust anchor (§3.1.1).
* :meth:`TrustAnchor.subordinate_statement` (fetch, §8.1): about one region or portal, its
  federation keys and the metadata policy for it (the platform's merged with its own, §6.1.4.1).
* :meth:`TrustAnchor.subordinate_ids` (list, §8.2), by entity type.
* :meth:`TrustAnchor.resolve` (§8.3): fetch the subordinate's entity configuration from its
  well-known URL through the outbound session (THREAT_MODEL row 1), verify it with the keys the
  subordinate statement lists (§10.2), apply the metadata policy (§6.1.4.2) and sign the answer.

Errors are the §8.9 codes (:mod:`gateway.errors`, ``Federation*``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import requests

from gateway.errors import (
    FederationError,
    FederationInvalidMetadata,
    FederationInvalidTrustAnchor,
    FederationInvalidTrustChain,
    FederationNotFound,
    FieldError,
    InvalidDocument,
)
from gateway.federation.policy import (
    Policy,
    PolicyError,
    PolicyViolationError,
    apply_policy,
    check_policy,
    merge_policies,
)
from gateway.federation.statements import (
    ENTITY_STATEMENT_MEDIA_TYPE,
    ENTITY_STATEMENT_TYP,
    RESOLVE_RESPONSE_TYP,
    WELL_KNOWN_PATH,
    StatementError,
    check_public_jwks,
    unverified_claims,
    verify_statement,
)
from gateway.federation.trust_marks import TrustMarkIssuer
from gateway.keys import KEY_FILE_CHECK_INTERVAL, KeyRing, load_or_create
from gateway.outbound import OutboundPolicy, OutboundRefusedError
from gateway.settings import Settings
from gateway.store.contract.federation import (
    EntityIdTakenError,
    FederationStore,
    FederationSubordinate,
    SubordinateKind,
)

#: What a subordinate is, as the list endpoint's ``entity_type`` filter sees it (§8.2).
ENTITY_TYPES: Final[dict[SubordinateKind, str]] = {
    "region": "openid_provider",
    "portal": "openid_relying_party",
}
MAX_STATEMENT_BYTES: Final = 64 * 1024
FETCH_TIMEOUT: Final = (1.5, 3.0)


@dataclass
class TrustAnchor:
    """The gateway as trust anchor, over its federation key ring and the subordinates' store."""

    settings: Settings
    store: FederationStore
    keys: KeyRing
    session: requests.Session
    clock: Callable[[], datetime]

    @classmethod
    def build(
        cls, settings: Settings, store: FederationStore, clock: Callable[[], datetime]
    ) -> TrustAnchor:
        """The anchor over the federation key ring in its own file (never the token ring's),
        followed like the token ring, generated when missing only with ``create_keys``."""
        keys = load_or_create(
            settings.federation_keys_path,
            create=settings.create_keys,
            now=clock(),
            watch_every=KEY_FILE_CHECK_INTERVAL,
        )
        return cls(settings, store, keys, OutboundPolicy.from_settings(settings).session(), clock)

    @property
    def entity_id(self) -> str:
        """The gateway's entity identifier: its issuer URL (§1.2, "Entity Identifier")."""
        return self.settings.issuer_url

    def endpoint(self, name: str) -> str:
        return f"{self.entity_id}/federation/{name}"

    def _sign(self, claims: dict[str, Any], typ: str = ENTITY_STATEMENT_TYP) -> str:
        return self.keys.sign(claims, typ=typ)

    def _times(self) -> tuple[int, int]:
        now = int(self.clock().timestamp())
        return now, now + int(self.settings.federation_statement_lifetime.total_seconds())

    # --- §9: the entity configuration --------------------------------------------------------

    def entity_configuration(self) -> str:
        """The gateway's entity configuration (§3, §9), signed by its active federation key."""
        iat, exp = self._times()
        claims = {
            "iss": self.entity_id,
            "sub": self.entity_id,
            "iat": iat,
            "exp": exp,
            "jwks": self.keys.jwks(self.clock()),
            "metadata": {
                "federation_entity": {
                    "federation_fetch_endpoint": self.endpoint("fetch"),
                    "federation_list_endpoint": self.endpoint("list"),
                    "federation_resolve_endpoint": self.endpoint("resolve"),
                    "organization_name": self.settings.federation_organization_name,
                },
                "openid_provider": {
                    **_provider_metadata(self.entity_id, self.settings),
                    # §5.1.2 (REQUIRED for a federation OP): automatic (§12.1) when the
                    # platform enables it (gateway.federation.registration); explicit (§12.2)
                    # is not offered: portals otherwise register through the admin API.
                    "client_registration_types_supported": (
                        ["automatic"] if self.settings.federation_automatic_registration else []
                    ),
                },
            },
        }
        self.trust_marks.publish(claims)  # T18: trust_mark_issuers and the endpoints (§7, §8.4)
        return self._sign(claims)

    @property
    def trust_marks(self) -> TrustMarkIssuer:
        """The anchor as issuer of the platform's trust marks (§7, :mod:`.trust_marks`)."""
        return TrustMarkIssuer(self)

    # --- §8.1, §8.2: fetch and list ----------------------------------------------------------

    def subordinate(self, entity_id: str) -> FederationSubordinate:
        found = self.store.federation_subordinate_by_entity(entity_id)
        if found is None:
            raise FederationNotFound(f"{entity_id[:200]} is not a subordinate")
        return found

    def policy_for(self, subordinate: FederationSubordinate) -> Policy:
        """The platform's policy with the subordinate's own merged under it (§6.1.4.1)."""
        platform = check_policy(
            self.settings.federation_metadata_policy, self.settings.federation_metadata_policy_crit
        )
        return merge_policies(platform, check_policy(subordinate.metadata_policy))

    def subordinate_statement(self, entity_id: str) -> str:
        """The subordinate statement about ``entity_id`` (§3, §8.1.2)."""
        subordinate = self.subordinate(entity_id)
        iat, exp = self._times()
        claims: dict[str, Any] = {
            "iss": self.entity_id,
            "sub": subordinate.entity_id,
            "iat": iat,
            "exp": exp,
            "jwks": subordinate.jwks,
            "source_endpoint": self.endpoint("fetch"),
        }
        try:
            policy = self.policy_for(subordinate)
        except PolicyError as error:  # refused when stored; the platform's may have changed
            raise FederationInvalidMetadata(str(error)) from None
        if policy:
            claims["metadata_policy"] = policy
        return self._sign(claims)

    def subordinate_ids(self, entity_type: str | None = None) -> list[str]:
        """The entity identifiers of the subordinates (§8.2), of ``entity_type`` when given."""
        kinds = [
            kind for kind, kind_type in ENTITY_TYPES.items() if entity_type in (None, kind_type)
        ]
        if not kinds:
            return []
        if len(kinds) == len(ENTITY_TYPES):
            return [item.entity_id for item in self.store.federation_subordinates()]
        return [item.entity_id for item in self.store.federation_subordinates(kinds[0])]

    # --- the platform's registrations (admin API) -------------------------------------------

    def register(
        self, kind: SubordinateKind, key: str, body: Mapping[str, Any]
    ) -> FederationSubordinate:
        """Record (create or replace) the subordinate of region or portal ``key`` from an admin
        API body: ``entity_id`` (an https URL without query or fragment, §1.2, through
        :class:`~gateway.outbound.OutboundPolicy`), ``jwks`` (public keys, §3) and optional
        ``metadata_policy`` (§6.1), which must merge with the platform's (§6.1.4.1).
        :class:`~gateway.errors.InvalidDocument` lists what is wrong."""
        errors: list[FieldError] = []
        entity_id = body.get("entity_id")
        try:
            if not isinstance(entity_id, str):
                raise ValueError("must be a string")
            OutboundPolicy.from_settings(self.settings).check_url(
                entity_id, what="entity_id", allow_query=False
            )
            if "#" in entity_id or entity_id.rstrip("/") == self.entity_id:
                raise ValueError("must be another entity's identifier, without a fragment")
        except ValueError as error:
            errors.append({"field": "entity_id", "message": str(error)})
        try:
            jwks = check_public_jwks(body.get("jwks"))
        except ValueError as error:
            errors.append({"field": "jwks", "message": str(error)})
        own_policy = body.get("metadata_policy") or {}
        try:
            platform = check_policy(
                self.settings.federation_metadata_policy,
                self.settings.federation_metadata_policy_crit,
            )
            merge_policies(platform, check_policy(own_policy))
        except PolicyError as error:
            errors.append({"field": "metadata_policy", "message": str(error)})
        if errors or not isinstance(entity_id, str):
            raise InvalidDocument(errors)
        now = self.clock()
        record = FederationSubordinate(
            kind=kind,
            key=key,
            entity_id=entity_id,
            jwks=jwks,
            metadata_policy=dict(own_policy),
            created_at=now,
            updated_at=now,
        )
        try:
            return self.store.put_federation_subordinate(record)
        except EntityIdTakenError:
            raise InvalidDocument(
                [{"field": "entity_id", "message": "another subordinate has this entity_id"}]
            ) from None

    # --- §8.3: resolve -----------------------------------------------------------------------

    def resolve(self, sub: str, trust_anchor: str, entity_types: Sequence[str] = ()) -> str:
        """The resolve response (§8.3.2) for ``sub`` under this trust anchor."""
        if trust_anchor != self.entity_id:
            raise FederationInvalidTrustAnchor(f"trust anchor {trust_anchor[:200]} is not this one")
        subordinate = self.subordinate(sub)
        statement = self.subordinate_statement(sub)
        anchor_configuration = self.entity_configuration()
        now = self.clock()
        leaf_token = self._fetch_entity_configuration(subordinate.entity_id)
        leaf = self._verify_leaf(leaf_token, subordinate, now)
        try:
            policy = self.policy_for(subordinate)
        except PolicyError as error:
            raise FederationInvalidMetadata(str(error)) from None
        leaf_metadata = leaf.get("metadata")
        if not isinstance(leaf_metadata, dict):
            raise FederationInvalidMetadata("the entity configuration has no metadata")
        resolved: dict[str, Any] = {}
        for entity_type, values in leaf_metadata.items():
            if entity_types and entity_type not in entity_types:
                continue
            if not isinstance(values, dict):
                raise FederationInvalidMetadata(f"{entity_type[:64]} metadata is not an object")
            try:
                resolved[entity_type] = apply_policy(policy, entity_type, values)
            except PolicyViolationError as error:
                raise FederationInvalidMetadata(str(error), message_en=f"Policy: {error}") from None
        iat, exp = self._times()
        claims = {
            "iss": self.entity_id,
            "sub": subordinate.entity_id,
            "iat": iat,
            # §8.3.2: not beyond the chain's earliest expiry.
            "exp": min(exp, int(leaf["exp"])),
            "metadata": resolved,
            "trust_chain": [leaf_token, statement, anchor_configuration],
        }
        return self._sign(claims, typ=RESOLVE_RESPONSE_TYP)

    def _fetch_entity_configuration(self, entity_id: str) -> str:
        """GET ``entity_id`` + ``/.well-known/openid-federation`` (§9) through the guarded
        outbound session: no redirect, bounded time and size."""
        url = entity_id.rstrip("/") + WELL_KNOWN_PATH
        started = time.monotonic()
        try:
            response = self.session.get(
                url,
                headers={"Accept": ENTITY_STATEMENT_MEDIA_TYPE},
                timeout=FETCH_TIMEOUT,
                allow_redirects=False,
                stream=True,
            )
        except OutboundRefusedError as error:
            raise FederationInvalidTrustChain(f"entity configuration refused: {error}") from None
        except requests.RequestException as error:
            raise FederationInvalidTrustChain(
                f"entity configuration could not be fetched ({type(error).__name__})"
            ) from None
        with response:
            if response.status_code != 200:
                raise FederationInvalidTrustChain(
                    f"entity configuration answered HTTP {response.status_code}"
                )
            body = response.raw.read(MAX_STATEMENT_BYTES + 1, decode_content=True)
        if len(body) > MAX_STATEMENT_BYTES or time.monotonic() - started > sum(FETCH_TIMEOUT):
            raise FederationInvalidTrustChain("entity configuration too large or too slow")
        try:
            return str(body.decode("ascii").strip())
        except UnicodeDecodeError:
            raise FederationInvalidTrustChain("entity configuration is not a JWS") from None

    def _verify_leaf(
        self, token: str, subordinate: FederationSubordinate, now: datetime
    ) -> dict[str, Any]:
        """§10.2: the entity configuration is self-signed with a key of its own ``jwks`` that
        the subordinate statement lists too; ``iss`` = ``sub`` = the entity identifier; its
        ``authority_hints`` name this trust anchor."""
        try:
            own = unverified_claims(token).get("jwks")
            if not isinstance(own, dict):
                raise StatementError("the entity configuration has no jwks")
            claims = verify_statement(token, subordinate.jwks, typ=ENTITY_STATEMENT_TYP, now=now)
            verify_statement(token, own, typ=ENTITY_STATEMENT_TYP, now=now)
        except StatementError as error:
            raise FederationInvalidTrustChain(f"entity configuration: {error}") from None
        if claims.get("iss") != subordinate.entity_id or claims.get("sub") != subordinate.entity_id:
            raise FederationInvalidTrustChain(
                "entity configuration: iss and sub must be the entity"
            )
        hints = claims.get("authority_hints")
        if not isinstance(hints, list) or self.entity_id not in hints:
            raise FederationInvalidTrustChain("entity configuration: authority_hints lack us")
        return claims


def _provider_metadata(issuer: str, settings: Settings) -> dict[str, Any]:
    # Imported here: the discovery views import the services, which import this module.
    from gateway.provider.discovery import metadata

    return metadata(
        issuer,
        settings.proofing_providers,
        automatic_registration=settings.federation_automatic_registration,
    )


__all__ = ["ENTITY_TYPES", "FederationError", "TrustAnchor"]
