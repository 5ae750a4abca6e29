"""Read, diff, write: what must change to make what exists look like what is wanted.

Only what the operator manages is compared. Keycloak adds dozens of defaults to every realm and
client, and administrators may add their own attributes, mappers and user-profile fields; those
are left alone. Pure functions: no server is needed to test them.
"""

from __future__ import annotations

import hashlib
from typing import Any


def _same_list(desired: list[Any], actual: list[Any]) -> bool:
    scalars = all(not isinstance(v, dict | list) for v in [*desired, *actual])
    if scalars:
        # Keycloak keeps locales and URIs in sets: their order is not significant.
        return sorted(map(repr, desired)) == sorted(map(repr, actual))
    return len(desired) == len(actual) and all(
        covers(a, d) for d, a in zip(desired, actual, strict=True)
    )


def covers(actual: Any, desired: Any) -> bool:
    """Whether ``actual`` already holds everything ``desired`` says (extra keys are fine)."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            key in actual and covers(actual[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return isinstance(actual, list) and _same_list(desired, actual)
    return bool(actual == desired and type(actual) is type(desired))


def changed_keys(desired: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """The top-level keys of ``desired`` that ``actual`` does not match."""
    return [key for key, value in desired.items() if not covers(actual.get(key), value)]


def realm_update(desired: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """A partial realm representation with just what differs (Keycloak merges a realm PUT).

    Attributes are merged into the existing ones, so an attribute someone else set survives.
    """
    update: dict[str, Any] = {}
    for key in changed_keys(desired, actual):
        if key == "attributes":
            update[key] = {**(actual.get(key) or {}), **desired[key]}
        else:
            update[key] = desired[key]
    return update


def client_update(desired: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any] | None:
    """The full client representation to PUT, or None when nothing differs.

    Protocol mappers are not part of a client update in Keycloak's API; see
    :func:`mapper_changes`.
    """
    wanted = {k: v for k, v in desired.items() if k != "protocolMappers"}
    keys = changed_keys(wanted, actual)
    if not keys:
        return None
    update = {k: v for k, v in actual.items() if k != "protocolMappers"}
    for key in keys:
        if key == "attributes":
            update[key] = {**(actual.get(key) or {}), **wanted[key]}
        else:
            update[key] = wanted[key]
    return update


def mapper_changes(
    desired: list[dict[str, Any]], actual: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(mappers to add, mappers to replace, with their ids), matched by name."""
    existing = {m.get("name"): m for m in actual}
    to_add: list[dict[str, Any]] = []
    to_replace: list[dict[str, Any]] = []
    for mapper in desired:
        found = existing.get(mapper["name"])
        if found is None:
            to_add.append(mapper)
        elif not covers(found, mapper):
            to_replace.append({**mapper, "id": found["id"]})
    return to_add, to_replace


def user_profile_update(desired: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any] | None:
    """The user profile with the wanted attributes and groups in place, or None if it has them.

    Attributes and groups are matched by name; others (added by an administrator) are kept.
    """

    def merged(section: str) -> tuple[list[dict[str, Any]], bool]:
        current = list(actual.get(section) or [])
        names = {item.get("name"): i for i, item in enumerate(current)}
        changed = False
        for item in desired.get(section) or []:
            index = names.get(item["name"])
            if index is None:
                current.append(item)
                changed = True
            elif not covers(current[index], item) or not covers(item, current[index]):
                current[index] = item
                changed = True
        return current, changed

    attributes, attributes_changed = merged("attributes")
    groups, groups_changed = merged("groups")
    if not attributes_changed and not groups_changed:
        return None
    return {**actual, "attributes": attributes, "groups": groups}


def registration_changes(desired: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """The fields of a gateway registration that differ (secrets are compared by digest)."""
    return [
        key
        for key, value in desired.items()
        if key != "client_secret" and not covers(actual.get(key), value)
    ]


def digest(secret: str) -> str:
    """A fingerprint of a secret for the status: it says whether the secret changed, no more."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]
