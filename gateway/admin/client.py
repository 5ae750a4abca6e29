"""A typed client of the admin API v1 (what ``tongxing admin`` calls).

Every failure is an :class:`AdminError` whose message a person can read: the API's field-level
messages for a 400, the refused token for a 401, "not found" for a 404, the network error when
the gateway cannot be reached. The bearer token never appears in a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import requests

Kind = Literal["regions", "portals"]
#: The member of each kind's document that is its key in the URL.
KEY_FIELDS: Final[dict[Kind, str]] = {"regions": "code", "portals": "client_id"}
SINGULAR: Final[dict[Kind, str]] = {"regions": "region", "portals": "portal"}
API_PATH: Final = "/admin/v1"


@dataclass
class AdminError(Exception):
    """The admin API refused a request or could not be reached."""

    message: str
    status: int | None = None
    fields: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def explain(self) -> str:
        """The message, then one line per field the API complained about."""
        lines = [self.message]
        lines.extend(f"  {name or '(document)'}: {text}" for name, text in self.fields)
        return "\n".join(lines)


def api_base(url: str) -> str:
    """The admin API below a gateway URL; ``https://gw`` and ``https://gw/admin/v1`` both work."""
    base = url.strip().rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise AdminError(f"the admin URL must start with https:// (got {base[:80]!r})")
    if base.endswith(API_PATH):
        base = base[: -len(API_PATH)]
    return base + API_PATH


@dataclass(frozen=True)
class PutResult:
    document: dict[str, Any]
    created: bool


class AdminClient:
    """Regions and portals over HTTP, with the admin bearer token."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base = api_base(url)
        self._token = token
        self._session = session or requests.Session()
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"AdminClient({self.base!r})"

    def list_all(self, kind: Kind) -> list[dict[str, Any]]:
        body = self._call("GET", f"/{kind}", kind=kind)
        if not isinstance(body, list):
            raise AdminError(f"the admin API answered an unexpected list of {kind}")
        return [item for item in body if isinstance(item, dict)]

    def get(self, kind: Kind, key: str) -> dict[str, Any]:
        return self._object(self._call("GET", f"/{kind}/{key}", kind=kind, key=key))

    def put(self, kind: Kind, key: str, document: dict[str, Any]) -> PutResult:
        response = self._request("PUT", f"/{kind}/{key}", kind, key, document)
        return PutResult(self._object(_json(response)), response.status_code == 201)

    def delete(self, kind: Kind, key: str) -> None:
        self._request("DELETE", f"/{kind}/{key}", kind, key)

    def _call(self, method: str, path: str, *, kind: Kind, key: str | None = None) -> Any:
        return _json(self._request(method, path, kind, key))

    def _request(
        self,
        method: str,
        path: str,
        kind: Kind,
        key: str | None,
        body: dict[str, Any] | None = None,
    ) -> requests.Response:
        if key is not None and (not key or "/" in key or key in (".", "..")):
            raise AdminError(f"{key!r} is not a valid {SINGULAR[kind]} key")
        try:
            response = self._session.request(
                method,
                self.base + path,
                json=body,
                headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            raise AdminError(
                f"cannot reach the admin API at {self.base} ({type(error).__name__})"
            ) from None
        if response.status_code < 300:
            return response
        raise _refusal(response, kind, key)

    @staticmethod
    def _object(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise AdminError("the admin API answered something other than a JSON object")
        return body


def _json(response: requests.Response) -> Any:
    if response.status_code == 204:
        return None
    try:
        return response.json()
    except ValueError:
        raise AdminError(
            f"the admin API answered {response.status_code} without JSON "
            f"(is {response.url} a Tongxing gateway?)",
            response.status_code,
        ) from None


def _refusal(response: requests.Response, kind: Kind, key: str | None) -> AdminError:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    what = SINGULAR[kind] if key is None else f"{SINGULAR[kind]} {key}"
    if status == 401:
        return AdminError(
            "the admin token was refused (check --token or TONGXING_ADMIN_TOKEN)", status
        )
    if status == 404 and key is not None:
        return AdminError(f"no {what}", status)
    if status == 400:
        raw_fields = body.get("fields")
        fields = [
            (str(item.get("field", "")), str(item.get("message", "")))
            for item in (raw_fields if isinstance(raw_fields, list) else [])
            if isinstance(item, dict)
        ]
        return AdminError(f"the gateway refused the {what}:", status, fields)
    description = body.get("error_description") or body.get("error") or response.reason
    return AdminError(f"the admin API answered {status}: {str(description)[:300]}", status)
