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
import unicodedata
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Final, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ADMIN_ERROR_CODES",
    "API_PATH",
    "APPLICATION_TYPES",
    "CLAIM_SCOPES",
    "CLIENT_ID_PATTERN",
    "CODE_PATTERN",
    "COLLECTIONS",
    "KEY_FIELDS",
    "LEVELS",
    "LOOPBACK_HOSTS",
    "METADATA_SOURCES",
    "NAMESPACE_PATTERN",
    "NAME_MAX_LENGTH",
    "NATIVE_LOOPBACK_HOSTS",
    "OWNER_FIELDS",
    "OWNER_KINDS",
    "PORTAL_REDIRECT_URI_PATTERN",
    "PRINCIPAL_PATTERN",
    "PRIVATE_USE_SCHEME_PATTERN",
    "REDIRECT_URI_PATTERN",
    "RESOURCE_FIELDS",
    "RESOURCE_NAME_PATTERN",
    "SECRET_AUTH_METHODS",
    "SECTOR_PATTERN",
    "SINGULAR",
    "SUBJECT_KINDS",
    "SUBJECT_TYPES",
    "UID_PATTERN",
    "UNSAFE_SCHEMES",
    "ApplicationType",
    "AuthMethod",
    "Claim",
    "Collection",
    "ConsentClaim",
    "Level",
    "MetadataSource",
    "Names",
    "OwnerKind",
    "RegionKind",
    "SubjectKinds",
    "SubjectType",
    "above",
    "check_absolute_url",
    "check_outbound_url",
    "check_redirect_uri",
    "host_address",
    "is_local_address",
    "is_local_host",
    "is_loopback",
    "is_private_use_scheme",
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
    ENTERPRISE = "enterprise"  # the e-business-licence system: legal persons (issue 16)


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

#: OIDC Dynamic Client Registration §2 ``application_type``: a web site (the default), or an
#: app on the person's device (RFC 8252), which is a public client: it cannot keep a secret
#: (RFC 8252 §8.5), so it has none, authenticates with ``none`` and always uses PKCE (§8.1).
ApplicationType = Literal["web", "native"]
APPLICATION_TYPES: Final[tuple[ApplicationType, ...]] = get_args(ApplicationType)

#: OIDC Core §8: one ``sub`` for every portal, or one per portal's sector.
SubjectType = Literal["public", "pairwise"]
SUBJECT_TYPES: Final[tuple[SubjectType, ...]] = get_args(SubjectType)

#: Where a region's metadata and keys come from (issue 17): its discovery document (OIDC
#: Discovery §4, the default), or its trust chain to the gateway (OpenID Federation 1.0 §10),
#: its ``issuer`` being then its entity identifier (§5.1.3).
MetadataSource = Literal["discovery", "federation"]
METADATA_SOURCES: Final[tuple[MetadataSource, ...]] = get_args(MetadataSource)

#: Whom a portal serves (issue 16): natural persons, enterprises (a person acting for one, as
#: its legal representative or an agent with a mandate), or both.
SubjectKinds = Literal["people", "enterprises", "both"]
SUBJECT_KINDS: Final[tuple[SubjectKinds, ...]] = get_args(SubjectKinds)


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

#: The hosts a native app's loopback redirect URI names (RFC 8252 §7.3): the literal addresses
#: only, as the URL spells them. ``localhost`` is refused for native apps (§8.3: it may resolve
#: elsewhere, and a firewall may see it as a different interface).
NATIVE_LOOPBACK_HOSTS: Final = ("127.0.0.1", "[::1]")
#: A private-use URI scheme in reverse-domain form (RFC 8252 §7.1, ``cn.gov.zj.zlb``): DNS
#: labels, lower case, at least two; the first starts with a letter (RFC 3986 §3.1).
PRIVATE_USE_SCHEME_PATTERN: Final = (
    r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
)
#: Schemes no redirect URI of a private-use kind may have: the web's own, and those that run or
#: read something where they are opened. None has a dot, so the reverse-domain form already
#: keeps them out; they are named so the refusal can say why.
UNSAFE_SCHEMES: Final = frozenset(
    {
        "http",
        "https",
        "javascript",
        "vbscript",
        "data",
        "file",
        "blob",
        "filesystem",
        "about",
        "ftp",
        "ws",
        "wss",
        "mailto",
        "tel",
        "sms",
        "intent",
        "view-source",
    }
)
#: The CRDs' pattern for a Portal's redirect URIs: :data:`REDIRECT_URI_PATTERN`, or a
#: private-use scheme in reverse-domain form with one slash and no authority (RFC 8252 §7.1).
#: Which of the two a Portal may use is its ``applicationType``'s (a CEL rule of the CRD).
PORTAL_REDIRECT_URI_PATTERN: Final = (
    r"^((https://[^/?#@*\s]+|http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?)"
    r"([/?][^#*\s]*)?"
    r"|[a-z]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+"
    r":/([^/?#*\s][^?#*\s]*)?(\?[^#*\s]*)?)$"
)
_PRIVATE_USE_SCHEME = re.compile(PRIVATE_USE_SCHEME_PATTERN)
_PRIVATE_USE_REST = re.compile(r"^/([^/?#*\s][^?#*\s]*)?(\?[^#*\s]*)?$")


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


def is_private_use_scheme(scheme: str) -> bool:
    """Whether ``scheme`` is a private-use URI scheme in reverse-domain form (RFC 8252 §7.1)."""
    return (
        len(scheme) <= 253
        and scheme not in UNSAFE_SCHEMES
        and _PRIVATE_USE_SCHEME.fullmatch(scheme) is not None
    )


def check_redirect_uri(
    value: str, *, what: str = "redirect URI", application_type: ApplicationType = "web"
) -> str:
    """A redirect (or logout) URI a portal may register (RFC 6749 §3.1.2, query allowed).

    A web portal (OIDC Dynamic Client Registration §2, the default): :func:`check_absolute_url`,
    https, or http on loopback, compared exactly (RFC 9700 §4.1.3).

    A native app (RFC 8252 §7): a claimed https URI (§7.2), a loopback URI on ``127.0.0.1`` or
    ``[::1]`` (§7.3; its port is not compared at ``/authorize``, the app listens on whatever
    port it got), or a private-use scheme in reverse-domain form with one slash and no
    authority (§7.1: ``cn.gov.zj.zlb:/oauth2redirect``). ``localhost`` is refused (§8.3), and so
    is any scheme without a dot (``javascript:``, ``data:``, ``file:``, a bare ``myapp:``: §7.1
    asks for a domain the app's publisher controls, so two apps do not claim one scheme).
    """
    if application_type == "web":
        return check_absolute_url(value, what=what)
    scheme, colon, rest = value.partition(":")
    if colon and scheme not in ("http", "https"):
        return _check_private_use(value, scheme, rest, what=what)
    check_absolute_url(value, what=what)
    parts = urlsplit(value)
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1"):
        raise ValueError(
            f"{what} of a native app on loopback must name 127.0.0.1 or [::1], not "
            f"{parts.hostname} (RFC 8252 §7.3; §8.3 recommends against localhost)"
        )
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"{what} has an invalid port") from None
    return value


def _check_private_use(value: str, scheme: str, rest: str, *, what: str) -> str:
    """A private-use redirect URI (RFC 8252 §7.1): reverse-domain scheme, ``:/`` and a path."""
    if any(ch.isspace() for ch in value) or "*" in value:
        raise ValueError(f"{what} must not contain whitespace or wildcards")
    if not is_private_use_scheme(scheme):
        raise ValueError(
            f"{what}: the scheme {scheme[:40]!r} is not a private-use scheme in reverse-domain "
            "form (RFC 8252 §7.1, e.g. cn.gov.zj.zlb:/oauth2redirect: lower case, at least one "
            "dot; javascript:, data:, file: and the like are refused)"
        )
    if "#" in rest:
        raise ValueError(f"{what} must not contain a fragment")
    if _PRIVATE_USE_REST.fullmatch(rest) is None:
        raise ValueError(
            f"{what}: a private-use scheme is followed by one slash and a path, with no "
            f"authority (RFC 8252 §7.1: {scheme}:/oauth2redirect)"
        )
    if _DOT_SEGMENT.search(rest.partition("?")[0]):
        raise ValueError(f"{what} must not contain dot segments")
    return value


# --- URLs the gateway itself contacts (THREAT_MODEL rows 1 and 6) --------------------------------

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: NAT64's well-known prefix (RFC 6052 §2.1): ``64:ff9b::127.0.0.1`` is 127.0.0.1 behind a
#: translator.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped (RFC 4291 §2.5.5.2), the
    deprecated IPv4-compatible form (§2.5.5.1), 6to4 (RFC 3056) or NAT64 (RFC 6052)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    packed = int(address)
    if address in _NAT64 or (packed >> 32 == 0 and packed > 1):
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return None


def is_local_address(address: IpAddress) -> bool:
    """Whether a connection to ``address`` stays on the gateway's own machine or link: loopback
    (127.0.0.0/8, ``::1``), link-local (169.254.0.0/16, where clouds serve instance metadata;
    ``fe80::/10``) or unspecified (``0.0.0.0`` and ``::`` reach the local host), also when
    written inside an IPv6 address (:func:`_embedded_ipv4`).

    Private ranges (10/8, RFC 1918) are not refused: a province's IdP may well sit in the same
    cluster as the gateway; what is refused is the node's and the pod's own inside.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and is_local_address(embedded):
            return True
    return address.is_loopback or address.is_link_local or address.is_unspecified


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any spelling the C library's ``inet_aton`` (and so ``getaddrinfo``)
    accepts: one to four parts, each decimal, octal (``0177``) or hex (``0x7f``), the last part
    filling the remaining bytes (``127.1``, ``2130706433``)."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.match(part) for part in parts):
        return None
    *leading, last = (_ipv4_part(part) for part in parts)
    if any(n > 0xFF for n in leading) or last >= 1 << (8 * (5 - len(parts))):
        return None
    value = last
    for index, byte in enumerate(leading):
        value |= byte << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _ipv4_part(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    return int(part, 8 if part.startswith("0") else 10)


def _normalised_host(host: str) -> str:
    # IDNA (UTS #46) maps full-width digits and the ideographic full stop to ASCII, so
    # ``１２７。０。０。１`` would reach 127.0.0.1: compare what the resolver will be asked.
    folded = unicodedata.normalize("NFKC", host).replace("\u3002", ".").lower()
    return folded.rstrip(".")


def host_address(host: str) -> IpAddress | None:
    """The address ``host`` (a URL's host, without brackets) spells literally, in any spelling
    a resolver accepts, or ``None`` for a name. An IPv6 zone (``fe80::1%25eth0``) is kept."""
    name = _normalised_host(host)
    try:
        return ipaddress.ip_address(name.replace("%25", "%", 1))
    except ValueError:
        return _inet_aton(name)


def is_local_host(host: str) -> bool:
    """Whether a URL's host names the local machine or link without asking DNS: ``localhost``
    and its subdomains (RFC 6761 §6.3), or a literal :func:`is_local_address`. What a name
    resolves to is checked when connecting (``gateway.outbound``)."""
    name = _normalised_host(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = host_address(name)
    return address is not None and is_local_address(address)


def check_outbound_url(
    value: str, *, what: str, insecure_allow_http: bool, allow_query: bool = True
) -> str:
    """A URL the gateway itself will contact on a registration's behalf: a region's issuer and
    endpoints, a portal's back-channel logout URI, a ``sector_identifier_uri``.

    :func:`check_absolute_url`, and then, unless the development switch ``insecure_allow_http``
    is on: https only (OpenID Connect Discovery §3, Back-Channel Logout §2.2, Dynamic Client
    Registration §2 for ``sector_identifier_uri``) and a host that is not loopback or
    link-local (:func:`is_local_host`), so a tenant cannot make the gateway call its own
    cluster's inside (THREAT_MODEL row 1).
    """
    if not insecure_allow_http and urlsplit(value).scheme != "https":
        raise ValueError(f"{what} must use https")
    check_absolute_url(value, what=what, allow_query=allow_query)
    if insecure_allow_http:
        return value
    parts = urlsplit(value)
    if is_local_host(parts.hostname or ""):
        raise ValueError(
            f"{what} must not name a loopback or link-local host ({parts.hostname}): "
            "the gateway does not call its own machine or cluster link on a registration's behalf"
        )
    return value


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
