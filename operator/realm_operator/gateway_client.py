"""The gateway's admin API v1, as the operator uses it: regions and portals, by key.

``PUT`` creates or replaces (201 or 200); ``DELETE`` answers 204, or 404 when there was nothing,
which is just as good. Short timeouts: a gateway that does not answer in seconds is down, and the
reconciler tries again soon. The operator never imports the gateway: this is the whole contract.

The operator calls with its own credential (role ``operator``) and says which resource it acts
for: in ``managed_by`` with every ``PUT``, in the query (``kind``, ``namespace``, ``name``,
``uid``) of a ``GET`` or ``DELETE`` of one registration. The gateway answers 409
``registration_taken`` for a registration another owner holds, and 403 for one this credential
may not see
(:class:`GatewayConflictError`, :class:`GatewayForbiddenError`). Errors carry the HTTP status and a
fixed text; of a body only the gateway's own field messages are kept (it is ours), cut short.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote

import requests
from pydantic import SecretStr

# The resource a call is made for (kind, namespace, name, uid): the query of a GET or DELETE.
Owner = Mapping[str, str] | None
FIELD_TEXT_LIMIT = 160  # characters of one field message of the gateway
FIELDS_LIMIT = 4  # field messages kept in an error


class GatewayError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class GatewayUnavailableError(GatewayError):
    """The gateway cannot be reached, times out or answers 5xx."""


class GatewayUnauthorizedError(GatewayError):
    """The gateway refuses the admin token."""


class GatewayRefusalError(GatewayError):
    """The gateway answered 4xx: ``fields`` says what is wrong, field by field."""

    def __init__(self, message: str, fields: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.fields = fields


class GatewayRejectedError(GatewayRefusalError):
    """The gateway refused a document (400 and other 4xx): a new spec is needed."""


class GatewayConflictError(GatewayRefusalError):
    """409: the registration belongs to another owner (``registration_taken``), or changed
    between the gateway's read and its write."""


class GatewayForbiddenError(GatewayRefusalError):
    """403: this credential may not read or change that registration (RFC 6750 §3.1
    ``insufficient_scope``), e.g. because another owner manages it."""


def _clean(text: Any) -> str:
    """One line of at most :data:`FIELD_TEXT_LIMIT` printable characters."""
    printable = "".join(
        ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else " " for ch in str(text)
    )
    return " ".join(printable.split())[:FIELD_TEXT_LIMIT]


@dataclass
class GatewayClient:
    url: str
    token: SecretStr = field(repr=False)
    timeout: float = 5.0
    issuer_override: str | None = None
    _issuer: str | None = field(default=None, init=False, repr=False)

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        body: dict[str, Any] | None = None,
        owner: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = f"{self.url.rstrip('/')}{path}"
        try:
            response = requests.request(
                method,
                url,
                params=dict(owner) if owner else None,
                json=body,
                timeout=self.timeout,
                allow_redirects=False,
                headers={"Authorization": f"Bearer {self.token.get_secret_value()}"},
            )
        except requests.RequestException:
            raise GatewayUnavailableError(f"cannot reach the gateway at {self.url}") from None
        if response.status_code >= 500:
            raise GatewayUnavailableError(
                f"the gateway answered {response.status_code} to {method} {what}"
            )
        if response.status_code == 401:
            raise GatewayUnauthorizedError(f"the gateway at {self.url} refused the admin token")
        if response.status_code == 409:
            raise self._rejected(response, what, GatewayConflictError)
        if response.status_code == 403:
            raise self._rejected(response, what, GatewayForbiddenError)
        return response

    @staticmethod
    def _rejected(
        response: requests.Response,
        what: str,
        kind: type[GatewayRefusalError] = GatewayRejectedError,
    ) -> GatewayRefusalError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        found = body.get("fields") if isinstance(body, dict) else None
        fields = [
            {"field": _clean(item.get("field")), "message": _clean(item.get("message"))}
            for item in (found if isinstance(found, list) else [])[:FIELDS_LIMIT]
            if isinstance(item, dict)
        ]
        details = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        message = f"the gateway refused {what} ({response.status_code})"
        return kind(f"{message}: {details}" if details else message, fields)

    @staticmethod
    def _json(response: requests.Response, what: str) -> dict[str, Any]:
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise GatewayUnavailableError(f"the gateway's answer about {what} is not a document")
        return cast(dict[str, Any], document)

    def _get(self, path: str, what: str, owner: Owner) -> dict[str, Any] | None:
        response = self._call("GET", path, what, owner=owner)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._rejected(response, what)
        return self._json(response, what)

    def _put(self, path: str, document: dict[str, Any], what: str) -> bool:
        response = self._call("PUT", path, what, document)
        if response.status_code not in (200, 201):
            raise self._rejected(response, what)
        return response.status_code == 201

    def _delete(self, path: str, what: str, owner: Owner) -> bool:
        response = self._call("DELETE", path, what, owner=owner)
        if response.status_code == 404:
            return False
        if response.status_code != 204:
            raise self._rejected(response, what)
        return True

    def issuer(self) -> str:
        """The gateway's public issuer: configured, or read once from its discovery document."""
        if self.issuer_override:
            return self.issuer_override.rstrip("/")
        if self._issuer is None:
            response = self._call("GET", "/.well-known/openid-configuration", "discovery")
            try:
                issuer = response.json()["issuer"] if response.status_code == 200 else None
            except (ValueError, KeyError, TypeError):
                issuer = None
            if not isinstance(issuer, str):
                raise GatewayUnavailableError(
                    f"the gateway at {self.url} has no discovery document"
                )
            self._issuer = issuer.rstrip("/")
        return self._issuer

    def region(self, code: str, owner: Owner = None) -> dict[str, Any] | None:
        """The region, as ``owner`` (the resource asking) may see it; 403 if another's."""
        return self._get(f"/admin/v1/regions/{quote(code)}", f"region {code}", owner)

    def put_region(self, code: str, document: dict[str, Any]) -> bool:
        """Register or replace a region; True if it was created."""
        return self._put(f"/admin/v1/regions/{quote(code)}", document, f"region {code}")

    def delete_region(self, code: str, owner: Owner = None) -> bool:
        """Delete the region ``owner`` manages; False if there was none, 409 if another's."""
        return self._delete(f"/admin/v1/regions/{quote(code)}", f"deleting region {code}", owner)

    def portal(self, client_id: str, owner: Owner = None) -> dict[str, Any] | None:
        """The portal, as ``owner`` (the resource asking) may see it; 403 if another's."""
        return self._get(f"/admin/v1/portals/{quote(client_id)}", f"portal {client_id}", owner)

    def put_portal(self, client_id: str, document: dict[str, Any]) -> bool:
        """Register or replace a portal; True if it was created."""
        path = f"/admin/v1/portals/{quote(client_id)}"
        return self._put(path, document, f"portal {client_id}")

    def delete_portal(self, client_id: str, owner: Owner = None) -> bool:
        """Delete the portal ``owner`` manages; False if there was none, 409 if another's."""
        path = f"/admin/v1/portals/{quote(client_id)}"
        return self._delete(path, f"deleting portal {client_id}", owner)
