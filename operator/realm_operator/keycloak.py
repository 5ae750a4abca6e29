"""A typed wrapper over python-keycloak: one realm, administered from the admin realm.

Every call answers in a few seconds or fails as one of three errors the reconciler understands:
:class:`KeycloakUnavailableError` (try again soon), :class:`KeycloakUnauthorizedError` (the admin
credentials are wrong: try again when someone fixes the Secret) and :class:`KeycloakRejectedError`
(Keycloak refused what was sent: the spec or its overrides are wrong). "Not found" is a value
(``None`` or ``False``), never an error: deleting what is gone is done.

An error says what was being done, where, and the HTTP status: never a word of the response
body. Conditions, events and log lines are read by tenants, and a body is whatever the server
at a URL chose to say (THREAT_MODEL.md rows 1 and 8).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from keycloak.exceptions import (
    KeycloakAuthenticationError,
    KeycloakConnectionError,
    KeycloakError,
)
from pydantic import SecretStr
from requests import RequestException

NOT_FOUND = 404
CONFLICT = 409


class KeycloakAdminError(Exception):
    def __init__(self, url: str, message: str) -> None:
        super().__init__(message)
        self.url = url
        self.message = message


class KeycloakUnavailableError(KeycloakAdminError):
    """Keycloak cannot be reached, times out or answers 5xx."""


class KeycloakUnauthorizedError(KeycloakAdminError):
    """The admin credentials are refused."""


class KeycloakRejectedError(KeycloakAdminError):
    """Keycloak refused a representation (4xx other than 401/404/409)."""


@dataclass(frozen=True)
class AdminCredentials:
    """Who administers the Keycloak instance: a user of ``admin_realm`` (usually master)."""

    url: str
    username: str
    password: SecretStr = field(repr=False)
    admin_realm: str = "master"


def _status(exc: KeycloakError) -> int | None:
    code = getattr(exc, "response_code", None)
    return code if isinstance(code, int) else None


class RealmAdmin:
    """Administration of one realm (which need not exist yet)."""

    def __init__(self, credentials: AdminCredentials, realm: str, timeout: float = 5.0) -> None:
        self.url = credentials.url
        self.realm = realm
        self._admin = KeycloakAdmin(
            connection=KeycloakOpenIDConnection(
                server_url=credentials.url,
                username=credentials.username,
                password=credentials.password.get_secret_value(),
                realm_name=realm,
                user_realm_name=credentials.admin_realm,
                # python-keycloak passes it to requests, which takes a float as well.
                timeout=cast(int, timeout),
                max_retries=0,
            )
        )

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except KeycloakConnectionError:
            raise KeycloakUnavailableError(
                self.url, f"cannot reach Keycloak at {self.url}"
            ) from None
        except KeycloakAuthenticationError as exc:
            raise KeycloakUnauthorizedError(
                self.url, f"Keycloak at {self.url} refused the admin credentials ({_status(exc)})"
            ) from None
        except KeycloakError as exc:
            status = _status(exc)
            if status is not None and status >= 500:
                raise KeycloakUnavailableError(
                    self.url, f"Keycloak at {self.url} answered {status} to {action}"
                ) from None
            raise KeycloakRejectedError(
                self.url, f"Keycloak at {self.url} refused to {action} ({status})"
            ) from None
        except (RequestException, ValueError) as exc:
            # python-keycloak reading an answer that is not Keycloak's (not JSON): the server at
            # the URL is not a working Keycloak right now.
            raise KeycloakUnavailableError(
                self.url,
                f"Keycloak at {self.url} gave an unreadable answer to {action} "
                f"({type(exc).__name__})",
            ) from None

    def _absent(self, exc: KeycloakError) -> bool:
        return _status(exc) == NOT_FOUND

    # The realm

    def get_realm(self) -> dict[str, Any] | None:
        with self._errors(f"read realm {self.realm}"):
            try:
                return cast(dict[str, Any], self._admin.get_realm(self.realm))
            except KeycloakError as exc:
                if self._absent(exc):
                    return None
                raise

    def create_realm(self, representation: dict[str, Any]) -> bool:
        """Create the realm; False if it already exists (somebody was first: adopt it)."""
        with self._errors(f"create realm {self.realm}"):
            try:
                self._admin.create_realm(representation)
            except KeycloakError as exc:
                if _status(exc) == CONFLICT:
                    return False
                raise
        return True

    def update_realm(self, changes: dict[str, Any]) -> None:
        with self._errors(f"update realm {self.realm}"):
            self._admin.update_realm(self.realm, changes)

    def delete_realm(self) -> bool:
        """Delete the realm; False if it was not there."""
        with self._errors(f"delete realm {self.realm}"):
            try:
                self._admin.delete_realm(self.realm)
            except KeycloakError as exc:
                if self._absent(exc):
                    return False
                raise
        return True

    # The user profile and required actions

    def user_profile(self) -> dict[str, Any]:
        with self._errors(f"read the user profile of {self.realm}"):
            return cast(dict[str, Any], self._admin.get_realm_users_profile())

    def update_user_profile(self, profile: dict[str, Any]) -> None:
        with self._errors(f"update the user profile of {self.realm}"):
            self._admin.update_realm_users_profile(profile)

    def required_action(self, alias: str) -> dict[str, Any] | None:
        with self._errors(f"read required action {alias}"):
            found = self._admin.get_required_action_by_alias(alias)
        return cast(dict[str, Any], found) if found else None

    def update_required_action(self, alias: str, representation: dict[str, Any]) -> None:
        with self._errors(f"update required action {alias}"):
            self._admin.update_required_action(alias, representation)

    # The gateway's client

    def client_by_client_id(self, client_id: str) -> dict[str, Any] | None:
        """The client whose ``clientId`` is ``client_id`` (with its internal ``id``)."""
        with self._errors(f"look up client {client_id}"):
            internal = self._admin.get_client_id(client_id)
            if internal is None:
                return None
            try:
                return cast(dict[str, Any], self._admin.get_client(internal))
            except KeycloakError as exc:
                if self._absent(exc):
                    return None
                raise

    def create_client(self, representation: dict[str, Any]) -> bool:
        """Create the client; False if one with its ``clientId`` exists already."""
        with self._errors(f"create client {representation.get('clientId')}"):
            try:
                self._admin.create_client(representation)
            except KeycloakError as exc:
                if _status(exc) == CONFLICT:
                    return False
                raise
        return True

    def update_client(self, internal_id: str, representation: dict[str, Any]) -> None:
        with self._errors(f"update client {representation.get('clientId')}"):
            self._admin.update_client(internal_id, representation)

    def add_mapper(self, internal_id: str, mapper: dict[str, Any]) -> None:
        with self._errors(f"add protocol mapper {mapper.get('name')}"):
            self._admin.add_mapper_to_client(internal_id, mapper)

    def update_mapper(self, internal_id: str, mapper: dict[str, Any]) -> None:
        with self._errors(f"update protocol mapper {mapper.get('name')}"):
            self._admin.update_client_mapper(internal_id, mapper["id"], mapper)

    def client_secret(self, internal_id: str) -> str:
        """The client's current secret, made by Keycloak when the client was created."""
        with self._errors("read the client secret"):
            found = cast(dict[str, Any], self._admin.get_client_secrets(internal_id))
        value = found.get("value")
        if not isinstance(value, str) or not value:
            with self._errors("generate a client secret"):
                found = cast(dict[str, Any], self._admin.generate_client_secrets(internal_id))
            value = found.get("value")
        if not isinstance(value, str) or not value:
            raise KeycloakRejectedError(self.url, "the gateway client has no secret")
        return value
