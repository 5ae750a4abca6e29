"""The Region and Portal custom resources as typed models, and their status and conditions.

The CRDs in ``operator/crds/`` refuse most bad specs before they are stored; these models parse
what the API server accepted (camelCase in, snake_case attributes) and check what a schema cannot
say. Their patterns and enumerations are the CRDs' (a unit test keeps the two equal).
Conditions follow the Kubernetes API conventions (``metav1.Condition``): type, status, reason,
message, ``observedGeneration`` and ``lastTransitionTime``, which moves only when status changes.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

GROUP = "tongxing.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
FINALIZER = "tongxing.io/cleanup"

CODE_PATTERN = r"^[a-z][a-z0-9-]{1,31}$"
REALM_PATTERN = r"^[a-z][a-z0-9-]{1,63}$"
CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
ACR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9:._/-]{0,63}$"
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"  # noqa: S105
TEMPLATE_PATTERN = r"^[a-z][a-z0-9-]{1,62}$"
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}

Level = Literal["loa1", "loa2", "loa3"]


class RegionKind(StrEnum):
    PROVINCE = "province"
    MUNICIPALITY = "municipality"
    AUTONOMOUS_REGION = "autonomous-region"
    SAR = "sar"
    CORPS = "corps"
    DEPARTMENT = "department"


class DeletionPolicy(StrEnum):
    """What happens to the Keycloak realm when the Region is deleted (like a PV's reclaim)."""

    DELETE = "Delete"
    RETAIN = "Retain"


class OtpPolicy(StrEnum):
    OPTIONAL = "optional"  # people may enrol a second factor; the realm asks for it once enrolled
    REQUIRED = "required"  # every new account enrols TOTP at its first sign-in


class Claim(StrEnum):
    """Claims a portal may request; each is released through the gateway scope that carries it."""

    NAME = "name"
    HOME_REGION = "home_region"
    PHONE_NUMBER = "phone_number"


CLAIM_SCOPES: dict[Claim, str] = {
    Claim.NAME: "profile",
    Claim.HOME_REGION: "profile",
    Claim.PHONE_NUMBER: "phone",
}


class AuthMethod(StrEnum):
    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method name, not a secret
    CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105
    NONE = "none"

    @property
    def uses_secret(self) -> bool:
        return self is not AuthMethod.NONE


class _Spec(BaseModel):
    """camelCase in the resource, snake_case in Python; unknown fields are an error."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_redirect_uri(value: str, *, what: str = "redirect URI") -> str:
    """An absolute https URL (http on loopback only): no wildcard, userinfo or fragment.

    RFC 9700 §4.1.3 (redirect URIs are compared exactly, so patterns are refused) and
    OAuth 2.0 for Native Apps (RFC 8252 §7.3, loopback). The same rule as the CRD's pattern.
    """
    if any(ch.isspace() for ch in value) or "*" in value:
        raise ValueError(f"{what} must not contain whitespace or wildcards")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute https URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"{what} must use https (http is allowed on loopback only)")
    if "@" in parts.netloc:
        raise ValueError(f"{what} must not contain userinfo")
    if parts.fragment or "#" in value:
        raise ValueError(f"{what} must not contain a fragment")
    return value


def check_service_url(value: str, *, what: str) -> str:
    """An http(s) base URL of a service (Keycloak inside the cluster may be plain http)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute http(s) URL")
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{what} must not contain userinfo, a query or a fragment")
    return value.rstrip("/")


class Names(_Spec):
    """Display names: zh-CN first, English second."""

    zh: Annotated[str, Field(min_length=1, max_length=64)]
    en: Annotated[str, Field(min_length=1, max_length=64)]


class SecretKeys(_Spec):
    """A Secret in the resource's namespace holding a Keycloak admin's username and password."""

    name: Annotated[str, Field(pattern=SECRET_NAME_PATTERN, max_length=253)]
    username_key: str = "username"
    password_key: str = "password"  # noqa: S105 - the name of a key, not a password


class KeycloakConnection(_Spec):
    """Where the region's realm lives and how the operator administers it."""

    url: str
    public_url: str | None = None
    admin_realm: Annotated[str, Field(min_length=1, max_length=64)] = "master"
    admin_secret_ref: SecretKeys
    realm: Annotated[str | None, Field(pattern=REALM_PATTERN)] = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_service_url(value, what="keycloak.url")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return None if value is None else check_service_url(value, what="keycloak.publicUrl")

    @property
    def issuer_base(self) -> str:
        """Keycloak as browsers and the gateway reach it: the realm issuers live below it."""
        return self.public_url or self.url


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

    @property
    def issuer(self) -> str:
        return f"{self.keycloak.issuer_base}/realms/{self.realm_name}"

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
    redirect_uris: Annotated[list[str], Field(min_length=1, max_length=20)]
    post_logout_redirect_uris: Annotated[list[str], Field(max_length=20)] = Field(
        default_factory=list
    )
    backchannel_logout_uri: str | None = None
    requested_claims: list[Claim] = Field(default_factory=lambda: [Claim.NAME])
    minimum_level: Level = "loa1"
    sector: Annotated[str | None, Field(pattern=CODE_PATTERN)] = None
    subject_type: Literal["public", "pairwise"] = "public"
    token_endpoint_auth_method: AuthMethod = AuthMethod.CLIENT_SECRET_BASIC
    secret_name: Annotated[str, Field(pattern=SECRET_NAME_PATTERN, max_length=253)]
    enabled: bool = True

    @field_validator("redirect_uris", "post_logout_redirect_uris")
    @classmethod
    def _uris(cls, value: list[str]) -> list[str]:
        for uri in value:
            check_redirect_uri(uri)
        return list(dict.fromkeys(value))

    @field_validator("backchannel_logout_uri")
    @classmethod
    def _backchannel(cls, value: str | None) -> str | None:
        return None if value is None else check_redirect_uri(value, what="backchannelLogoutUri")

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
