"""Regions and portals as the admin API serves them: every call made by one principal.

Protocol-free (no Flask): the views parse the request, call one method here and render. Owners
are checked against what the store holds now, and the write or delete that follows names the
revision that was checked (``expected_revision``), so a concurrent change answers 409 instead
of slipping between the check and the write (THREAT_MODEL row 1).

Every URL the gateway will itself call for a registration (a region's ``issuer``, a portal's
``backchannel_logout_uri`` and ``sector_identifier_uri``) is checked here against the gateway's
:class:`~gateway.outbound.OutboundPolicy` (https, no loopback or link-local host, unless the
development switch ``insecure_allow_http`` is on); the model alone cannot, since it does not
know the setting. A ``sector_identifier_uri`` is fetched and must list every redirect URI.

A pairwise portal's sector decides every ``sub`` it sees (OIDC Core §8.1): changing the sector
of a registered pairwise portal (a new ``sector_identifier_uri`` host, or a redirect host when it
has none) gives each of its users a new ``sub`` at that portal, and the portal loses them. Only
the platform role may do that, on purpose (a 400 on the field for anyone else): on a portal it
registered, by a PUT; on one an operator manages, by deleting the registration (its break-glass)
so that the operator registers the portal anew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

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
    FieldError,
    InvalidDocument,
    ManagedByAnother,
    RegistrationChanged,
    RegistrationNotFound,
    RegistrationTaken,
)
from gateway.outbound import FetchLimits, OutboundFetchError, OutboundPolicy, fetch_json
from gateway.registry import (
    PAGE_DEFAULT,
    AuthMethod,
    Level,
    ManagedBy,
    Page,
    Portal,
    Region,
    Registered,
    Registry,
    Stored,
    hash_secret,
    new_client_secret,
    pairwise_sector_errors,
    sector_document_errors,
)
from gateway.store.contract import RevisionConflictError
from tongxing_api.vocabulary import SECRET_AUTH_METHODS

if TYPE_CHECKING:
    from gateway.settings import Settings

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

    ``ceiling_for`` gives the highest level a region may vouch for (the platform's settings);
    ``outbound`` what the gateway may call for a registration (by default: https, no loopback
    or link-local host); ``sector_limits`` bounds the fetch of a ``sector_identifier_uri``.
    """

    def __init__(
        self,
        registry: Registry,
        ceiling_for: Callable[[str], Level],
        outbound: OutboundPolicy | None = None,
        *,
        sector_limits: FetchLimits | None = None,
    ) -> None:
        self._registry = registry
        self._ceiling_for = ceiling_for
        self._outbound = outbound if outbound is not None else OutboundPolicy()
        self._sector_limits = sector_limits if sector_limits is not None else FetchLimits()

    @classmethod
    def for_settings(cls, registry: Registry, settings: Settings) -> Registrations:
        """The registrations under the gateway's settings: its level ceilings and its outbound
        policy (``insecure_allow_http``, ``outbound_ca_file``)."""
        return cls(registry, settings.ceiling_for, OutboundPolicy.from_settings(settings))

    # --- regions -----------------------------------------------------------------------------

    def regions(
        self, principal: Principal, *, after: str | None = None, limit: int = PAGE_DEFAULT
    ) -> Page[Region]:
        """One page of the regions the principal may see, by code (an operator: only those it
        manages, filtered in the store's query; see :meth:`_page_owner`)."""
        page = self._registry.regions_page(
            after=after, limit=limit, principal=self._page_owner(principal)
        )
        return Page(
            [r for r in page.items if may_see(principal, r.managed_by, None)], page.next_after
        )

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
        above = [
            *self._url_errors({"issuer": region.issuer}, allow_query=False),
            *levels_above_ceiling(region.acr_mapping, self._ceiling_for(code)),
        ]
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

    def portals(
        self, principal: Principal, *, after: str | None = None, limit: int = PAGE_DEFAULT
    ) -> Page[Portal]:
        """One page of the portals the principal may see, by client id, as :meth:`regions`."""
        page = self._registry.portals_page(
            after=after, limit=limit, principal=self._page_owner(principal)
        )
        return Page(
            [p for p in page.items if may_see(principal, p.managed_by, None)], page.next_after
        )

    @staticmethod
    def _page_owner(principal: Principal) -> str | None:
        """Whose registrations a listing reads: an operator's own (``managed_by.principal``,
        in the query: thousands of others' are never loaded), everything for other roles.
        :func:`~gateway.admin.access.may_see` is applied to the page as well, so the store's
        filter and the access rule must both let a registration through (THREAT_MODEL row 1).
        """
        return principal.name if principal.role is Role.OPERATOR else None

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
        several hosts without a ``sector_identifier_uri`` (OIDC Core §8.1,
        :func:`~gateway.registry.pairwise_sector_errors`); 400 on the field for a URL the
        gateway would call that the outbound policy refuses, a ``sector_identifier_uri`` whose
        document does not list every redirect URI, or a changed pairwise sector asked for by
        anyone but the platform (see the module's docstring); 400 (field ``client_secret``) for
        a secret given to a native app, and on the model's rules for one that is not public
        (RFC 8252 §8.5). 409
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
        native = document.get("application_type") == "native"
        if native and secret is not None:
            raise InvalidDocument(
                [
                    {
                        "field": "client_secret",
                        "message": (
                            "a native app gets no client secret: anyone can read it out of "
                            "the app (RFC 8252 §8.5); it uses PKCE instead"
                        ),
                    }
                ]
            )
        stored = self._registry.stored_portal(client_id)
        document["managed_by"] = self._owner_for_put(
            principal, document, stored, "portal", "client_id", client_id
        )
        # A native app is public unless it names a method (which the model then refuses).
        default = AuthMethod.NONE if native else AuthMethod.CLIENT_SECRET_BASIC
        method = document.get("token_endpoint_auth_method", default.value)
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
        refused = [
            *self._url_errors(
                {
                    "backchannel_logout_uri": portal.backchannel_logout_uri,
                    "sector_identifier_uri": portal.sector_identifier_uri,
                }
            ),
            *pairwise_sector_errors(portal),
            *_sector_change_errors(principal, stored, portal),
        ]
        if refused:
            raise InvalidDocument(refused)
        if portal.sector_identifier_uri is not None:
            self._check_sector_document(portal, portal.sector_identifier_uri)
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

    # --- URLs the gateway calls ----------------------------------------------------------------

    def _url_errors(
        self, urls: Mapping[str, str | None], *, allow_query: bool = True
    ) -> list[FieldError]:
        """A field error for each URL the outbound policy refuses (THREAT_MODEL row 1)."""
        errors: list[FieldError] = []
        for field, url in urls.items():
            if url is None:
                continue
            try:
                self._outbound.check_url(url, what=field, allow_query=allow_query)
            except ValueError as error:
                errors.append({"field": field, "message": str(error)})
        return errors

    def _check_sector_document(self, portal: Portal, url: str) -> None:
        """Fetch the ``sector_identifier_uri`` (OIDC Core §8.1; Dynamic Client Registration §5)
        and refuse the portal unless the JSON array there lists every redirect URI of it.

        The fetch goes through the outbound session (the resolved address is checked too),
        follows no redirect, and is bounded by ``sector_limits`` (3 s, 64 KiB by default).
        """
        try:
            with self._outbound.session() as session:
                document = fetch_json(session, url, limits=self._sector_limits)
        except OutboundFetchError as error:
            raise InvalidDocument(
                [{"field": "sector_identifier_uri", "message": f"sector_identifier_uri {error}"}]
            ) from None
        errors = sector_document_errors(portal, document)
        if errors:
            raise InvalidDocument(errors)

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


def _sector_change_errors(
    principal: Principal, stored: Stored[Portal] | None, portal: Portal
) -> list[FieldError]:
    """A field error when anyone but the platform changes a registered pairwise portal's sector.

    OIDC Core §8.1: the pairwise ``sub`` is computed for the sector, so a new sector gives
    every user of the portal a new ``sub`` there. The tenant's own change of host is then a
    platform decision (a migration of the portal's users), never a side effect of a PUT.
    """
    if stored is None or principal.role is Role.PLATFORM:
        return []
    before = stored.value
    if before.subject_type != "pairwise" or portal.subject_type != "pairwise":
        return []
    if before.sector_identifier == portal.sector_identifier:
        return []
    named = before.sector_identifier_uri is not None or portal.sector_identifier_uri is not None
    return [
        {
            "field": "sector_identifier_uri" if named else "redirect_uris",
            "message": (
                f"this changes the portal's pairwise sector from {before.sector_identifier} to "
                f"{portal.sector_identifier}, and with it every sub the portal sees "
                "(OIDC Core §8.1): only the platform may change a registered sector"
            ),
        }
    ]


def _revision(stored: Stored[Region] | Stored[Portal] | None) -> int:
    """The revision a write must find: the one read, or 0 (create only) when there was none."""
    return 0 if stored is None else stored.revision
