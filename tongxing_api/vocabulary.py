"""The words of the admin API v1, defined once for the gateway and the operator.

The gateway validates registrations with these (``gateway.registry``, ``gateway.admin``); the
operator parses Region and Portal resources with them (``realm_operator.models``) and its CRDs
declare the same patterns and enumerations (a unit test keeps the CRDs equal to this module).
Whatever the operator accepts in a resource, the gateway therefore accepts in a registration,
and a resource the gateway would refuse is refused before anything is made for it.

Protocol-free: no Flask, kopf, Kubernetes client or HTTP; pydantic only, for :class:`Names`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Final, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ADMIN_ERROR_CODES",
    "API_PATH",
    "CLAIM_SCOPES",
    "CLIENT_ID_PATTERN",
    "CODE_PATTERN",
    "COLLECTIONS",
    "KEY_FIELDS",
    "LEVELS",
    "LOOPBACK_HOSTS",
    "NAMESPACE_PATTERN",
    "NAME_MAX_LENGTH",
    "OWNER_FIELDS",
    "OWNER_KINDS",
    "PRINCIPAL_PATTERN",
    "REDIRECT_URI_PATTERN",
    "RESOURCE_FIELDS",
    "RESOURCE_NAME_PATTERN",
    "SECRET_AUTH_METHODS",
    "SECTOR_PATTERN",
    "SINGULAR",
    "SUBJECT_TYPES",
    "UID_PATTERN",
    "AuthMethod",
    "Claim",
    "Collection",
    "ConsentClaim",
    "Level",
    "Names",
    "OwnerKind",
    "RegionKind",
    "SubjectType",
    "above",
    "check_absolute_url",
    "check_redirect_uri",
    "is_loopback",
]

# --- the API's shape -----------------------------------------------------------------------------

#: Where the admin API v1 lives below the gateway's URL.
API_PATH: Final = "/admin/v1"
#: The collections of the API; each registration is ``{API_PATH}/{collection}/{key}``.
Collection = Literal["regions", "portals"]
COLLECTIONS: Final[tuple[Collection, ...]] = get_args(Collection)
#: The member of each collection's document that is its key in the URL.
KEY_FIELDS: Final[Mapping[Collection, str]] = {"regions": "code", "portals": "client_id"}
SINGULAR: Final[Mapping[Collection, str]] = {"regions": "region", "portals": "portal"}
#: The ``error`` codes the admin API answers with (RFC 6750 §3.1 and the gateway's own); a
#: client keeps a code only if it is one of these, so nothing else of a body travels with it.
ADMIN_ERROR_CODES: Final = frozenset(
    {
        "invalid_request",
        "invalid_token",
        "insufficient_scope",
        "not_found",
        "registration_taken",
        "invalid_policy_set",
        "server_error",
    }
)

# --- keys and names ------------------------------------------------------------------------------

#: A region's code (ISO 3166-2:CN style, ``zj``) and a portal's owning region.
CODE_PATTERN: Final = r"^[a-z][a-z0-9-]{1,31}$"
#: A portal's client id.
CLIENT_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
#: What policies know a portal by (``policies/schema.cedarschema``): a code-like word.
SECTOR_PATTERN: Final = CODE_PATTERN
#: Display names, zh-CN and English, are at most this long.
NAME_MAX_LENGTH: Final = 64


class Names(BaseModel):
    """Display names: zh-CN first, English second."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zh: Annotated[str, Field(min_length=1, max_length=NAME_MAX_LENGTH)]
    en: Annotated[str, Field(min_length=1, max_length=NAME_MAX_LENGTH)]


class RegionKind(StrEnum):
    """What a region is; each kind has a default realm template (``realms/<kind>.json.j2``)."""

    PROVINCE = "province"
    MUNICIPALITY = "municipality"
    AUTONOMOUS_REGION = "autonomous-region"
    SAR = "sar"
    CORPS = "corps"
    DEPARTMENT = "department"


# --- levels of assurance -------------------------------------------------------------------------

#: National levels of assurance: loa1 one factor, loa2 two, loa3 two and a verified real name.
Level = Literal["loa1", "loa2", "loa3"]
#: The levels, weakest first.
LEVELS: Final[tuple[Level, ...]] = get_args(Level)


def above(level: Level, ceiling: Level) -> bool:
    """Whether ``level`` is a higher level of assurance than ``ceiling`` (loa1 < loa2 < loa3)."""
    return LEVELS.index(level) > LEVELS.index(ceiling)


# --- portals -------------------------------------------------------------------------------------


class AuthMethod(StrEnum):
    """How a portal authenticates at the token endpoint (OIDC Core §9)."""

    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method name, not a secret
    CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105
    PRIVATE_KEY_JWT = "private_key_jwt"
    NONE = "none"  # public clients (PKCE required)

    @property
    def uses_secret(self) -> bool:
        """Whether the portal holds a client secret the gateway issued."""
        return self in SECRET_AUTH_METHODS


SECRET_AUTH_METHODS: Final = frozenset(
    {AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST}
)

#: OIDC Core §8: one ``sub`` for every portal, or one per portal's sector.
SubjectType = Literal["public", "pairwise"]
SUBJECT_TYPES: Final[tuple[SubjectType, ...]] = get_args(SubjectType)


class Claim(StrEnum):
    """Claims a Portal resource may request; each comes with the gateway scope that carries it."""

    NAME = "name"
    HOME_REGION = "home_region"
    PHONE_NUMBER = "phone_number"


#: The gateway scope that releases each requestable claim (OIDC Core §5.4).
CLAIM_SCOPES: Final[Mapping[Claim, str]] = {
    Claim.NAME: "profile",
    Claim.HOME_REGION: "profile",
    Claim.PHONE_NUMBER: "phone",
}
#: Claims a portal releases only after the person agreed on a consent page.
ConsentClaim = Literal["name", "phone_number", "id_number", "home_region"]

# --- URLs ----------------------------------------------------------------------------------------

LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
#: The CRDs' pattern for a redirect URI; :func:`check_redirect_uri` says the same, and more
#: (dot segments), in words a person can act on.
REDIRECT_URI_PATTERN: Final = (
    r"^(https://[^/?#@*\s]+|http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?)"
    r"([/?][^#*\s]*)?$"
)
_DOT_SEGMENT = re.compile(r"(^|/)\.\.?(;[^/]*)?(/|$)")


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (RFC 8252 §7.3)."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_absolute_url(value: str, *, what: str, allow_query: bool = True) -> str:
    """An absolute https URL (http only on loopback) with no userinfo, fragment or wildcard.

    RFC 9700 §2.1 and §4.1.3: registered redirect URIs are compared exactly, so anything that
    makes a pattern out of them (wildcards) or hides the real host (userinfo) is refused.
    """
    if any(ch.isspace() for ch in value) or "*" in value:
        raise ValueError(f"{what} must not contain whitespace or wildcards")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute https URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"{what} must use https (http is allowed on loopback only)")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError(f"{what} must not contain userinfo")
    if parts.fragment or value.endswith("#"):
        raise ValueError(f"{what} must not contain a fragment")
    if parts.query and not allow_query:
        raise ValueError(f"{what} must not contain a query")
    if _DOT_SEGMENT.search(parts.path):
        raise ValueError(f"{what} must not contain dot segments")
    return value


def check_redirect_uri(value: str, *, what: str = "redirect URI") -> str:
    """A redirect (or logout) URI a portal may register: :func:`check_absolute_url`, query
    allowed (RFC 6749 §3.1.2; loopback per RFC 8252 §7.3)."""
    return check_absolute_url(value, what=what)


# --- owners of registrations (THREAT_MODEL row 1) ------------------------------------------------

#: The name of an admin API principal (the gateway's tokens and ``admin_clients``).
PRINCIPAL_PATTERN: Final = r"^[a-z][a-z0-9-]{1,62}$"
#: Kubernetes object names: a namespace is a DNS label (RFC 1123), a Region or Portal a DNS
#: subdomain.
NAMESPACE_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
RESOURCE_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
UID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
#: The custom resources a registration may stand for.
OwnerKind = Literal["Region", "Portal"]
OWNER_KINDS: Final[tuple[OwnerKind, ...]] = get_args(OwnerKind)
#: What the operator says about the resource it acts for: in ``managed_by`` of every PUT body
#: and in the query of a GET or DELETE of one registration.
RESOURCE_FIELDS: Final = ("kind", "namespace", "name", "uid")
#: What makes two owners the same resource: the uid aside, so a resource deleted and made again
#: under the same name takes its registration over.
OWNER_FIELDS: Final = RESOURCE_FIELDS[:3]
