"""The one client of the gateway's admin API v1: what ``tongxing admin`` and the operator call.

Regions and portals by key (:data:`~tongxing_api.vocabulary.KEY_FIELDS`). ``PUT`` creates or
replaces (201 or 200); ``DELETE`` answers 204, or 404 when there was nothing, which is just as
good for a reconciler. Short timeouts (:data:`DEFAULT_TIMEOUT`): a gateway that does not answer
in seconds is down, and the caller tries again soon.

An operator credential (role ``operator``) says which resource it acts for: in ``managed_by`` of
every ``PUT`` body, and in the query (``kind``, ``namespace``, ``name``, ``uid``:
:data:`~tongxing_api.vocabulary.RESOURCE_FIELDS`) of a ``GET`` or ``DELETE`` of one registration
(``owner``). The gateway answers 409 ``registration_taken`` for a registration another owner
holds, and 403 ``insufficient_scope`` for one this credential may not see.

Every failure is a :class:`GatewayError` of one kind: unavailable (cannot be reached, times out,
answers 5xx or something that is not the API's JSON), unauthorized (401), forbidden (403),
conflict (409) or rejected (400 and any other refusal). It carries the HTTP status and a fixed
text; of a body only the gateway's own field messages (one line each, cut short) and its error
code, if it is one of :data:`~tongxing_api.vocabulary.ADMIN_ERROR_CODES`. Nothing else a server
says is repeated: errors end up in status conditions, events and terminals, and whatever answers
at the gateway's URL must not be able to write there. The bearer token is never in a message.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast
from urllib.parse import parse_qs, quote, urlsplit

import requests
from pydantic import SecretStr

from tongxing_api.vocabulary import ADMIN_ERROR_CODES, API_PATH, SINGULAR, Collection

__all__ = [
    "DEFAULT_TIMEOUT",
    "GatewayClient",
    "GatewayConflictError",
    "GatewayError",
    "GatewayForbiddenError",
    "GatewayRefusalError",
    "GatewayRejectedError",
    "GatewayUnauthorizedError",
    "GatewayUnavailableError",
    "InvalidKeyError",
    "Owner",
    "PutResult",
    "SubordinateKind",
]

#: The resource a call is made for (kind, namespace, name, uid): the query of a GET or DELETE.
Owner = Mapping[str, str] | None
#: What a federation subordinate is the record of (the gateway's ``SubordinateKind``).
SubordinateKind = Literal["region", "portal"]
#: Seconds per request.
DEFAULT_TIMEOUT: Final = 5.0
FIELD_TEXT_LIMIT: Final = 160  # characters of one field message of the gateway
FIELDS_LIMIT: Final = 4  # field messages repeated in an error's message
FIELDS_KEPT: Final = 32  # field messages kept in an error's ``fields``
PAGE_SIZE: Final = 500  # registrations asked for per page of a listing (the gateway allows 1000)
MAX_PAGES: Final = 10_000  # pages of one listing before list_all calls it a loop


# --- errors --------------------------------------------------------------------------------------


class GatewayError(Exception):
    """The admin API could not do what was asked; ``message`` is fixed text, ``status`` the
    HTTP status when there was an answer."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class GatewayUnavailableError(GatewayError):
    """The gateway cannot be reached, times out, answers 5xx, or answers something that is not
    the admin API's JSON. ``cause`` names the network error when there was no answer."""

    def __init__(
        self, message: str, *, status: int | None = None, cause: str | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.cause = cause


class GatewayUnauthorizedError(GatewayError):
    """The gateway refuses the admin token (401)."""


class GatewayRefusalError(GatewayError):
    """The gateway answered 4xx: ``fields`` says what is wrong, field by field."""

    def __init__(
        self,
        message: str,
        fields: list[dict[str, str]],
        *,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.fields = fields
        self.code = code


class GatewayRejectedError(GatewayRefusalError):
    """The gateway refused a document or a query (400 and other 4xx): a new one is needed."""


class GatewayConflictError(GatewayRefusalError):
    """409: the registration belongs to another owner (``registration_taken``), or changed
    between the gateway's read and its write."""


class GatewayForbiddenError(GatewayRefusalError):
    """403: this credential may not read or change that registration (RFC 6750 §3.1
    ``insufficient_scope``), e.g. because another owner manages it."""


class InvalidKeyError(ValueError):
    """A key that cannot name one registration in a URL (empty, ``.``, ``..`` or with ``/``)."""


def _clean(text: Any) -> str:
    """One line of at most :data:`FIELD_TEXT_LIMIT` printable characters."""
    printable = "".join(
        ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else " " for ch in str(text)
    )
    return " ".join(printable.split())[:FIELD_TEXT_LIMIT]


def _refusal(
    response: requests.Response,
    what: str,
    kind: type[GatewayRefusalError] = GatewayRejectedError,
) -> GatewayRefusalError:
    """A refusal with the gateway's field messages and error code, and nothing else of the body."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    found = body.get("fields")
    fields = [
        {"field": _clean(item.get("field")), "message": _clean(item.get("message"))}
        for item in (found if isinstance(found, list) else [])[:FIELDS_KEPT]
        if isinstance(item, dict)
    ]
    code = body.get("error")
    details = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:FIELDS_LIMIT])
    message = f"the gateway refused {what} ({response.status_code})"
    return kind(
        f"{message}: {details}" if details else message,
        fields,
        status=response.status_code,
        code=code if isinstance(code, str) and code in ADMIN_ERROR_CODES else None,
    )


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


# --- the client ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PutResult:
    """What a PUT made: the registration as the gateway answered it (``None`` if the answer was
    not a JSON object) and whether it was created. A portal's answer holds its client secret
    when the call set it (shown once)."""

    document: dict[str, Any] | None
    created: bool


class GatewayClient:
    """The gateway's admin API v1 (and its discovery document), with one bearer token.

    ``url`` is the gateway's URL; one ending in ``/admin/v1`` is taken as well. ``session``
    replaces the plain ``requests`` calls (the CLI's tests answer in-process through one).
    """

    def __init__(
        self,
        url: str,
        token: SecretStr,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        issuer_override: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        root = url.strip().rstrip("/")
        if not root.startswith(("https://", "http://")):
            raise ValueError(f"the admin URL must start with https:// (got {root[:80]!r})")
        self.url = root.removesuffix(API_PATH)
        self.timeout = timeout
        self.issuer_override = issuer_override
        self._token = token
        self._session = session
        self._issuer: str | None = None

    def __repr__(self) -> str:
        return f"GatewayClient({self.url!r})"

    @property
    def api_url(self) -> str:
        """Where the admin API lives: the gateway's URL and ``/admin/v1``."""
        return self.url + API_PATH

    # --- any collection ----------------------------------------------------------------------

    def list_all(self, kind: Collection, *, page_size: int = PAGE_SIZE) -> list[dict[str, Any]]:
        """Every registration of ``kind`` this credential may see, page by page.

        The gateway answers one page (a JSON array) at a time and names the next in an RFC 8288
        ``Link: <...>; rel="next"`` header (keyset pagination: ``limit`` and ``after``). Only
        the ``after`` of that link is used: the next request goes to this client's own URL, so
        a link to another host never receives the token. A gateway that repeats a key, or pages
        past :data:`MAX_PAGES`, is answered with :class:`GatewayUnavailableError` (a loop, not
        a listing). A gateway from before pagination answers one page without a link: all.
        """
        what = f"listing {kind}"
        items: list[dict[str, Any]] = []
        after: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            params = {"limit": str(page_size)}
            if after is not None:
                params["after"] = after
            response = self._call("GET", _path(kind), what, params=params)
            if response.status_code != 200:
                raise _refusal(response, what)
            body = _json(response)
            if not isinstance(body, list):
                raise GatewayUnavailableError(
                    f"the gateway's answer {what} is not a list", status=response.status_code
                )
            items.extend(item for item in body if isinstance(item, dict))
            after = _next_after(response)
            if after is None:
                return items
            if after in seen:
                raise GatewayUnavailableError(
                    f"the gateway's pages {what} do not advance", status=response.status_code
                )
            seen.add(after)
        raise GatewayUnavailableError(f"the gateway answered more than {MAX_PAGES} pages {what}")

    def get(self, kind: Collection, key: str, owner: Owner = None) -> dict[str, Any] | None:
        """One registration as ``owner`` (the resource asking) may see it; ``None`` if there is
        none, :class:`GatewayForbiddenError` if it is another owner's."""
        what = f"{SINGULAR[kind]} {key}"
        response = self._call("GET", _path(kind, key), what, owner=owner)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _refusal(response, what)
        document = _json(response)
        if not isinstance(document, dict):
            raise GatewayUnavailableError(
                f"the gateway's answer about {what} is not a document",
                status=response.status_code,
            )
        return cast(dict[str, Any], document)

    def put(self, kind: Collection, key: str, document: dict[str, Any]) -> PutResult:
        """Create or replace a registration (an operator names itself in ``managed_by``)."""
        what = f"{SINGULAR[kind]} {key}"
        response = self._call("PUT", _path(kind, key), what, body=document)
        if response.status_code not in (200, 201):
            raise _refusal(response, what)
        answer = _json(response)
        return PutResult(
            cast(dict[str, Any], answer) if isinstance(answer, dict) else None,
            response.status_code == 201,
        )

    def delete(self, kind: Collection, key: str, owner: Owner = None) -> bool:
        """Delete the registration ``owner`` manages; ``False`` if there was none,
        :class:`GatewayConflictError` if it is another owner's."""
        what = f"deleting {SINGULAR[kind]} {key}"
        response = self._call("DELETE", _path(kind, key), what, owner=owner)
        if response.status_code == 404:
            return False
        if response.status_code != 204:
            raise _refusal(response, what)
        return True

    # --- regions and portals, as the operator calls them --------------------------------------

    def region(self, code: str, owner: Owner = None) -> dict[str, Any] | None:
        """The region, as ``owner`` (the resource asking) may see it; 403 if another's."""
        return self.get("regions", code, owner)

    def put_region(self, code: str, document: dict[str, Any]) -> bool:
        """Register or replace a region; True if it was created."""
        return self.put("regions", code, document).created

    def delete_region(self, code: str, owner: Owner = None) -> bool:
        """Delete the region ``owner`` manages; False if there was none, 409 if another's."""
        return self.delete("regions", code, owner)

    def portal(self, client_id: str, owner: Owner = None) -> dict[str, Any] | None:
        """The portal, as ``owner`` (the resource asking) may see it; 403 if another's."""
        return self.get("portals", client_id, owner)

    def put_portal(self, client_id: str, document: dict[str, Any]) -> bool:
        """Register or replace a portal; True if it was created."""
        return self.put("portals", client_id, document).created

    def delete_portal(self, client_id: str, owner: Owner = None) -> bool:
        """Delete the portal ``owner`` manages; False if there was none, 409 if another's."""
        return self.delete("portals", client_id, owner)

    # --- federation subordinates (OpenID Federation 1.0 §3, issue 17) --------------------------

    def federation_subordinate(
        self, kind: SubordinateKind, key: str, owner: Owner = None
    ) -> dict[str, Any] | None:
        """The trust anchor's record of region or portal ``key`` as a subordinate (``entity_id``,
        ``jwks``, ``metadata_policy``); ``None`` if it has none."""
        what = f"federation subordinate {kind} {key}"
        response = self._call("GET", _subordinate_path(kind, key), what, owner=owner)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _refusal(response, what)
        document = _json(response)
        if not isinstance(document, dict):
            raise GatewayUnavailableError(
                f"the gateway's answer about {what} is not a document", status=response.status_code
            )
        return cast(dict[str, Any], document)

    def put_federation_subordinate(
        self, kind: SubordinateKind, key: str, document: dict[str, Any], owner: Owner = None
    ) -> dict[str, Any] | None:
        """Record (create or replace) the subordinate; an operator names the resource it acts
        for in ``owner`` (the query), and may record only that of a registration it manages.
        A 400 (a private key in ``jwks``, an entity id another subordinate has or that is not
        bound to the registration) is :class:`GatewayRejectedError` naming the field."""
        what = f"federation subordinate {kind} {key}"
        response = self._call("PUT", _subordinate_path(kind, key), what, body=document, owner=owner)
        if response.status_code != 200:
            raise _refusal(response, what)
        answer = _json(response)
        return cast(dict[str, Any], answer) if isinstance(answer, dict) else None

    def delete_federation_subordinate(
        self, kind: SubordinateKind, key: str, owner: Owner = None
    ) -> bool:
        """Remove the subordinate; ``False`` if there was none (or no registration behind it)."""
        what = f"deleting federation subordinate {kind} {key}"
        response = self._call("DELETE", _subordinate_path(kind, key), what, owner=owner)
        if response.status_code == 404:
            return False
        if response.status_code != 204:
            raise _refusal(response, what)
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
                    f"the gateway at {self.url} has no discovery document",
                    status=response.status_code,
                )
            self._issuer = issuer.rstrip("/")
        return self._issuer

    def region_health(self, code: str) -> dict[str, Any] | None:
        """Region ``code``'s circuit as the gateway process that answers sees it (``GET
        /status``: ``state`` closed, open or half_open, ``failures``, ``since``,
        ``last_error``), or ``None`` when the gateway does not say (unreachable, older, or no
        such region). Never raises: the answer only informs a condition."""
        try:
            response = self._call("GET", "/status", "region status")
            document = response.json() if response.status_code == 200 else None
        except (GatewayError, ValueError):
            return None
        regions = document.get("regions") if isinstance(document, dict) else None
        entry = regions.get(code) if isinstance(regions, dict) else None
        return entry if isinstance(entry, dict) and isinstance(entry.get("state"), str) else None

    # --- one request ---------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        body: dict[str, Any] | None = None,
        owner: Owner = None,
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One request; 5xx, 401, 403 and 409 are raised here, the rest is the caller's.

        ``owner`` and ``params`` make the query (``params``: a listing's page)."""
        send = requests.request if self._session is None else self._session.request
        query = {**(owner or {}), **(params or {})}
        try:
            response = send(
                method,
                self.url + path,
                params=query or None,
                json=body,
                timeout=self.timeout,
                allow_redirects=False,
                headers={
                    "Authorization": f"Bearer {self._token.get_secret_value()}",
                    "Accept": "application/json",
                },
            )
        except requests.RequestException as error:
            raise GatewayUnavailableError(
                f"cannot reach the gateway at {self.url}", cause=type(error).__name__
            ) from None
        status = response.status_code
        if status >= 500:
            raise GatewayUnavailableError(
                f"the gateway answered {status} to {method} {what}", status=status
            )
        if status == 401:
            raise GatewayUnauthorizedError(
                f"the gateway at {self.url} refused the admin token", status=status
            )
        if status == 409:
            raise _refusal(response, what, GatewayConflictError)
        if status == 403:
            raise _refusal(response, what, GatewayForbiddenError)
        return response


def _next_after(response: requests.Response) -> str | None:
    """The ``after`` of the ``rel="next"`` link of a listing's answer (RFC 8288), if any."""
    link = response.links.get("next", {}).get("url")
    if not isinstance(link, str):
        return None
    values = parse_qs(urlsplit(link).query).get("after")
    return values[0] if values and values[0] else None


def _subordinate_path(kind: SubordinateKind, key: str) -> str:
    """``/admin/v1/federation/subordinates/<kind>/<key>``, the key quoted as one segment."""
    if not key or "/" in key or key in (".", ".."):
        raise InvalidKeyError(f"{key!r} is not a valid {kind} key")
    return f"{API_PATH}/federation/subordinates/{kind}/{quote(key, safe='')}"


def _path(kind: Collection, key: str | None = None) -> str:
    """``/admin/v1/<kind>`` or ``/admin/v1/<kind>/<key>``, the key quoted as one segment."""
    if key is None:
        return f"{API_PATH}/{kind}"
    if not key or "/" in key or key in (".", ".."):
        raise InvalidKeyError(f"{key!r} is not a valid {SINGULAR[kind]} key")
    return f"{API_PATH}/{kind}/{quote(key, safe='')}"
