"""Who may do what in the admin API: principals, roles, owners of registrations, level ceilings.

Protocol-free (no Flask), so every decision here is tested without HTTP; the views in
:mod:`gateway.admin.api` only read the bearer token and the body and render what comes back.
THREAT_MODEL rows 1 and 2: a tenant (through the operator) changes only the registrations it
owns, and the platform, not a region, sets the highest level a region may vouch for.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pydantic import ValidationError

from gateway.errors import FieldError, InvalidDocument, RoleRefused
from gateway.registry import ManagedBy
from gateway.settings import (
    MIN_SECRET_LENGTH,
    OPERATOR_PRINCIPAL,
    PLATFORM_PRINCIPAL,
    Settings,
)
from tongxing_api.vocabulary import OWNER_FIELDS, RESOURCE_FIELDS, Level, above


class Role(StrEnum):
    """The roles of the admin API, strongest first."""

    PLATFORM = "platform"
    OPERATOR = "operator"
    READER = "reader"


ROLE_DESCRIPTIONS: Final[Mapping[Role, str]] = {
    Role.PLATFORM: (
        "the platform's administrators: every operation; may delete any registration "
        "(break-glass) but replaces only those it owns or that have no owner"
    ),
    Role.OPERATOR: (
        "the operator of this release: reads, writes and deletes only the regions and portals it "
        "manages, each for one custom resource named in managed_by; no policies"
    ),
    Role.READER: "read-only: regions, portals and the active policy set; no writes",
}


class Operation(StrEnum):
    """What a request does, as far as roles are concerned."""

    READ_REGISTRATIONS = "read registrations"
    WRITE_REGISTRATIONS = "write registrations"
    READ_POLICIES = "read policies"
    RELOAD_POLICIES = "reload policies"
    RESET_SECOND_FACTOR = "reset second factors"


#: The one table of who may do what; the views and the OpenAPI document (``x-roles``) read it.
ALLOWED: Final[Mapping[Operation, frozenset[Role]]] = {
    Operation.READ_REGISTRATIONS: frozenset({Role.PLATFORM, Role.OPERATOR, Role.READER}),
    Operation.WRITE_REGISTRATIONS: frozenset({Role.PLATFORM, Role.OPERATOR}),
    Operation.READ_POLICIES: frozenset({Role.PLATFORM, Role.READER}),
    Operation.RELOAD_POLICIES: frozenset({Role.PLATFORM}),
    # The help desk's reset of a person's factor (NIST SP 800-63B §6.1.2.3): the platform only;
    # the operator acts for tenants and never for a person, a reader changes nothing.
    Operation.RESET_SECOND_FACTOR: frozenset({Role.PLATFORM}),
}


def roles_for(operation: Operation) -> list[str]:
    """The roles allowed ``operation``, strongest first (the OpenAPI ``x-roles``)."""
    return [role.value for role in Role if role in ALLOWED[operation]]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a name (recorded as ``managed_by.principal``) and a role."""

    name: str
    role: Role


# --- refusals (the classes live in gateway.errors: InvalidToken, RoleRefused, ...) --------------


def field_errors(error: ValidationError, prefix: str = "") -> list[FieldError]:
    """Pydantic's errors as the API's field list (never the input values)."""
    head = [prefix] if prefix else []
    return [
        {"field": ".".join([*head, *(str(part) for part in item["loc"])]), "message": item["msg"]}
        for item in error.errors(include_input=False, include_url=False)
    ]


# --- principals ---------------------------------------------------------------------------------


class Principals:
    """The admin API's principals, found by the SHA-256 of their bearer token.

    Every known digest is compared, in constant time, whatever matched before, so the time an
    answer takes says nothing about which principal (if any) a guessed token came close to.
    """

    def __init__(self, principals: Iterable[tuple[str, Principal]]) -> None:
        self._by_digest = [(bytes.fromhex(digest), principal) for digest, principal in principals]

    @classmethod
    def from_settings(cls, settings: Settings) -> Principals:
        """``admin_token`` (platform), ``operator_token`` (operator) and ``admin_clients``."""
        known = [(_sha256(settings.admin_token.get_secret_value()), _PLATFORM)]
        if settings.operator_token is not None:
            known.append((_sha256(settings.operator_token.get_secret_value()), _OPERATOR))
        known.extend(
            (client.token_sha256, Principal(client.name, Role(client.role)))
            for client in settings.admin_clients
        )
        return cls(known)

    def authenticate(self, token: str) -> Principal | None:
        """The principal whose token this is; ``None`` for anything else.

        A token shorter than :data:`MIN_SECRET_LENGTH` never authenticates, whatever hash was
        configured for it.
        """
        if len(token) < MIN_SECRET_LENGTH:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        found: Principal | None = None
        for known, principal in self._by_digest:
            if hmac.compare_digest(digest, known):
                found = principal
        return found


_PLATFORM = Principal(PLATFORM_PRINCIPAL, Role.PLATFORM)
_OPERATOR = Principal(OPERATOR_PRINCIPAL, Role.OPERATOR)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authorize(principal: Principal, operation: Operation) -> None:
    """Raise 403 ``insufficient_scope`` unless the principal's role allows ``operation``."""
    if principal.role not in ALLOWED[operation]:
        raise RoleRefused(principal.role, operation)


# --- owners of registrations ---------------------------------------------------------------------

# What an operator names about the custom resource it acts for (RESOURCE_FIELDS: in managed_by
# of a PUT, in the query of a GET or DELETE); OWNER_FIELDS are those a GET or DELETE must name.


def _needs_resource(fields: Iterable[str]) -> InvalidDocument:
    return InvalidDocument(
        [
            {
                "field": "managed_by",
                "message": "an operator names the resource it acts for: " + ", ".join(fields),
            }
        ]
    )


def claimed_owner(principal: Principal, claimed: Any, current: ManagedBy | None) -> ManagedBy:
    """The owner a PUT by ``principal`` records, from the body's ``managed_by`` (``claimed``).

    ``principal`` always comes from the credential: one in the body is overwritten. An operator
    must name its resource (kind, namespace, name, uid); a platform caller may leave
    ``managed_by`` out, and then keeps the recorded owner if it is the caller itself (a hand edit
    of its own registration), else records just its name. ``current`` is the recorded owner.
    """
    if claimed is None and principal.role is Role.PLATFORM:
        if current is not None and current.principal == principal.name:
            return current
        return ManagedBy(principal=principal.name)
    if not isinstance(claimed, Mapping):
        if principal.role is Role.OPERATOR:
            raise _needs_resource(RESOURCE_FIELDS)
        raise InvalidDocument([{"field": "managed_by", "message": "must be an object or null"}])
    if principal.role is Role.OPERATOR:
        missing = [name for name in RESOURCE_FIELDS if not claimed.get(name)]
        if missing:
            raise _needs_resource(missing)
    try:
        return ManagedBy.model_validate({**claimed, "principal": principal.name})
    except ValidationError as error:
        raise InvalidDocument(field_errors(error, "managed_by")) from None


def may_replace(principal: Principal, current: ManagedBy | None, claimed: ManagedBy) -> bool:
    """Whether a PUT recording ``claimed`` may replace a registration owned by ``current``.

    The same owner (principal, kind, namespace, name; not the uid) may; so may the platform over
    a registration made before owners were recorded (``current`` is ``None``). Nobody else.
    """
    if current is None:
        return principal.role is Role.PLATFORM
    return current.same_owner(claimed)


def resource_of(principal: Principal, query: Mapping[str, str]) -> ManagedBy | None:
    """The resource an operator names in the query (``kind``, ``namespace``, ``name``, ``uid``)
    of a GET or DELETE of one registration; ``None`` when it names none."""
    given = {name: query[name] for name in RESOURCE_FIELDS if query.get(name)}
    if not given:
        return None
    missing = [name for name in OWNER_FIELDS if name not in given]
    if missing:
        raise _needs_resource(missing)
    try:
        return ManagedBy.model_validate({**given, "principal": principal.name})
    except ValidationError as error:
        raise InvalidDocument(field_errors(error)) from None


def may_see(principal: Principal, current: ManagedBy | None, resource: ManagedBy | None) -> bool:
    """Whether ``principal`` may read a registration owned by ``current``.

    Platform and reader see everything. An operator sees only what its principal owns, and, when
    it names a ``resource``, only that resource's.
    """
    if principal.role is not Role.OPERATOR:
        return True
    if current is None or current.principal != principal.name:
        return False
    return resource is None or current.same_owner(resource)


def may_delete(principal: Principal, current: ManagedBy | None, resource: ManagedBy | None) -> bool:
    """Whether ``principal`` may delete a registration owned by ``current``.

    The platform may delete any (break-glass cleanup). An operator only its own, and it must
    name the resource it deletes for: a Portal that lost a client id to another Portal must not
    take the winner's registration with it when it goes.
    """
    if principal.role is Role.PLATFORM:
        return True
    if current is None or current.principal != principal.name:
        return False
    if resource is None:
        raise _needs_resource(OWNER_FIELDS)
    return current.same_owner(resource)


# --- level ceilings ----------------------------------------------------------------------------


def levels_above_ceiling(acr_mapping: Mapping[str, Level], ceiling: Level) -> list[FieldError]:
    """One field error per ``acr_mapping`` entry above ``ceiling`` (THREAT_MODEL row 2)."""
    return [
        {
            "field": f"acr_mapping.{acr}",
            "message": f"{level} is above the ceiling {ceiling} the platform set for this region",
        }
        for acr, level in acr_mapping.items()
        if above(level, ceiling)
    ]
