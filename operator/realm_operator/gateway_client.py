"""The gateway's admin API v1, as the operator uses it: regions and portals, by key.

``PUT`` creates or replaces (201 or 200); ``DELETE`` answers 204, or 404 when there was nothing,
which is just as good. Short timeouts: a gateway that does not answer in seconds is down, and the
reconciler tries again soon. The operator never imports the gateway: this is the whole contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote

import requests
from pydantic import SecretStr


class GatewayError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class GatewayUnavailableError(GatewayError):
    """The gateway cannot be reached, times out or answers 5xx."""


class GatewayUnauthorizedError(GatewayError):
    """The gateway refuses the admin token."""


class GatewayRejectedError(GatewayError):
    """The gateway refused a document (400): ``fields`` says what is wrong, field by field."""

    def __init__(self, message: str, fields: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.fields = fields


@dataclass
class GatewayClient:
    url: str
    token: SecretStr = field(repr=False)
    timeout: float = 5.0
    issuer_override: str | None = None
    _issuer: str | None = field(default=None, init=False, repr=False)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.url.rstrip('/')}{path}"
        try:
            response = requests.request(
                method,
                url,
                json=body,
                timeout=self.timeout,
                allow_redirects=False,
                headers={"Authorization": f"Bearer {self.token.get_secret_value()}"},
            )
        except requests.RequestException as exc:
            raise GatewayUnavailableError(f"cannot reach the gateway at {self.url}") from exc
        if response.status_code >= 500:
            raise GatewayUnavailableError(
                f"the gateway answered {response.status_code} to {method}"
            )
        if response.status_code == 401:
            raise GatewayUnauthorizedError(f"the gateway at {self.url} refused the admin token")
        return response

    @staticmethod
    def _rejected(response: requests.Response, what: str) -> GatewayRejectedError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        fields = body.get("fields") if isinstance(body, dict) else None
        fields = fields if isinstance(fields, list) else []
        details = "; ".join(f"{f.get('field')}: {f.get('message')}" for f in fields)
        message = f"the gateway refused {what} ({response.status_code})"
        return GatewayRejectedError(f"{message}: {details}" if details else message, fields)

    def _get(self, path: str, what: str) -> dict[str, Any] | None:
        response = self._call("GET", path)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._rejected(response, what)
        return cast(dict[str, Any], response.json())

    def _put(self, path: str, document: dict[str, Any], what: str) -> tuple[dict[str, Any], bool]:
        response = self._call("PUT", path, document)
        if response.status_code not in (200, 201):
            raise self._rejected(response, what)
        return cast(dict[str, Any], response.json()), response.status_code == 201

    def _delete(self, path: str, what: str) -> bool:
        response = self._call("DELETE", path)
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
            response = self._call("GET", "/.well-known/openid-configuration")
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

    def region(self, code: str) -> dict[str, Any] | None:
        return self._get(f"/admin/v1/regions/{quote(code)}", f"region {code}")

    def put_region(self, code: str, document: dict[str, Any]) -> bool:
        """Register or replace a region; True if it was created."""
        return self._put(f"/admin/v1/regions/{quote(code)}", document, f"region {code}")[1]

    def delete_region(self, code: str) -> bool:
        return self._delete(f"/admin/v1/regions/{quote(code)}", f"deleting region {code}")

    def portal(self, client_id: str) -> dict[str, Any] | None:
        return self._get(f"/admin/v1/portals/{quote(client_id)}", f"portal {client_id}")

    def put_portal(self, client_id: str, document: dict[str, Any]) -> bool:
        """Register or replace a portal; True if it was created."""
        path = f"/admin/v1/portals/{quote(client_id)}"
        return self._put(path, document, f"portal {client_id}")[1]

    def delete_portal(self, client_id: str) -> bool:
        path = f"/admin/v1/portals/{quote(client_id)}"
        return self._delete(path, f"deleting portal {client_id}")
