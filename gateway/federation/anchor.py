"""The trust anchor: what the gateway says about itself and its subordinates (OpenID Federation
1.0 §3, §8.1-§8.3, §9).

* :meth:`TrustAnchor.entity_configuration`: the gateway's own statement (§9), ``iss`` = ``sub``
  = its issuer URL, its federation keys, ``federation_entity`` metadata with the endpoints, and
  ``openid_provider`` metadata that is the discovery document (OIDC Discovery §3); no
  ``authority_hints``: it is the trust anchor (§3.1.1).
* :meth:`TrustAnchor.subordinate_statement` (fetch, §8.1): about one region or portal, its
  federation keys and the metadata policy for it (the platform's merged with its own, §6.1.4.1).
* :meth:`TrustAnchor.subordinate_ids` (list, §8.2.1), by entity types (several: their union);
  an intermediate (I20) is a ``federation_entity``, listed alone with ``intermediate=true``.
* Intermediates (I20, §1.2, §6.2): a province's federation entity the platform records with the
  ``constraints`` the anchor's statement about it carries; :meth:`TrustAnchor.resolve` follows a
  leaf's ``authority_hints`` to one (:meth:`TrustAnchor._resolve_through_intermediate`).
* :meth:`TrustAnchor.resolve` (§8.3): fetch the subordinate's entity configuration from its
  well-known URL through the outbound session (THREAT_MODEL row 1), verify it with the keys the
  subordinate statement lists (§10.2), apply the metadata policy (§6.1.4.2), keep the trust
  marks it carries that verify and are active (§8.3, §7.3) and sign the answer (§8.3.2).
* :meth:`TrustAnchor.historical_keys` (§8.7): the federation keys no longer in use, signed
  ``jwk-set+jwt``; rotations keep the dropped keys' public halves in the key file
  (:mod:`gateway.keys.history`).

Every statement is signed by the active federation key, with ``kid`` and the ``typ`` its section
requires (§3: ``entity-statement+jwt``; §8.3.2 ``resolve-response+jwt``; §8.4.2
``trust-mark-status-response+jwt``; §8.7.2 ``jwk-set+jwt``; §7.1 ``trust-mark+jwt``).

Errors are the §8.9 codes (:mod:`gateway.errors`, ``Federation*``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

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
    ConstraintError,
    Policy,
    PolicyError,
    PolicyViolationError,
    allowed_metadata,
    apply_policy,
    check_chain_constraint,
    check_constraints,
    check_policy,
    merge_policies,
)
from gateway.federation.statements import (
    ENTITY_STATEMENT_MEDIA_TYPE,
    ENTITY_STATEMENT_TYP,
    JWK_SET_TYP,
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
    "intermediate": "federation_entity",
}
#: How many intermediates a chain may have below a recorded one (the leaf's authority hints are
#: followed up to this many, each one fetch, before a recorded intermediate must be reached).
MAX_UNRECORDED_INTERMEDIATES: Final = 2
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
        """The gateway's entity configuration (§3.1.1, §3.1.2, §9.2), signed by its active
        federation key: ``iss`` = ``sub``, ``iat``, ``exp``, ``jwks``, and ``metadata`` with
        ``federation_entity`` naming the fetch, list, resolve and historical keys endpoints
        (§5.1.1; the trust mark endpoints when trust mark types are configured) and
        ``openid_provider``; no ``authority_hints`` (a trust anchor, §3.1.2)."""
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
                    "federation_historical_keys_endpoint": self.endpoint("historical-keys"),
                    "organization_name": self.settings.federation_organization_name,
                },
                "openid_provider": {
                    # §5.1.3 (RECOMMENDED): the registration types the platform turned on,
                    # automatic (§12.1, gateway.federation.registration) and explicit (§12.2,
                    # gateway.federation.explicit, with federation_registration_endpoint);
                    # none: portals register through the admin API.
                    "client_registration_types_supported": [],
                    **_provider_metadata(self.entity_id, self.settings),
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
        """The subordinate statement about ``entity_id`` (§3.1.1, §3.1.3, §8.1.2): ``iss`` this
        anchor, ``sub``, ``iat``, ``exp``, the subordinate's ``jwks``, ``source_endpoint``, and
        ``metadata_policy`` (with the platform's ``metadata_policy_crit``) when there is one.
        §8.1.2: ``invalid_request`` when ``entity_id`` is the anchor itself, ``not_found``
        when it is no subordinate."""
        if entity_id == self.entity_id:
            raise FederationError(
                "sub is the trust anchor itself",
                message_zh="sub 参数是本信任锚自身，而不是下级实体。",
                message_en="The sub parameter names this trust anchor, not a subordinate.",
            )
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
            if self.settings.federation_metadata_policy_crit:  # §3.1.3, §6.1.3.2
                claims["metadata_policy_crit"] = list(self.settings.federation_metadata_policy_crit)
        if subordinate.kind == "intermediate":  # §3.1.3, §6.2: what it may vouch for
            claims["constraints"] = subordinate.constraints
        return self._sign(claims)

    def subordinate_ids(
        self, entity_types: Sequence[str] | str | None = None, intermediate: bool = False
    ) -> list[str]:
        """The entity identifiers of the subordinates (§8.2.2), of any of ``entity_types`` when
        given (§8.2.1: several ``entity_type`` parameters filter to their union; an
        intermediate is a ``federation_entity``), the intermediates only with
        ``intermediate``."""
        wanted = [entity_types] if isinstance(entity_types, str) else list(entity_types or [])
        kinds = [
            kind
            for kind, kind_type in ENTITY_TYPES.items()
            if (not wanted or kind_type in wanted) and (not intermediate or kind == "intermediate")
        ]
        return [
            item.entity_id for item in self.store.federation_subordinates() if item.kind in kinds
        ]

    # --- the platform's registrations (admin API) -------------------------------------------

    def register(
        self, kind: SubordinateKind, key: str, body: Mapping[str, Any]
    ) -> FederationSubordinate:
        """Record (create or replace) the subordinate of region, portal or intermediate ``key``
        from an admin API body: ``entity_id`` (an https URL without query or fragment, §1.2,
        through :class:`~gateway.outbound.OutboundPolicy`), ``jwks`` (public keys, §3) and
        optional ``metadata_policy`` (§6.1), which must merge with the platform's (§6.1.4.1);
        an intermediate's optional ``constraints`` (§6.2, :func:`check_constraints`).
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
        constraints: dict[str, Any] = {}
        if kind == "intermediate":  # I20: §6.2, the defaults for what the body leaves out
            try:
                constraints = check_constraints(body.get("constraints"))
            except ConstraintError as error:
                errors.append({"field": "constraints", "message": str(error)})
        elif "constraints" in body:
            errors.append({"field": "constraints", "message": "only an intermediate has them"})
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
            constraints=constraints,
        )
        try:
            return self.store.put_federation_subordinate(record)
        except EntityIdTakenError:
            raise InvalidDocument(
                [{"field": "entity_id", "message": "another subordinate has this entity_id"}]
            ) from None

    # --- §8.3: resolve -----------------------------------------------------------------------

    def resolve(
        self, sub: str, trust_anchor: str | Sequence[str], entity_types: Sequence[str] = ()
    ) -> str:
        """The resolve response (§8.3.2) for ``sub`` under this trust anchor: ``iss``, ``sub``,
        ``iat``, ``exp`` (the earliest of the chain's and the included trust marks'),
        ``metadata`` (of ``entity_types`` when given, §8.3.1), ``trust_chain`` (subject first,
        anchor last) and ``trust_marks``: those of the subject's entity configuration that this
        anchor issued and that verify and are active now (§8.3: "only verified Trust Marks",
        §7.3); no ``aud`` (requests are not authenticated, §8.8). ``trust_anchor`` may be given
        several times (§8.3.1): one of them must be this anchor (``invalid_trust_anchor``)."""
        anchors = [trust_anchor] if isinstance(trust_anchor, str) else list(trust_anchor)
        if self.entity_id not in anchors:
            shown = ", ".join(anchors)[:200]
            raise FederationInvalidTrustAnchor(f"trust anchor {shown} is not this one")
        if self.store.federation_subordinate_by_entity(sub) is None:
            chain = self._resolve_through_intermediate(sub)  # I20
        else:
            chain = self._resolve_direct(sub)
        leaf_metadata = chain.leaf.get("metadata")
        if not isinstance(leaf_metadata, dict):
            raise FederationInvalidMetadata("the entity configuration has no metadata")
        for constraints in chain.constraints:  # §6.2.3: before the policies are applied
            leaf_metadata = allowed_metadata(constraints, leaf_metadata)
        resolved: dict[str, Any] = {}
        for entity_type, values in leaf_metadata.items():
            if entity_types and entity_type not in entity_types:
                continue
            if not isinstance(values, dict):
                raise FederationInvalidMetadata(f"{entity_type[:64]} metadata is not an object")
            try:
                resolved[entity_type] = apply_policy(chain.policy, entity_type, values)
            except PolicyViolationError as error:
                raise FederationInvalidMetadata(str(error), message_en=f"Policy: {error}") from None
        iat, exp = self._times()
        marks = self.trust_marks.verified(chain.leaf.get("trust_marks"), sub)
        # §8.3.2: not beyond the chain's earliest expiry nor any included trust mark's.
        expiries = [exp, *chain.expiries]
        expiries.extend(int(expiry) for _, expiry in marks if expiry is not None)
        claims: dict[str, Any] = {
            "iss": self.entity_id,
            "sub": sub,
            "iat": iat,
            "exp": min(expiries),
            "metadata": resolved,
            "trust_chain": chain.tokens,
        }
        if marks:
            claims["trust_marks"] = [entry for entry, _ in marks]
        return self._sign(claims, typ=RESOLVE_RESPONSE_TYP)

    def _resolve_direct(self, sub: str) -> _Chain:
        """The chain of a direct subordinate: its entity configuration (§10.2), this anchor's
        statement about it, this anchor's configuration (§4)."""
        subordinate = self.subordinate(sub)
        statement = self.subordinate_statement(sub)
        anchor_configuration = self.entity_configuration()
        leaf_token = self._fetch_entity_configuration(subordinate.entity_id)
        leaf = self._verify_leaf(leaf_token, subordinate, self.clock())
        try:
            policy = self.policy_for(subordinate)
        except PolicyError as error:
            raise FederationInvalidMetadata(str(error)) from None
        return _Chain(
            leaf, [leaf_token, statement, anchor_configuration], policy, [], [int(leaf["exp"])]
        )

    def _resolve_through_intermediate(self, sub: str) -> _Chain:
        """The chain of ``sub`` through a recorded intermediate (I20; §4, §10.1, §10.2, §6.2).

        Up (§10.1): the subject's entity configuration is fetched and its ``authority_hints``
        followed (through the guarded outbound session, :func:`fetch_signed`) until one names an
        intermediate the platform recorded, at most :data:`MAX_UNRECORDED_INTERMEDIATES`
        unrecorded ones between; ``not_found`` when no intermediate is recorded at all,
        ``invalid_trust_chain`` when no hint leads to one. Down (§10.2): the recorded
        intermediate's configuration verifies with the keys of this anchor's statement about it
        and names this anchor; then each superior's fetch endpoint (§8.1) gives its statement
        about the entity below, verified with the superior's keys (``iss``, ``sub``), and the
        entity's configuration verifies with the keys that statement lists and names the
        superior. Each statement's ``constraints`` hold (§6.2.1, §6.2.2), the policies merge
        top-down (§6.1.4.1: this anchor's for the intermediate first). The trust chain is the
        subject's configuration, the statements from the subject's superior up, and this
        anchor's configuration (§4)."""
        recorded = {item.entity_id: item for item in self.store.federation_subordinates()}
        if not any(item.kind == "intermediate" for item in recorded.values()):
            raise FederationNotFound(f"{sub[:200]} is not a subordinate")
        now = self.clock()
        path: list[tuple[str, str]] = []  # (entity id, entity configuration), the subject first
        top: FederationSubordinate | None = None
        entity_id: str | None = sub
        while entity_id is not None and top is None:
            if len(path) > MAX_UNRECORDED_INTERMEDIATES:
                raise FederationInvalidTrustChain("too many intermediates below a recorded one")
            token = self._fetch_entity_configuration(entity_id)
            path.append((entity_id, token))
            try:
                hints = unverified_claims(token).get("authority_hints")
            except StatementError as error:
                raise FederationInvalidTrustChain(f"entity configuration: {error}") from None
            hints = (
                [hint for hint in hints if isinstance(hint, str)] if isinstance(hints, list) else []
            )
            top = next(
                (
                    recorded[hint]
                    for hint in hints
                    if hint in recorded and recorded[hint].kind == "intermediate"
                ),
                None,
            )
            seen = {self.entity_id, *recorded, *(item for item, _ in path)}
            entity_id = next((hint for hint in hints if hint not in seen), None)
        if top is None:
            raise FederationInvalidTrustChain(
                "no authority hint leads to an intermediate recorded by this trust anchor"
            )
        superior_id = top.entity_id
        superior = self._verify_leaf(self._fetch_entity_configuration(superior_id), top, now)
        statements = [self.subordinate_statement(superior_id)]  # from the top down
        constraints: list[Mapping[str, Any]] = [top.constraints]
        expiries: list[int] = []
        try:
            policy = self.policy_for(top)
        except PolicyError as error:
            raise FederationInvalidMetadata(str(error)) from None
        for entity_id, token in reversed(path):
            statement = self._fetch_statement(superior, entity_id)
            try:
                about = verify_statement(
                    statement, superior.get("jwks") or {}, typ=ENTITY_STATEMENT_TYP, now=now
                )
            except StatementError as error:
                raise FederationInvalidTrustChain(f"subordinate statement: {error}") from None
            if about.get("iss") != superior_id or about.get("sub") != entity_id:
                raise FederationInvalidTrustChain("subordinate statement: iss or sub is wrong")
            keys = about.get("jwks")
            if not isinstance(keys, dict):
                raise FederationInvalidTrustChain("subordinate statement: no jwks")
            superior = self._verify_configuration(token, entity_id, keys, superior_id, now)
            try:
                own = check_policy(
                    about.get("metadata_policy") or {}, about.get("metadata_policy_crit") or ()
                )
                policy = merge_policies(policy, own)
            except PolicyError as error:
                raise FederationInvalidMetadata(str(error)) from None
            statements.append(statement)
            given = about.get("constraints")
            constraints.append(given if isinstance(given, dict) else {})
            expiries.append(int(about["exp"]))
            superior_id = entity_id
        # §6.2: each statement's constraints, on the entities below its issuer.
        below = [entity_id for entity_id, _ in path] + [top.entity_id]
        count = len(statements)
        try:
            for index, given in enumerate(constraints):
                issued_above = count - index  # the statement's subject is below[issued_above - 1]
                check_chain_constraint(given, issued_above - 1, below[:issued_above])
        except ConstraintError as error:
            raise FederationInvalidTrustChain(str(error)) from None
        leaf = superior
        expiries.append(int(leaf["exp"]))
        tokens = [path[0][1], *reversed(statements), self.entity_configuration()]
        return _Chain(leaf, tokens, policy, constraints, expiries)

    def _fetch_statement(self, superior: Mapping[str, Any], sub: str) -> str:
        """The subordinate statement about ``sub`` from the fetch endpoint (§8.1.1) the
        superior's verified entity configuration names, through the guarded session."""
        metadata = superior.get("metadata")
        federation = metadata.get("federation_entity") if isinstance(metadata, dict) else None
        endpoint = (
            federation.get("federation_fetch_endpoint") if isinstance(federation, dict) else None
        )
        if not isinstance(endpoint, str) or not endpoint.startswith("https://"):
            raise FederationInvalidTrustChain("the superior has no https federation_fetch_endpoint")
        url = f"{endpoint}{'&' if '?' in endpoint else '?'}sub={quote(sub, safe='')}"
        try:
            return fetch_signed(self.session, url, ENTITY_STATEMENT_MEDIA_TYPE)
        except FetchError as error:
            raise FederationInvalidTrustChain(f"subordinate statement {error}") from None

    # --- §8.7: historical keys ---------------------------------------------------------------

    def historical_keys(self) -> str:
        """The federation historical keys response (§8.7.2): ``iss``, ``iat`` and ``keys``,
        the federation keys no longer in use (retired ones with ``exp`` the end of their
        retention, those rotations dropped, ``revoked`` when known), signed ``jwk-set+jwt``
        by the active federation key (``kid`` in the header)."""
        iat, _ = self._times()
        claims = {"iss": self.entity_id, "iat": iat, "keys": self.keys.historical_keys()}
        return self._sign(claims, typ=JWK_SET_TYP)

    def _fetch_entity_configuration(self, entity_id: str) -> str:
        """GET ``entity_id`` + ``/.well-known/openid-federation`` (§9) through the guarded
        outbound session (:func:`fetch_signed`)."""
        url = entity_id.rstrip("/") + WELL_KNOWN_PATH
        try:
            return fetch_signed(self.session, url, ENTITY_STATEMENT_MEDIA_TYPE)
        except FetchError as error:
            raise FederationInvalidTrustChain(f"entity configuration {error}") from None

    def _verify_leaf(
        self, token: str, subordinate: FederationSubordinate, now: datetime
    ) -> dict[str, Any]:
        """§10.2: the entity configuration is self-signed with a key of its own ``jwks`` that
        the subordinate statement lists too; ``iss`` = ``sub`` = the entity identifier; its
        ``authority_hints`` name this trust anchor."""
        return self._verify_configuration(
            token, subordinate.entity_id, subordinate.jwks, self.entity_id, now
        )

    @staticmethod
    def _verify_configuration(
        token: str, entity_id: str, jwks: Mapping[str, Any], superior: str, now: datetime
    ) -> dict[str, Any]:
        """§10.2: ``token`` is ``entity_id``'s configuration, self-signed with a key of its own
        ``jwks`` that ``jwks`` (its superior's statement's) lists too, ``iss`` = ``sub`` =
        ``entity_id``, with ``superior`` among its ``authority_hints``."""
        try:
            own = unverified_claims(token).get("jwks")
            if not isinstance(own, dict):
                raise StatementError("the entity configuration has no jwks")
            claims = verify_statement(token, jwks, typ=ENTITY_STATEMENT_TYP, now=now)
            verify_statement(token, own, typ=ENTITY_STATEMENT_TYP, now=now)
        except StatementError as error:
            raise FederationInvalidTrustChain(f"entity configuration: {error}") from None
        if claims.get("iss") != entity_id or claims.get("sub") != entity_id:
            raise FederationInvalidTrustChain(
                "entity configuration: iss and sub must be the entity"
            )
        hints = claims.get("authority_hints")
        if not isinstance(hints, list) or superior not in hints:
            raise FederationInvalidTrustChain(
                "entity configuration: authority_hints lack its superior"
            )
        return claims

    # --- §12.2.2: explicit registration (X19) ------------------------------------------------

    def resolve_posted(
        self, token: str, entity_types: Sequence[str] = ()
    ) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """Resolve the entity whose entity configuration ``token`` was posted to this OP
        (§12.2.2 step 3) rather than fetched: the entity must be a subordinate; the
        configuration verifies as :meth:`resolve`'s (§10.2, with the keys of this anchor's
        subordinate statement about it), and the metadata policy (§6.1.4.2) is applied to its
        ``metadata`` of ``entity_types`` (all when empty). Returns the verified claims of the
        configuration, the chain's claims as a resolve response would carry them (``sub``,
        ``exp`` the chain's earliest, ``metadata``) and the trust chain (§4); the §8.9 errors
        of :meth:`resolve` otherwise."""
        try:
            entity_id = unverified_claims(token).get("iss")
        except StatementError as error:
            raise FederationInvalidTrustChain(f"entity configuration: {error}") from None
        if not isinstance(entity_id, str):
            raise FederationInvalidTrustChain("entity configuration: iss is missing")
        subordinate = self.subordinate(entity_id)
        statement = self.subordinate_statement(entity_id)
        anchor_configuration = self.entity_configuration()
        leaf = self._verify_leaf(token, subordinate, self.clock())
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
        _, exp = self._times()
        chain = {
            "sub": subordinate.entity_id,
            "exp": min(exp, int(leaf["exp"])),
            "metadata": resolved,
        }
        return leaf, chain, [token, statement, anchor_configuration]


@dataclass(frozen=True)
class _Chain:
    """A verified trust chain (§4) before its resolution: the subject's verified
    configuration, the chain's statements (§4 order), the merged metadata policy (§6.1.4.1),
    the constraints of its statements (§6.2) and the expiries of those below the anchor."""

    leaf: dict[str, Any]
    tokens: list[str]
    policy: Policy
    constraints: list[Mapping[str, Any]]
    expiries: list[int]


class FetchError(ValueError):
    """A signed document could not be fetched; the message says why (``refused: ...``,
    ``answered HTTP 404``, ``too large or too slow``, ...)."""


def fetch_signed(session: requests.Session, url: str, media_type: str) -> str:
    """GET the compact JWS at ``url`` through ``session`` (the guarded outbound session,
    THREAT_MODEL row 1): no redirect, at most :data:`MAX_STATEMENT_BYTES` within
    :data:`FETCH_TIMEOUT`; :class:`FetchError` otherwise."""
    started = time.monotonic()
    try:
        response = session.get(
            url,
            headers={"Accept": media_type},
            timeout=FETCH_TIMEOUT,
            allow_redirects=False,
            stream=True,
        )
    except OutboundRefusedError as error:
        raise FetchError(f"refused: {error}") from None
    except requests.RequestException as error:
        raise FetchError(f"could not be fetched ({type(error).__name__})") from None
    with response:
        if response.status_code != 200:
            raise FetchError(f"answered HTTP {response.status_code}")
        body = response.raw.read(MAX_STATEMENT_BYTES + 1, decode_content=True)
    if len(body) > MAX_STATEMENT_BYTES or time.monotonic() - started > sum(FETCH_TIMEOUT):
        raise FetchError("too large or too slow")
    try:
        return str(body.decode("ascii").strip())
    except UnicodeDecodeError:
        raise FetchError("is not a JWS") from None


def _provider_metadata(issuer: str, settings: Settings) -> dict[str, Any]:
    # Imported here: the discovery views import the services, which import this module.
    from gateway.provider.discovery import metadata

    return metadata(
        issuer,
        settings.proofing_providers,
        automatic_registration=settings.federation_automatic_registration,
        explicit_registration=settings.federation_explicit_registration,
        require_pushed=settings.require_pushed_authorization_requests,
    )


__all__ = ["ENTITY_TYPES", "FederationError", "TrustAnchor"]
