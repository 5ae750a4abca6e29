"""Regions (upstream identity providers) and portals (clients): their models and the registry.

A new region is data, not code: everything the broker needs to reach a province's IdP is in a
:class:`Region`, and everything the provider needs to serve a portal is in a :class:`Portal`.
Both are validated here, before anything is stored, so the admin API can answer bad input with
field-level messages. The words they share with the operator (codes, client ids, levels, region
kinds, auth methods, owners, the redirect-URI rule) are :mod:`tongxing_api.vocabulary`'s.
Protocol-free: no Flask.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Generic, Literal, Protocol, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.errors import RegionSecretUnreadable
from gateway.identity import pairwise_subject
from gateway.sealing import RegionSecretSealer, SecretUnreadableError
from gateway.store.contract import RegistryKind, RevisionConflictError, Store

# The rest of the gateway knows these by this module (``as``: re-exported).
from tongxing_api.vocabulary import CLIENT_ID_PATTERN as CLIENT_ID_PATTERN
from tongxing_api.vocabulary import CODE_PATTERN as CODE_PATTERN
from tongxing_api.vocabulary import (
    NAMESPACE_PATTERN,
    RESOURCE_NAME_PATTERN,
    SECTOR_PATTERN,
    UID_PATTERN,
    ApplicationType,
    ConsentClaim,
    OwnerKind,
    SubjectType,
    check_redirect_uri,
)
from tongxing_api.vocabulary import PRINCIPAL_PATTERN as PRINCIPAL_PATTERN
from tongxing_api.vocabulary import AuthMethod as AuthMethod
from tongxing_api.vocabulary import Level as Level
from tongxing_api.vocabulary import MetadataSource as MetadataSource
from tongxing_api.vocabulary import Names as Names
from tongxing_api.vocabulary import RegionKind as RegionKind
from tongxing_api.vocabulary import check_absolute_url as check_absolute_url

if TYPE_CHECKING:  # settings.py imports this module
    from gateway.settings import Settings

log = logging.getLogger(__name__)

GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]

SEALED_SECRET_FIELD: Final = "client_secret_sealed"  # noqa: S105 - a field name
"""Where a region document keeps its client secret, sealed (:class:`RegionSecretSealer`)."""


def _default_grants() -> list[GrantType]:
    return ["authorization_code", "refresh_token"]


class ManagedBy(BaseModel):
    """Who owns a registration: the admin API principal that wrote it and, for the operator,
    the custom resource it stands for (THREAT_MODEL row 1).

    ``principal`` is always set by the gateway from the caller's credential, never taken from
    the request. Two owners are the same when principal, kind, namespace and name agree; ``uid``
    is recorded but not compared, so a resource deleted and recreated under the same name is the
    same tenant and takes its registration over.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    principal: Annotated[str, Field(pattern=PRINCIPAL_PATTERN)]
    kind: OwnerKind | None = None
    namespace: Annotated[str, Field(pattern=NAMESPACE_PATTERN)] | None = None
    name: Annotated[str, Field(pattern=RESOURCE_NAME_PATTERN)] | None = None
    uid: Annotated[str, Field(pattern=UID_PATTERN)] | None = None

    @property
    def resource(self) -> tuple[str | None, str | None, str | None]:
        return self.kind, self.namespace, self.name

    def same_owner(self, other: ManagedBy) -> bool:
        """Same principal and same resource (the uid aside)."""
        return (self.principal, self.resource) == (other.principal, other.resource)


class ClaimMapping(BaseModel):
    """Which upstream ID-token claims carry the person's attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identity_number: str = "id_number"
    name: str = "name"
    phone_number: str = "phone_number"


class Region(BaseModel):
    """An upstream OpenID Provider: a province's (or department's) identity realm."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Annotated[str, Field(pattern=CODE_PATTERN)]
    names: Names
    kind: RegionKind
    issuer: str
    client_id: Annotated[str, Field(min_length=1, max_length=255)]
    client_secret: SecretStr
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile"])
    claims: ClaimMapping = Field(default_factory=ClaimMapping)
    acr_mapping: dict[str, Level] = Field(default_factory=dict)
    enabled: bool = True
    managed_by: ManagedBy | None = None
    # Issue 17: where the region's metadata and keys come from: its discovery document (OIDC
    # Discovery §4), or its trust chain to this gateway (OpenID Federation 1.0 §10), ``issuer``
    # then being its entity identifier (§5.1.3; gateway.federation.upstream).
    metadata_from: MetadataSource = Field(
        default="discovery",
        description=(
            "Where the region's metadata and keys come from. `discovery` (the default): its "
            "`<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4). "
            "`federation`: its trust chain to this gateway (OpenID Federation 1.0 §10); "
            "`issuer` is then the region's entity identifier, which must be recorded as a "
            "subordinate of kind region (`PUT /federation/subordinates/region/{key}`); the "
            "discovery document is never read. A chain that does not resolve makes the region "
            "unusable (`region_not_trusted`) until it does."
        ),
    )

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        check_absolute_url(value, what="issuer", allow_query=False)
        return value.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("scopes must include openid")
        return list(dict.fromkeys(value))

    def document(self, sealer: RegionSecretSealer) -> dict[str, Any]:
        """The JSON document the store keeps: the client secret sealed by ``sealer`` under
        :data:`SEALED_SECRET_FIELD`, never in clear (THREAT_MODEL row 8)."""
        data = self.model_dump(mode="json", exclude={"client_secret"})
        data[SEALED_SECRET_FIELD] = sealer.seal(self.code, self.client_secret.get_secret_value())
        return data

    @classmethod
    def from_document(
        cls, code: str, document: Mapping[str, Any], sealer: RegionSecretSealer | None
    ) -> Region:
        """The region stored under ``code``: its secret opened (bound to ``code``, so a sealed
        secret copied to another region's row does not open), or read in clear from a row
        written before secrets were sealed (sealed at its next write, or by ``tongxing secrets
        reseal``). :class:`RegionSecretUnreadable` when the secret does not open."""
        data = dict(document)
        sealed = data.pop(SEALED_SECRET_FIELD, None)
        if sealed is not None:
            if sealer is None or not isinstance(sealed, str):
                raise RegionSecretUnreadable(f"region {code}: a sealed secret and no sealing key")
            try:
                data["client_secret"] = sealer.open(code, sealed)
            except SecretUnreadableError as error:
                raise RegionSecretUnreadable(
                    f"region {code}: its client secret does not open ({error}); was a sealing "
                    "key removed before `tongxing secrets reseal`?"
                ) from None
        return cls.model_validate(data)


class Portal(BaseModel):
    """A relying party: a provincial or departmental portal that delegates login."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: Annotated[str, Field(pattern=CLIENT_ID_PATTERN)]
    names: Names
    owner: Annotated[str, Field(pattern=CODE_PATTERN)]
    # OIDC Dynamic Client Registration §2; before the redirect URIs, whose rule it decides.
    application_type: ApplicationType = "web"
    redirect_uris: Annotated[list[str], Field(min_length=1, max_length=20)]
    post_logout_redirect_uris: list[str] = Field(default_factory=list)
    backchannel_logout_uri: str | None = None
    # Back-Channel Logout 1.0 §2.2; unset sends sid as true does, false sends no sid (see
    # gateway.sessions.Sessions.logout_token).
    backchannel_logout_session_required: bool | None = None
    # OIDC Core §8.1, Dynamic Client Registration §2: names the pairwise sector by its host.
    sector_identifier_uri: str | None = None
    token_endpoint_auth_method: AuthMethod = AuthMethod.CLIENT_SECRET_BASIC
    # SHA-256 of the client secret; the secret itself is shown once, when it is made.
    client_secret_hash: str | None = None
    jwks: dict[str, Any] | None = None
    grant_types: list[GrantType] = Field(default_factory=_default_grants)
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile"])
    subject_type: SubjectType = "public"
    # OIDC Dynamic Client Registration §2: the ID token's algorithm for this portal.
    id_token_signed_response_alg: Literal["RS256", "ES256"] = "RS256"  # noqa: S105 - an alg
    minimum_level: Level = "loa1"
    # What policies know of the portal (policies/schema.cedarschema).
    sector: Annotated[str, Field(pattern=SECTOR_PATTERN)] = "general"
    may_receive_id_number: bool = False
    # Claims released only after the person agreed, on a consent page (remembered, revocable).
    consent_claims: list[ConsentClaim] = Field(default_factory=list)
    allowed_home_regions: list[Annotated[str, Field(pattern=CODE_PATTERN)]] | None = None
    # Whom the portal serves: people, enterprises (people acting for one), or both (issue 16).
    subject_kinds: Literal["people", "enterprises", "both"] = "people"
    # RFC 9126 §6 (task P20): the portal's authorization requests are taken only when pushed.
    require_pushed_authorization_requests: bool = False
    enabled: bool = True
    managed_by: ManagedBy | None = None

    @model_validator(mode="before")
    @classmethod
    def _native_is_public_by_default(cls, data: Any) -> Any:
        """A native app without a method named authenticates with ``none`` (RFC 8252 §8.5)."""
        if isinstance(data, Mapping) and data.get("application_type") == "native":
            return {"token_endpoint_auth_method": AuthMethod.NONE.value, **data}
        return data

    @field_validator("redirect_uris", "post_logout_redirect_uris")
    @classmethod
    def _uris(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # A bad application_type is its own field error; the URIs are then checked as a web
        # portal's, the stricter rule.
        kind: ApplicationType = "native" if info.data.get("application_type") == "native" else "web"
        for uri in value:
            check_redirect_uri(uri, application_type=kind)
        return list(dict.fromkeys(value))

    @field_validator("backchannel_logout_uri")
    @classmethod
    def _backchannel(cls, value: str | None) -> str | None:
        if value is not None:
            check_redirect_uri(value, what="backchannel_logout_uri")
        return value

    @field_validator("sector_identifier_uri")
    @classmethod
    def _sector_identifier_uri(cls, value: str | None) -> str | None:
        if value is not None:
            check_absolute_url(value, what="sector_identifier_uri")
        return value

    @model_validator(mode="after")
    def _credentials_match_the_method(self) -> Self:
        method = self.token_endpoint_auth_method
        if method.uses_secret and not self.client_secret_hash:
            raise ValueError(f"{method} needs a client secret")
        if method is AuthMethod.PRIVATE_KEY_JWT and not (self.jwks and self.jwks.get("keys")):
            raise ValueError("private_key_jwt needs jwks with at least one public key")
        if method is AuthMethod.NONE and "client_credentials" in self.grant_types:
            raise ValueError("a public client cannot use client_credentials")
        if self.application_type == "native" and (
            method is not AuthMethod.NONE or self.client_secret_hash or self.jwks
        ):
            raise ValueError(
                "a native app is a public client: token_endpoint_auth_method none, no client "
                "secret and no keys (RFC 8252 §8.5: a secret in an app is no secret); PKCE "
                "then binds each code to the app that asked for it (§8.1)"
            )
        return self

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method is AuthMethod.NONE

    def granted_scope(self, requested: str | None) -> str:
        """The part of ``requested`` this portal is registered for, in the order asked, each
        scope once (RFC 6749 §3.3: the server may grant less than asked and then says what it
        granted; OIDC Core §5.4: claims follow the granted scopes only).

        ``offline_access`` counts as registered when the portal may use the ``refresh_token``
        grant: that registration is what lets it hold a refresh token.
        """
        registered = set(self.scopes)
        if "refresh_token" in self.grant_types:
            registered.add("offline_access")
        return " ".join(dict.fromkeys(s for s in (requested or "").split() if s in registered))

    def accepts_redirect_uri(self, redirect_uri: str) -> bool:
        """Whether ``redirect_uri``, sent to ``/authorize``, is one of this portal's.

        Exact string comparison (RFC 9700 §4.1.3, RFC 6749 §3.1.2.3): no normalisation, no
        patterns. One exception, for native apps only (RFC 8252 §7.3): a loopback redirect URI
        on ``127.0.0.1`` or ``[::1]`` matches whatever port it names, since the app listens on
        a port the system gives it at the time; host, path and query are still compared
        exactly. A web portal's loopback URI is compared exactly, port included. The token
        endpoint then asks for the URI exactly as it was sent here (RFC 6749 §4.1.3).
        """
        return self._registered(redirect_uri, self.redirect_uris)

    def accepts_post_logout_redirect_uri(self, uri: str) -> bool:
        """Whether ``uri``, sent to the logout endpoint, is one of this portal's
        ``post_logout_redirect_uris`` (RP-Initiated Logout 1.0 §3: registered, compared exactly),
        by the rule of :meth:`accepts_redirect_uri`: a native app's loopback URI matches whatever
        port it names (RFC 8252 §7.3: the app listens on the port it was given at the time);
        a web portal's is compared exactly, port included."""
        return self._registered(uri, self.post_logout_redirect_uris)

    def _registered(self, uri: str, registered: list[str]) -> bool:
        if uri in registered:
            return True
        if self.application_type != "native":
            return False
        presented = loopback_redirect(uri)
        return presented is not None and any(
            loopback_redirect(candidate) == presented for candidate in registered
        )

    @property
    def redirect_hosts(self) -> list[str]:
        """The hosts of the redirect URIs, each once, in registration order."""
        return list(dict.fromkeys(urlsplit(uri).hostname or "" for uri in self.redirect_uris))

    @property
    def sector_identifier(self) -> str:
        """The sector pairwise subjects are computed for (OIDC Core §8.1): the host of the
        ``sector_identifier_uri`` when the portal has one, else the one host of the redirect
        URIs. A pairwise portal on several hosts without a ``sector_identifier_uri`` is refused
        at registration (:func:`pairwise_sector_errors`); one stored before that rule gets a
        sector of its own (``client:<client_id>``), never the host of another portal listed
        first.
        """
        if self.sector_identifier_uri is not None:
            return urlsplit(self.sector_identifier_uri).hostname or f"client:{self.client_id}"
        hosts = self.redirect_hosts
        if len(hosts) == 1 and hosts[0]:
            return hosts[0]
        return f"client:{self.client_id}"

    def subject_for(self, subject: str, pairwise_secret: bytes) -> str:
        """The ``sub`` this portal sees: the national subject, or pairwise (OIDC Core §8)."""
        if self.subject_type == "pairwise":
            return pairwise_subject(subject, self.sector_identifier, pairwise_secret)
        return subject

    def check_secret(self, secret: str) -> bool:
        """Constant-time comparison of a presented secret with the stored hash."""
        if self.client_secret_hash is None:
            return False
        return hmac.compare_digest(hash_secret(secret), self.client_secret_hash)


# http, a literal loopback address, an optional port (digits only, so no userinfo or other host
# can follow it), then the path and query: RFC 8252 §7.3's form, as the app sends it.
_LOOPBACK_REDIRECT = re.compile(r"http://(127\.0\.0\.1|\[::1\])(?::([0-9]{1,5}))?([/?][^#\s]*)?")


def loopback_redirect(uri: str) -> tuple[str, str] | None:
    """The host and the rest (path and query) of a loopback redirect URI a native app may
    use with any port (RFC 8252 §7.3), or ``None`` when ``uri`` is not one: another host or
    spelling (``localhost``, ``127.1``), userinfo, a fragment, an invalid port."""
    found = _LOOPBACK_REDIRECT.fullmatch(uri)
    if found is None:
        return None
    host, port, rest = found.groups()
    if port is not None and not 0 < int(port) <= 65535:
        return None
    return host, rest or ""


def pairwise_sector_errors(portal: Portal) -> list[dict[str, str]]:
    """Why a pairwise portal cannot be registered as it is (OIDC Core §8.1), as field errors.

    Without a ``sector_identifier_uri`` the sector of a pairwise portal is the host of its
    redirect URIs, so they must share one host. A portal on several hosts names its sector with
    a ``sector_identifier_uri`` instead, whose document must list every redirect URI
    (:func:`sector_document_errors`, checked by the admin API after fetching it).
    """
    hosts = portal.redirect_hosts
    if portal.subject_type != "pairwise" or portal.sector_identifier_uri or len(hosts) <= 1:
        return []
    return [
        {
            "field": "redirect_uris",
            "message": (
                "a pairwise portal's redirect URIs must share one host, its sector "
                f"(OIDC Core §8.1); these are on {len(hosts)}: {', '.join(sorted(hosts))}; "
                "a portal on several hosts names its sector with a sector_identifier_uri"
            ),
        }
    ]


#: At most this many URIs are read from a sector document (the portal itself has at most 20).
SECTOR_DOCUMENT_ENTRIES = 1000


def sector_document_errors(portal: Portal, document: Any) -> list[dict[str, str]]:
    """Why the document at the portal's ``sector_identifier_uri`` does not vouch for it.

    OIDC Core §8.1 and Dynamic Client Registration §5: the document is a JSON array of redirect
    URIs, and every redirect URI the portal registers must be in it (compared exactly, as
    redirect URIs are: RFC 9700 §4.1.3). The message names the portal's own URIs that are
    missing, never anything else of the document (THREAT_MODEL row 1).
    """
    field = "sector_identifier_uri"
    if (
        not isinstance(document, list)
        or len(document) > SECTOR_DOCUMENT_ENTRIES
        or not all(isinstance(entry, str) for entry in document)
    ):
        return [
            {
                "field": field,
                "message": (
                    "the sector_identifier_uri must answer with a JSON array of redirect URIs "
                    f"(at most {SECTOR_DOCUMENT_ENTRIES}; OIDC Core §8.1)"
                ),
            }
        ]
    missing = [uri for uri in portal.redirect_uris if uri not in set(document)]
    if not missing:
        return []
    return [
        {
            "field": field,
            "message": (
                "the document at sector_identifier_uri must list every redirect URI of the "
                f"portal (OIDC Core §8.1); it does not list {', '.join(missing)}"
            ),
        }
    ]


def hash_secret(secret: str) -> str:
    """Client secrets are random 256-bit values, so one SHA-256 is enough to store them."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


#: How long a replica answers from its own copy of a registration. A write through this replica
#: takes effect here at once; a write through another replica (several behind one Service) is
#: seen here at most this late. Token, userinfo and authorization requests look their portal up
#: on every call, so without the copy each of them pays a database round trip and a validation.
CACHE_SECONDS = 5.0
#: The copy is for the registrations in use; past this many entries it starts again empty.
CACHE_ENTRIES = 10_000

Registered = TypeVar("Registered", Region, Portal)


@dataclass(frozen=True)
class Stored(Generic[Registered]):
    """A registration as the store holds it now, with the revision to write against."""

    value: Registered
    revision: int


@dataclass(frozen=True)
class Page(Generic[Registered]):
    """One page of a listing, by key (:class:`~gateway.store.contract.registry.RegistryPage`):
    the registrations, and the key to continue after (``None`` on the last page)."""

    items: list[Registered]
    next_after: str | None


#: The admin API's page sizes: the default, and the most one request may ask for.
PAGE_DEFAULT: Final = 100
PAGE_MAX: Final = 1000


# Compiled once: every token, userinfo and authorization request looks a registration up.
_KEY_PATTERNS: dict[RegistryKind, re.Pattern[str]] = {
    RegistryKind.REGION: re.compile(CODE_PATTERN),
    RegistryKind.PORTAL: re.compile(CLIENT_ID_PATTERN),
}


@dataclass
class ResealReport:
    """What :meth:`Registry.reseal_regions` did, by region code."""

    resealed: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)  # already sealed with the first key
    unreadable: list[str] = field(default_factory=list)  # the secret does not open: left as is
    conflicted: list[str] = field(default_factory=list)  # changed twice while being resealed


class FederatedPortals(Protocol):
    """The portals of automatic registration, by entity identifier (OpenID Federation 1.0
    §12.1): :class:`gateway.federation.registration.AutomaticRegistration`."""

    def portal(self, client_id: str) -> Portal | None: ...


class Registry:
    """Regions and portals over the store's registry documents, validated on the way in and out.

    Lookups by key, and the list of all regions (the chooser's), are answered from a
    short-lived copy (:data:`CACHE_SECONDS`); pages of a listing (the admin API's) always read
    the store. Unknown keys are never remembered, so a registration made elsewhere is found
    as soon as it is stored, and random client ids cannot fill the copy.
    """

    def __init__(
        self,
        store: Store,
        *,
        sealer: RegionSecretSealer | None = None,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``sealer`` seals and opens region client secrets; without one, regions cannot be
        written and only rows from before sealing (clear secrets) can be read."""
        self._store = store
        self._sealer = sealer
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: dict[tuple[RegistryKind, str], tuple[float, Region | Portal]] = {}
        # Bumped by every local write: a lookup that read the store before a write finished
        # must not put what it read into the copy afterwards.
        self._generation = 0
        # Every region, until the instant given (:meth:`regions`); dropped by a region write.
        self._all_regions: tuple[float, tuple[Region, ...]] | None = None
        # Portals of automatic registration (OpenID Federation §12.1), by entity identifier,
        # when the platform enables it: gateway.federation.registration, wired by the services.
        self.federated: FederatedPortals | None = None
        # Portals of explicit registration (§12.2), by assigned client id: federation.explicit.
        self.explicit: FederatedPortals | None = None

    @classmethod
    def for_settings(cls, store: Store, settings: Settings) -> Registry:
        """The registry of a gateway: region secrets sealed with ``TONGXING_SEALING_KEYS``, or,
        when none is set, with a key derived from the MFA secret (and a log line saying so)."""
        sealer = RegionSecretSealer.from_keys(settings.sealing_keys, settings.mfa_secret)
        if sealer.derived:
            log.warning(
                "TONGXING_SEALING_KEYS is not set: region client secrets are sealed with a key "
                "derived from TONGXING_MFA_SECRET (docs/security/secrets.md)",
                extra={"event": "sealing.derived_key"},
            )
        return cls(store, sealer=sealer)

    def _value(
        self, kind: RegistryKind, key: str, document: Mapping[str, Any], model: type[Registered]
    ) -> Registered:
        if kind is RegistryKind.REGION:
            region = Region.from_document(key, document, self._sealer)
            if not isinstance(region, model):  # pragma: no cover - the kind names the model
                raise TypeError(f"a region document read as {model.__name__}")
            return region
        return model.model_validate(document)

    def _lookup(self, kind: RegistryKind, key: str, model: type[Registered]) -> Registered | None:
        # A key no registration can have (a region code or client_id from a URL or a form) names
        # nothing; it never reaches the store, where PostgreSQL refuses a NUL in text with an
        # error, not a miss (THREAT_MODEL row 7).
        if _KEY_PATTERNS[kind].fullmatch(key) is None:
            return None
        now = self._clock()
        with self._lock:
            hit = self._cached.get((kind, key))
            generation = self._generation
        if hit is not None and hit[0] > now and isinstance(hit[1], model):
            return hit[1]
        found = self._store.get_document(kind, key)
        if found is None:
            return None
        value = self._value(kind, key, found.document, model)
        if self._cache_seconds > 0:
            with self._lock:
                if generation == self._generation:
                    if len(self._cached) >= CACHE_ENTRIES:
                        self._cached.clear()
                    self._cached[(kind, key)] = (now + self._cache_seconds, value)
        return value

    def _forget(self, kind: RegistryKind, key: str) -> None:
        with self._lock:
            self._generation += 1
            self._cached.pop((kind, key), None)
            if kind is RegistryKind.REGION:
                self._all_regions = None

    def _stored(
        self, kind: RegistryKind, key: str, model: type[Registered]
    ) -> Stored[Registered] | None:
        found = self._store.get_document(kind, key)
        if found is None:
            return None
        return Stored(self._value(kind, key, found.document, model), found.revision)

    def _require_sealer(self) -> RegionSecretSealer:
        if self._sealer is None:
            raise ValueError("this registry has no sealer: it cannot write region secrets")
        return self._sealer

    def put_region(
        self, region: Region, now: datetime, *, expected_revision: int | None = None
    ) -> tuple[Region, bool]:
        """Create or replace a region; returns it and whether it was created.

        ``expected_revision`` as :meth:`Store.put_document` has it (0: create only; ``n``: replace
        only revision ``n``); a mismatch raises :class:`RevisionConflictError`.
        """
        try:
            stored = self._store.put_document(
                RegistryKind.REGION,
                region.code,
                region.document(self._require_sealer()),
                now,
                expected_revision=expected_revision,
            )
        finally:
            self._forget(RegistryKind.REGION, region.code)
        return region, stored.revision == 1

    def region(self, code: str) -> Region | None:
        return self._lookup(RegistryKind.REGION, code, Region)

    def stored_region(self, code: str) -> Stored[Region] | None:
        """The region as stored now, with its revision (read from the store, not the copy)."""
        return self._stored(RegistryKind.REGION, code, Region)

    def regions(self) -> list[Region]:
        """Every region, for the chooser and ``/status``: from the short-lived copy, as lookups
        by key are (:data:`CACHE_SECONDS`; a region written through this registry is seen at
        once). With 80 regions, reading and opening them all cost about 1.8 ms of every chooser
        page (bench/scale.py); the copy makes it a dictionary read. The admin API lists from the
        store instead (:meth:`regions_page`)."""
        now = self._clock()
        with self._lock:
            cached, generation = self._all_regions, self._generation
        if cached is not None and cached[0] > now:
            return list(cached[1])
        documents = self._store.list_documents(RegistryKind.REGION)
        regions = [Region.from_document(d.key, d.document, self._sealer) for d in documents]
        if self._cache_seconds > 0:
            with self._lock:
                if generation == self._generation:
                    self._all_regions = (now + self._cache_seconds, tuple(regions))
        return regions

    def regions_page(
        self, *, after: str | None, limit: int, principal: str | None = None
    ) -> Page[Region]:
        """At most ``limit`` regions after the code ``after``, read from the store (never the
        copy); ``principal``: only those it manages, filtered by the store's query."""
        page = self._store.list_page(
            RegistryKind.REGION, after=after, limit=limit, principal=principal
        )
        regions = [Region.from_document(d.key, d.document, self._sealer) for d in page.documents]
        return Page(regions, page.next_after)

    def reseal_regions(self, now: datetime) -> ResealReport:
        """Seal every region's client secret with the first sealing key: clear secrets from
        before sealing, and secrets sealed under an older key (the middle step of a key
        rotation, ``tongxing secrets reseal``; docs/security/secrets.md).

        Each region is rewritten at the revision it was read at, so a concurrent change through
        the admin API is never overwritten (the region is read again and tried once more). A
        region whose secret does not open is left as it is and named in the report.
        """
        sealer = self._require_sealer()
        report = ResealReport()
        for document in self._store.list_documents(RegistryKind.REGION):
            code = document.key
            for attempt in range(2):
                found = (
                    document
                    if attempt == 0
                    else self._store.get_document(RegistryKind.REGION, code)
                )
                if found is None:
                    break
                try:
                    region = Region.from_document(code, found.document, sealer)
                except RegionSecretUnreadable:
                    report.unreadable.append(code)
                    break
                sealed = found.document.get(SEALED_SECRET_FIELD)
                if isinstance(sealed, str) and sealer.is_current(sealed):
                    report.current.append(code)
                    break
                try:
                    self.put_region(region, now, expected_revision=found.revision)
                except RevisionConflictError:
                    if attempt == 1:
                        report.conflicted.append(code)
                    continue
                report.resealed.append(code)
                break
        return report

    def delete_region(self, code: str, *, expected_revision: int | None = None) -> bool:
        """Delete a region (``False`` if there was none); ``expected_revision`` as for put."""
        try:
            return self._store.delete_document(
                RegistryKind.REGION, code, expected_revision=expected_revision
            )
        finally:
            self._forget(RegistryKind.REGION, code)

    def put_portal(
        self, portal: Portal, now: datetime, *, expected_revision: int | None = None
    ) -> tuple[Portal, bool]:
        """Create or replace a portal; ``expected_revision`` as for :meth:`put_region`."""
        document = portal.model_dump(mode="json")
        try:
            stored = self._store.put_document(
                RegistryKind.PORTAL,
                portal.client_id,
                document,
                now,
                expected_revision=expected_revision,
            )
        finally:
            self._forget(RegistryKind.PORTAL, portal.client_id)
        return portal, stored.revision == 1

    def portal(self, client_id: str) -> Portal | None:
        """The registered portal ``client_id``, else the automatically registered one it names
        (an entity identifier, never a registered client id: :attr:`federated`)."""
        found = self._lookup(RegistryKind.PORTAL, client_id, Portal)
        if found is None and self.explicit is not None:  # §12.2 (X19)
            found = self.explicit.portal(client_id)
        if found is None and self.federated is not None:
            return self.federated.portal(client_id)
        return found

    def stored_portal(self, client_id: str) -> Stored[Portal] | None:
        """The portal as stored now, with its revision (read from the store, not the copy)."""
        return self._stored(RegistryKind.PORTAL, client_id, Portal)

    def portals(self) -> list[Portal]:
        documents = self._store.list_documents(RegistryKind.PORTAL)
        return [Portal.model_validate(d.document) for d in documents]

    def portals_page(
        self, *, after: str | None, limit: int, principal: str | None = None
    ) -> Page[Portal]:
        """At most ``limit`` portals after the client id ``after``, as :meth:`regions_page`."""
        page = self._store.list_page(
            RegistryKind.PORTAL, after=after, limit=limit, principal=principal
        )
        return Page([Portal.model_validate(d.document) for d in page.documents], page.next_after)

    def delete_portal(self, client_id: str, *, expected_revision: int | None = None) -> bool:
        """Delete a portal (``False`` if there was none); ``expected_revision`` as for put."""
        try:
            return self._store.delete_document(
                RegistryKind.PORTAL, client_id, expected_revision=expected_revision
            )
        finally:
            self._forget(RegistryKind.PORTAL, client_id)
