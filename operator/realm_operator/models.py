"""The Region and Portal custom resources as typed models, and their status and conditions.

The CRDs in ``operator/crds/`` refuse most bad specs before they are stored; these models parse
what the API server accepted (camelCase in, snake_case attributes) and check what a schema cannot
say. Whatever the specs share with the gateway's admin API (region codes, client ids, levels,
region kinds, auth methods, claims, redirect URIs) is :mod:`tongxing_api.vocabulary`'s; the rest
(realms, Secrets, acr values, overrides) is the operator's own. A unit test keeps the CRDs equal
to both.
Conditions follow the Kubernetes API conventions (``metav1.Condition``): type, status, reason,
message, ``observedGeneration`` and ``lastTransitionTime``, which moves only when status changes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from tongxing_api.vocabulary import (
    CLAIM_SCOPES,
    CLIENT_ID_PATTERN,
    CODE_PATTERN,
    SECTOR_PATTERN,
    ApplicationType,
    AuthMethod,
    Claim,
    SubjectKinds,
    SubjectType,
)

# Other modules know these by this module (``as``: re-exported).
from tongxing_api.vocabulary import Level as Level
from tongxing_api.vocabulary import Names as Names
from tongxing_api.vocabulary import RegionKind as RegionKind
from tongxing_api.vocabulary import check_redirect_uri as check_redirect_uri

GROUP = "tongxing.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
FINALIZER = "tongxing.io/cleanup"

REALM_PATTERN = r"^[a-z][a-z0-9-]{1,63}$"
ACR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9:._/-]{0,63}$"
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"  # noqa: S105
TEMPLATE_PATTERN = r"^[a-z][a-z0-9-]{1,62}$"
THEME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"


class DeletionPolicy(StrEnum):
    """What happens to the Keycloak realm when the Region is deleted (like a PV's reclaim)."""

    DELETE = "Delete"
    RETAIN = "Retain"


class OtpPolicy(StrEnum):
    OPTIONAL = "optional"  # people may enrol a second factor; the realm asks for it once enrolled
    REQUIRED = "required"  # every new account enrols TOTP at its first sign-in


#: How a Portal may authenticate: a resource carries no keys, so not ``private_key_jwt``.
PORTAL_AUTH_METHODS: Final = (
    AuthMethod.CLIENT_SECRET_BASIC,
    AuthMethod.CLIENT_SECRET_POST,
    AuthMethod.NONE,
)


class _Spec(BaseModel):
    """camelCase in the resource, snake_case in Python; unknown fields are an error."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def normalise_service_url(value: str, *, what: str) -> str:
    """An http(s) base URL of a service, in the one form URLs are compared in.

    Scheme and host in lower case (RFC 3986 §6.2.2.1), no trailing slash; no userinfo, query or
    fragment (a base URL has none, and userinfo would carry credentials). Port and path are kept
    as they are: ``http://kc:8080`` and ``http://kc`` are different grants.
    """
    if any(ch.isspace() for ch in value) or "?" in value or "#" in value:
        raise ValueError(f"{what} must not contain whitespace, a query or a fragment")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute http(s) URL")
    if "@" in parts.netloc:
        raise ValueError(f"{what} must not contain userinfo")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"{what} has an invalid port") from None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def check_service_url(value: str, *, what: str) -> str:
    """An http(s) base URL of a service (Keycloak inside the cluster may be plain http)."""
    return normalise_service_url(value, what=what)


class KeycloakConnection(_Spec):
    """Which of the Keycloaks the platform grants hosts the region's realm.

    The operator administers it with the credentials of the platform's grant for ``url``
    (``TONGXING_OPERATOR_KEYCLOAKS``), never with credentials the Region names:
    ``adminSecretRef`` is deprecated and any value of it is refused (``CredentialsNotGranted``),
    and ``adminRealm``, if given, must be the grant's.
    """

    url: str
    public_url: str | None = None
    admin_realm: Annotated[str | None, Field(min_length=1, max_length=64)] = None
    admin_secret_ref: Any = None  # deprecated: refused whatever it holds
    realm: Annotated[str | None, Field(pattern=REALM_PATTERN)] = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_service_url(value, what="keycloak.url")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return None if value is None else check_service_url(value, what="keycloak.publicUrl")


class MfaPolicy(_Spec):
    otp: OtpPolicy = OtpPolicy.OPTIONAL


class AcrLevel(_Spec):
    """One acr value of the realm: the Keycloak level it names and the Tongxing level it means.

    Keycloak puts in the ``acr`` claim (OIDC Core §2) the name its ACR-to-LoA map gives the level
    of authentication reached (1 after a password, 2 after a second factor in a step-up flow,
    0 when an SSO session was reused). The gateway reads that name and maps it to loa1-loa3.
    """

    acr: Annotated[str, Field(pattern=ACR_PATTERN)]
    loa: Annotated[int, Field(ge=0, le=10)]
    level: Level


def _default_acr_mapping() -> list[AcrLevel]:
    return [AcrLevel(acr="pwd", loa=1, level="loa1"), AcrLevel(acr="otp", loa=2, level="loa2")]


# Realm overrides: what a Region may style or tune, within bounds the platform sets.

# The realm's identity and what the operator provisions in it are never a Region's to override.
PROTECTED_OVERRIDES = ("realm", "id", "clients", "components", "users", "enabled")
PASSWORD_POLICY_COUNTS: dict[str, tuple[int, int]] = {
    "length": (8, 128),
    "maxLength": (8, 4096),
    "lowerCase": (0, 16),
    "upperCase": (0, 16),
    "digits": (0, 16),
    "specialChars": (0, 16),
    "passwordHistory": (0, 64),
    "passwordAge": (1, 3650),  # days
    "forceExpiredPasswordChange": (1, 3650),  # days
}
PASSWORD_POLICY_FLAGS = ("notUsername", "notEmail", "notContainsUsername")
# hashIterations per algorithm: at least Keycloak's own default (the OWASP Password Storage
# Cheat Sheet's figures for PBKDF2; Argon2id's time cost 5 at Keycloak's 7 MiB), and not so many
# that one tenant's sign-ins occupy the Keycloak every region shares.
HASH_ITERATIONS: dict[str, tuple[int, int]] = {
    "argon2": (5, 20),
    "pbkdf2-sha256": (600_000, 1_000_000),
    "pbkdf2-sha512": (210_000, 1_000_000),
}
_POLICY_TERM = re.compile(r"^(?P<name>[A-Za-z]+)(?:\((?P<arg>[^()]*)\))?$")


def check_password_policy(value: str) -> str:
    """A Keycloak password policy (``length(12) and digits(1) and notUsername``) within bounds.

    Only policies that tune a password are known here: ``length(n)`` with n >= 8 is required,
    ``hashAlgorithm`` is one of :data:`HASH_ITERATIONS` and ``hashIterations`` needs it beside
    (Keycloak's default algorithm depends on its build) and stays within its bounds. Policies
    that name server files or free regular expressions (``passwordBlacklist``, ``regexPattern``)
    are refused: the Keycloak is shared.
    """
    seen: dict[str, str | None] = {}
    for term in value.split(" and "):
        found = _POLICY_TERM.match(term.strip())
        if found is None:
            raise ValueError(f"{term.strip()!r} is not a policy like length(12) or notUsername")
        name, arg = found["name"], found["arg"]
        if name in seen:
            raise ValueError(f"{name} appears twice")
        if name in PASSWORD_POLICY_COUNTS or name == "hashIterations":
            if arg is None or not arg.isdecimal():
                raise ValueError(f"{name} needs a number, e.g. {name}(1)")
            if name in PASSWORD_POLICY_COUNTS:
                low, high = PASSWORD_POLICY_COUNTS[name]
                if not low <= int(arg) <= high:
                    raise ValueError(f"{name} must be between {low} and {high}")
        elif name in PASSWORD_POLICY_FLAGS:
            if arg is not None:
                raise ValueError(f"{name} takes no argument")
        elif name == "hashAlgorithm":
            if arg not in HASH_ITERATIONS:
                raise ValueError(f"hashAlgorithm must be one of {', '.join(HASH_ITERATIONS)}")
        else:
            known = [*PASSWORD_POLICY_COUNTS, *PASSWORD_POLICY_FLAGS, "hashAlgorithm"]
            raise ValueError(
                f"{name} is not a policy a Region may set (allowed: {', '.join(known)}, "
                "hashIterations)"
            )
        seen[name] = arg
    if "length" not in seen:
        raise ValueError("length(n) with n >= 8 is required")
    if "maxLength" in seen and int(seen["maxLength"] or 0) < int(seen["length"] or 0):
        raise ValueError("maxLength must not be below length")
    if "hashIterations" in seen:
        algorithm = seen.get("hashAlgorithm")
        if algorithm is None:
            raise ValueError("hashIterations needs hashAlgorithm(...) in the same policy")
        low, high = HASH_ITERATIONS[algorithm]
        if not low <= int(seen["hashIterations"] or 0) <= high:
            raise ValueError(f"hashIterations for {algorithm} must be between {low} and {high}")
    return value


class RealmOverrides(BaseModel):
    """What a Region may lay over its realm template: display, themes, locales, password and OTP
    policy and brute-force tuning, each within bounds. Keycloak's own names (camelCase) only;
    anything else, flows, identity providers, registration, attributes, is refused.
    The CRD declares the same fields and bounds (a unit test keeps the two equal).
    """

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True)

    display_name: Annotated[str | None, Field(min_length=1, max_length=255)] = None
    display_name_html: Annotated[str | None, Field(min_length=1, max_length=1024)] = None
    login_theme: Annotated[str | None, Field(pattern=THEME_PATTERN)] = None
    account_theme: Annotated[str | None, Field(pattern=THEME_PATTERN)] = None
    email_theme: Annotated[str | None, Field(pattern=THEME_PATTERN)] = None
    internationalization_enabled: bool | None = None
    supported_locales: Annotated[
        list[Annotated[str, Field(pattern=LOCALE_PATTERN)]] | None,
        Field(min_length=1, max_length=32),
    ] = None
    default_locale: Annotated[str | None, Field(pattern=LOCALE_PATTERN)] = None
    password_policy: Annotated[str | None, Field(min_length=1, max_length=1024)] = None
    otp_policy_type: Literal["totp"] | None = None
    otp_policy_algorithm: Literal["HmacSHA1", "HmacSHA256", "HmacSHA512"] | None = None
    otp_policy_digits: Annotated[int | None, Field(ge=6, le=8)] = None
    otp_policy_period: Annotated[int | None, Field(ge=30, le=60)] = None
    otp_policy_look_ahead_window: Annotated[int | None, Field(ge=0, le=1)] = None
    brute_force_protected: bool | None = None
    failure_factor: Annotated[int | None, Field(ge=1, le=10)] = None
    wait_increment_seconds: Annotated[int | None, Field(ge=30, le=3600)] = None
    max_failure_wait_seconds: Annotated[int | None, Field(ge=60, le=86400)] = None
    permanent_lockout: bool | None = None

    @field_validator("internationalization_enabled")
    @classmethod
    def _speaks_languages(cls, value: bool | None) -> bool | None:
        if value is False:
            raise ValueError("internationalization cannot be turned off (zh-CN first, then en)")
        return value

    @field_validator("brute_force_protected")
    @classmethod
    def _protected(cls, value: bool | None) -> bool | None:
        if value is False:
            raise ValueError("brute-force protection cannot be turned off")
        return value

    @field_validator("supported_locales")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each locale may appear once")
        return value

    @field_validator("default_locale")
    @classmethod
    def _supported(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        locales = info.data.get("supported_locales")
        if not locales or value not in locales:
            raise ValueError("defaultLocale must be one of supportedLocales, set beside it")
        return value

    @field_validator("password_policy")
    @classmethod
    def _password_policy(cls, value: str | None) -> str | None:
        return None if value is None else check_password_policy(value)

    @classmethod
    def allowed(cls) -> list[str]:
        """The fields a Region may override, as Keycloak names them."""
        return [to_camel(name) for name in cls.model_fields]

    def realm(self) -> dict[str, Any]:
        """The overrides as a partial Keycloak realm representation."""
        return self.model_dump(by_alias=True, exclude_none=True)


class OverrideError(ValueError):
    """Overrides a Region may not set: each problem names its field ``spec.overrides.<field>``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        self.fields = [f"spec.overrides.{path}" for path, _ in problems]
        super().__init__("; ".join(f"spec.overrides.{path}: {why}" for path, why in problems))


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def check_overrides(raw: Any) -> RealmOverrides:
    """``spec.overrides`` as the allow-list takes it, or :class:`OverrideError`."""
    if not isinstance(raw, dict):
        raise OverrideError([("", "must be an object")])
    problems: list[tuple[str, str]] = []
    protected = [key for key in PROTECTED_OVERRIDES if key in raw]
    for key in protected:
        problems.append(
            (
                key,
                f"overrides may not set {key}: the realm's name, clients, components, users "
                "and enabled are the operator's",
            )
        )
    try:
        overrides = RealmOverrides.model_validate(
            {k: v for k, v in raw.items() if k not in protected}
        )
    except ValidationError as exc:
        allowed = ", ".join(RealmOverrides.allowed())
        for error in exc.errors(include_input=False, include_url=False):
            if error["type"] == "extra_forbidden":
                why = f"is not a setting a Region may override (allowed: {allowed})"
            else:
                why = str(error["msg"]).removeprefix("Value error, ")
            problems.append((_path(tuple(error["loc"])), why))
        raise OverrideError(problems) from None
    if problems:
        raise OverrideError(problems)
    return overrides


#: An entity identifier a resource names (OpenID Federation 1.0 §1.2): an https URL without
#: query, fragment or userinfo. The CRDs carry the same pattern (a unit test keeps them equal).
ENTITY_ID_PATTERN = r"^https://[^/?#@\s]+(/[^?#\s]*)?$"
MAX_FEDERATION_KEYS = 16


class FederationSpec(_Spec):
    """``spec.federation``: the region or portal as a subordinate of the trust anchor (OpenID
    Federation 1.0 §3): its entity identifier, its federation JWK Set (public keys only; the
    gateway refuses anything else, and the refusal is the ``Federated`` condition) and its own
    metadata policy (§6.1), merged under the platform's."""

    entity_id: Annotated[str | None, Field(pattern=ENTITY_ID_PATTERN, max_length=2048)] = None
    jwks: dict[str, Any]
    metadata_policy: dict[str, Any] = Field(default_factory=dict)

    @field_validator("jwks")
    @classmethod
    def _key_set(cls, value: dict[str, Any]) -> dict[str, Any]:
        """A JWK Set (RFC 7517 §5) of 1 to 16 objects; only ``keys`` is sent (the gateway keeps
        nothing else). Whether each is a public key is the gateway's to say."""
        keys = value.get("keys")
        if not isinstance(keys, list) or not 0 < len(keys) <= MAX_FEDERATION_KEYS:
            raise ValueError(f"must be a JWK Set with 1 to {MAX_FEDERATION_KEYS} keys")
        if not all(isinstance(key, dict) for key in keys):
            raise ValueError("each of keys must be a JWK (an object)")
        return {"keys": keys}

    def document(self, entity_id: str) -> dict[str, Any]:
        """The subordinate as the gateway's admin API takes it."""
        return {
            "entity_id": entity_id,
            "jwks": self.jwks,
            "metadata_policy": self.metadata_policy,
        }


class RegionSpec(_Spec):
    code: Annotated[str, Field(pattern=CODE_PATTERN)]
    names: Names
    kind: RegionKind
    keycloak: KeycloakConnection
    realm_template: Annotated[str | None, Field(pattern=TEMPLATE_PATTERN)] = None
    acr_mapping: Annotated[list[AcrLevel], Field(min_length=1, max_length=16)] = Field(
        default_factory=_default_acr_mapping
    )
    mfa: MfaPolicy = Field(default_factory=MfaPolicy)
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE
    enabled: bool = True
    overrides: dict[str, Any] = Field(default_factory=dict)
    # Issue 17: without federation.entityId, the realm's issuer (OpenID Federation 1.0 §5.1.3).
    federation: FederationSpec | None = None

    @field_validator("acr_mapping")
    @classmethod
    def _one_name_per_level(cls, value: list[AcrLevel]) -> list[AcrLevel]:
        if len({a.acr for a in value}) != len(value):
            raise ValueError("each acr value may appear once")
        if len({a.loa for a in value}) != len(value):
            raise ValueError("each Keycloak level (loa) may be named once")
        return value

    @property
    def template_name(self) -> str:
        return self.realm_template or self.kind.value

    @property
    def realm_name(self) -> str:
        return self.keycloak.realm or self.code

    def issuer_at(self, base: str) -> str:
        """The realm's issuer below ``base``, Keycloak as browsers and the gateway reach it
        (the platform's grant says where that is, not the Region)."""
        return f"{base}/realms/{self.realm_name}"

    @property
    def acr_loa_map(self) -> dict[str, int]:
        """The realm's ACR-to-LoA map (Keycloak's ``acr.loa.map``)."""
        return {a.acr: a.loa for a in sorted(self.acr_mapping, key=lambda a: a.acr)}

    @property
    def acr_levels(self) -> dict[str, str]:
        """The gateway's view: each acr value of the realm, as a Tongxing level."""
        return {a.acr: a.level for a in sorted(self.acr_mapping, key=lambda a: a.acr)}


class PortalSpec(_Spec):
    region: Annotated[str, Field(pattern=CODE_PATTERN)]
    client_id: Annotated[str | None, Field(pattern=CLIENT_ID_PATTERN)] = None
    names: Names
    # OIDC Dynamic Client Registration §2; before the redirect URIs, whose rule it decides.
    application_type: ApplicationType = "web"
    redirect_uris: Annotated[list[str], Field(min_length=1, max_length=20)]
    post_logout_redirect_uris: Annotated[list[str], Field(max_length=20)] = Field(
        default_factory=list
    )
    backchannel_logout_uri: str | None = None
    # Back-Channel Logout 1.0 §2.2: unset or true, logout tokens carry the session's sid; false,
    # they name the person by sub only (the portal ends every session of theirs).
    backchannel_logout_session_required: bool | None = None
    # OIDC Core §8.1: a pairwise portal on several hosts names its sector here; the gateway
    # fetches the JSON array of redirect URIs at it when the portal is registered.
    sector_identifier_uri: str | None = None
    requested_claims: list[Claim] = Field(default_factory=lambda: [Claim.NAME])
    minimum_level: Level = "loa1"
    sector: Annotated[str | None, Field(pattern=SECTOR_PATTERN)] = None
    subject_type: SubjectType = "public"
    # Whom the portal serves: people, enterprises (a person acting for one), or both (issue 16).
    subject_kinds: SubjectKinds = "people"
    token_endpoint_auth_method: AuthMethod = AuthMethod.CLIENT_SECRET_BASIC
    secret_name: Annotated[str, Field(pattern=SECRET_NAME_PATTERN, max_length=253)]
    enabled: bool = True
    # Issue 17: the portal as a subordinate; its entityId is required (no realm to derive it).
    federation: FederationSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _native_is_public_by_default(cls, data: Any) -> Any:
        """A native app without a method named authenticates with ``none`` (RFC 8252 §8.5)."""
        if isinstance(data, dict) and "native" in (
            data.get("applicationType"),
            data.get("application_type"),
        ):
            named = "tokenEndpointAuthMethod" in data or "token_endpoint_auth_method" in data
            return data if named else {**data, "tokenEndpointAuthMethod": AuthMethod.NONE.value}
        return data

    @field_validator("redirect_uris", "post_logout_redirect_uris")
    @classmethod
    def _uris(cls, value: list[str], info: ValidationInfo) -> list[str]:
        kind: ApplicationType = "native" if info.data.get("application_type") == "native" else "web"
        for uri in value:
            check_redirect_uri(uri, what="redirect URI", application_type=kind)
        return list(dict.fromkeys(value))

    @field_validator("backchannel_logout_uri")
    @classmethod
    def _backchannel(cls, value: str | None) -> str | None:
        return None if value is None else check_redirect_uri(value, what="backchannelLogoutUri")

    @field_validator("sector_identifier_uri")
    @classmethod
    def _sector_identifier_uri(cls, value: str | None) -> str | None:
        return None if value is None else check_redirect_uri(value, what="sectorIdentifierUri")

    @field_validator("token_endpoint_auth_method")
    @classmethod
    def _method_without_keys(cls, value: AuthMethod) -> AuthMethod:
        if value not in PORTAL_AUTH_METHODS:
            allowed = ", ".join(method.value for method in PORTAL_AUTH_METHODS)
            raise ValueError(f"a Portal carries no keys: use one of {allowed}")
        return value

    @model_validator(mode="after")
    def _native_is_public(self) -> PortalSpec:
        if self.application_type == "native" and self.token_endpoint_auth_method.uses_secret:
            raise ValueError(
                "a native app (applicationType native) is a public client: "
                "tokenEndpointAuthMethod none, no Secret holds a client secret for it "
                "(RFC 8252 §8.5)"
            )
        return self

    @model_validator(mode="after")
    def _portal_names_its_entity(self) -> PortalSpec:
        if self.federation is not None and self.federation.entity_id is None:
            raise ValueError("federation.entityId is required for a Portal")
        return self

    def client_id_for(self, name: str) -> str:
        """The gateway client id: ``clientId``, or the resource's name."""
        return self.client_id or name

    @property
    def scopes(self) -> list[str]:
        """The gateway scopes that carry the requested claims (OIDC Core §5.4)."""
        wanted = {CLAIM_SCOPES[claim] for claim in self.requested_claims}
        return ["openid", *sorted(wanted)]


# Status


class ConditionType(StrEnum):
    REALM_READY = "RealmReady"
    GATEWAY_REGISTERED = "GatewayRegistered"
    SECRET_READY = "SecretReady"  # noqa: S105 - a condition type
    READY = "Ready"
    # Whether the gateway reaches the region's IdP now (its circuit, gateway.region_health):
    # informational, it does not make the Region unready (provisioning is done either way).
    REACHABLE = "Reachable"
    # Whether the trust anchor publishes the subordinate spec.federation describes (issue 17):
    # present only with spec.federation; False says why (the gateway's refusal), and, like
    # Reachable, never makes the resource unready (its sign-ins do not depend on it).
    FEDERATED = "Federated"


REGION_CONDITIONS = (
    ConditionType.REALM_READY,
    ConditionType.GATEWAY_REGISTERED,
    ConditionType.READY,
)
PORTAL_CONDITIONS = (
    ConditionType.SECRET_READY,
    ConditionType.GATEWAY_REGISTERED,
    ConditionType.READY,
)
REASON_PATTERN = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


class Condition(BaseModel):
    """``metav1.Condition``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    observed_generation: int = 0
    last_transition_time: str

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if not REASON_PATTERN.match(value):
            raise ValueError("a reason is CamelCase")
        return value


def timestamp(now: datetime) -> str:
    """RFC 3339 in UTC with second precision, as ``metav1.Time`` serialises."""
    return now.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_conditions(raw: Any) -> list[Condition]:
    """Conditions from a status; anything unreadable is dropped (it is rewritten next)."""
    found: list[Condition] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            found.append(Condition.model_validate(item))
        except ValueError:
            continue
    return found


def set_condition(
    conditions: list[Condition],
    type_: ConditionType,
    status: bool | None,
    reason: str,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """``conditions`` with ``type_`` set; its transition time moves only if its status does."""
    text: Literal["True", "False", "Unknown"] = (
        "Unknown" if status is None else "True" if status else "False"
    )
    previous = next((c for c in conditions if c.type == type_.value), None)
    kept = previous.last_transition_time if previous and previous.status == text else None
    condition = Condition(
        type=type_.value,
        status=text,
        reason=reason,
        message=message[:1024],
        observed_generation=generation,
        last_transition_time=kept or timestamp(now),
    )
    return [condition if c.type == type_.value else c for c in conditions] + (
        [condition] if previous is None else []
    )


def condition(conditions: list[Condition], type_: ConditionType) -> Condition | None:
    return next((c for c in conditions if c.type == type_.value), None)


def dump_conditions(conditions: list[Condition], order: tuple[ConditionType, ...]) -> list[Any]:
    """The conditions as the status stores them, in a stable order (Ready last)."""
    rank = {t.value: i for i, t in enumerate(order)}
    ordered = sorted(conditions, key=lambda c: rank.get(c.type, len(rank)))
    return [c.model_dump(by_alias=True) for c in ordered]
