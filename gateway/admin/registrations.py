"""Regions and portals as the admin API serves them: every call made by one principal.

Protocol-free (no Flask): the views parse the request, call one method here and render. Owners
are checked against what the store holds now, and the write or delete that follows names the
revision that was checked (``expected_revision``), so a concurrent change answers 409 instead
of slipping between the check and the write (THREAT_MODEL row 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.admin.access import (
    Principal,
    Role,
    claimed_owner,
    field_errors,
    levels_above_ceiling,
    may_delete,
    may_replace,
    may_see,
    resource_of,
)
from gateway.errors import (
    InvalidDocument,
    ManagedByAnother,
    RegistrationChanged,
    RegistrationNotFound,
    RegistrationTaken,
)
from gateway.registry import (
    AuthMethod,
    Level,
    ManagedBy,
    Portal,
    Region,
    Registered,
    Registry,
    Stored,
    hash_secret,
    new_client_secret,
    pairwise_sector_errors,
)
from gateway.store.contract import RevisionConflictError
from tongxing_api.vocabulary import SECRET_AUTH_METHODS

M = TypeVar("M", bound=BaseModel)
MIN_CLIENT_SECRET_LENGTH: Final = 32


@dataclass(frozen=True)
class PortalWritten:
    """A portal after a PUT, and its client secret when this call set it (shown once)."""

    portal: Portal
    created: bool
    client_secret: str | None


def _validate(model: type[M], data: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidDocument(field_errors(error)) from None


def _key_matches(data: dict[str, Any], name: str, key: str) -> None:
    if data.setdefault(name, key) != key:
        raise InvalidDocument(
            [{"field": name, "message": f"must equal the key in the URL ({key})"}]
        )


def _owner(stored: Stored[Region] | Stored[Portal] | None) -> ManagedBy | None:
    return None if stored is None else stored.value.managed_by


class Registrations:
    """The registry, as one principal may see and change it.

    ``ceiling_for`` gives the highest level a region may vouch for (the platform's settings).
    """

    def __init__(self, registry: Registry, ceiling_for: Callable[[str], Level]) -> None:
        self._registry = registry
        self._ceiling_for = ceiling_for

    # --- regions -----------------------------------------------------------------------------

    def regions(self, principal: Principal) -> list[Region]:
        """Every region the principal may see (an operator: only those it manages)."""
        return [r for r in self._registry.regions() if may_see(principal, r.managed_by, None)]

    def region(self, principal: Principal, code: str, query: Mapping[str, str]) -> Region:
        """One region; 403 for an operator when another owner manages it."""
        return self._readable(principal, self._registry.stored_region(code), query, "region", code)

    def put_region(
        self, principal: Principal, code: str, data: Mapping[str, Any], now: datetime
    ) -> tuple[Region, bool]:
        """Create or replace a region (and whether it was created).

        400 for a bad document or an ``acr_mapping`` level above the region's ceiling; 409
        ``registration_taken`` when another owner manages the code.
        """
        document = dict(data)
        _key_matches(document, "code", code)
        stored = self._registry.stored_region(code)
        document["managed_by"] = self._owner_for_put(
            principal, document, stored, "region", "code", code
        )
        region = _validate(Region, document)
        above = levels_above_ceiling(region.acr_mapping, self._ceiling_for(code))
        if above:
            raise InvalidDocument(above)
        try:
            return self._registry.put_region(region, now, expected_revision=_revision(stored))
        except RevisionConflictError:
            raise RegistrationChanged("region", "code", code) from None

    def delete_region(self, principal: Principal, code: str, query: Mapping[str, str]) -> None:
        """Delete a region: 404 if there is none, 409 when an operator does not own it."""
        stored = self._registry.stored_region(code)
        expected = self._check_delete(principal, stored, query, "region", "code", code)
        try:
            deleted = self._registry.delete_region(code, expected_revision=expected)
        except RevisionConflictError:
            raise RegistrationChanged("region", "code", code) from None
        if not deleted:
            raise RegistrationNotFound("region", code)

    # --- portals -----------------------------------------------------------------------------

    def portals(self, principal: Principal) -> list[Portal]:
        """Every portal the principal may see (an operator: only those it manages)."""
        return [p for p in self._registry.portals() if may_see(principal, p.managed_by, None)]

    def portal(self, principal: Principal, client_id: str, query: Mapping[str, str]) -> Portal:
        """One portal; 403 for an operator when another owner manages it."""
        stored = self._registry.stored_portal(client_id)
        return self._readable(principal, stored, query, "portal", client_id)

    def put_portal(
        self, principal: Principal, client_id: str, data: Mapping[str, Any], now: datetime
    ) -> PortalWritten:
        """Create or replace a portal.

        A secret-authenticated portal keeps its secret across replacements unless
        ``client_secret`` is given; a new one is generated when it has none. Only its hash is
        stored. 400 (field ``redirect_uris``) for a pairwise portal whose redirect URIs are on
        several hosts (OIDC Core §8.1, :func:`~gateway.registry.pairwise_sector_errors`). 409
        ``registration_taken`` when another owner manages the client id, decided before
        anything of the stored portal (its secret's hash) is used.
        """
        document = dict(data)
        _key_matches(document, "client_id", client_id)
        document.pop("client_secret_hash", None)
        secret = document.pop("client_secret", None)
        if secret is not None and (
            not isinstance(secret, str) or len(secret) < MIN_CLIENT_SECRET_LENGTH
        ):
            raise InvalidDocument(
                [
                    {
                        "field": "client_secret",
                        "message": f"at least {MIN_CLIENT_SECRET_LENGTH} characters",
                    }
                ]
            )
        stored = self._registry.stored_portal(client_id)
        document["managed_by"] = self._owner_for_put(
            principal, document, stored, "portal", "client_id", client_id
        )
        method = document.get("token_endpoint_auth_method", AuthMethod.CLIENT_SECRET_BASIC.value)
        issued: str | None = None
        # Validation comes later: a method that is not a string (a list, say) is simply not
        # a secret method here, and the model refuses it with a field message.
        if isinstance(method, str) and method in SECRET_AUTH_METHODS:
            if secret is None and stored is not None and stored.value.client_secret_hash:
                document["client_secret_hash"] = stored.value.client_secret_hash
            else:
                issued = secret or new_client_secret()
                document["client_secret_hash"] = hash_secret(issued)
        portal = _validate(Portal, document)
        mixed_sector = pairwise_sector_errors(portal)
        if mixed_sector:
            raise InvalidDocument(mixed_sector)
        try:
            written, created = self._registry.put_portal(
                portal, now, expected_revision=_revision(stored)
            )
        except RevisionConflictError:
            raise RegistrationChanged("portal", "client_id", client_id) from None
        return PortalWritten(written, created, issued)

    def delete_portal(self, principal: Principal, client_id: str, query: Mapping[str, str]) -> None:
        """Delete a portal: 404 if there is none, 409 when an operator does not own it."""
        stored = self._registry.stored_portal(client_id)
        expected = self._check_delete(principal, stored, query, "portal", "client_id", client_id)
        try:
            deleted = self._registry.delete_portal(client_id, expected_revision=expected)
        except RevisionConflictError:
            raise RegistrationChanged("portal", "client_id", client_id) from None
        if not deleted:
            raise RegistrationNotFound("portal", client_id)

    # --- owners --------------------------------------------------------------------------------

    @staticmethod
    def _owner_for_put(
        principal: Principal,
        document: Mapping[str, Any],
        stored: Stored[Region] | Stored[Portal] | None,
        what: str,
        key_field: str,
        key: str,
    ) -> dict[str, Any]:
        owner = claimed_owner(principal, document.get("managed_by"), _owner(stored))
        if stored is not None and not may_replace(principal, _owner(stored), owner):
            raise RegistrationTaken(what, key_field, key)
        return owner.model_dump(mode="json")

    @staticmethod
    def _resource(principal: Principal, query: Mapping[str, str]) -> ManagedBy | None:
        return resource_of(principal, query) if principal.role is Role.OPERATOR else None

    def _readable(
        self,
        principal: Principal,
        stored: Stored[Registered] | None,
        query: Mapping[str, str],
        what: str,
        key: str,
    ) -> Registered:
        resource = self._resource(principal, query)
        if stored is None:
            raise RegistrationNotFound(what, key)
        if not may_see(principal, stored.value.managed_by, resource):
            raise ManagedByAnother(what, key)
        return stored.value

    def _check_delete(
        self,
        principal: Principal,
        stored: Stored[Region] | Stored[Portal] | None,
        query: Mapping[str, str],
        what: str,
        key_field: str,
        key: str,
    ) -> int | None:
        """The revision to delete (``None``: whatever is there, the platform's break-glass)."""
        resource = self._resource(principal, query)
        if stored is None:
            raise RegistrationNotFound(what, key)
        if not may_delete(principal, _owner(stored), resource):
            raise RegistrationTaken(what, key_field, key)
        return None if principal.role is Role.PLATFORM else stored.revision


def _revision(stored: Stored[Region] | Stored[Portal] | None) -> int:
    """The revision a write must find: the one read, or 0 (create only) when there was none."""
    return 0 if stored is None else stored.revision
