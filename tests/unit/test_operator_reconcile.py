"""The reconcilers' order of things, with small in-process stand-ins for Secrets, Keycloak and
the gateway: what a Region the platform does not admit makes the operator do (nothing at all),
whose credentials are read, what a registration says about its owner, and what is left alone.

These are the ordering properties THREAT_MODEL.md rows 1, 2 and 8 rest on; the end-to-end tests
(tests/e2e/test_tenant_boundaries.py) play the same attacks against the real servers. The
stand-ins keep only what the contract says: the gateway answers 403 to a GET and 409 to a PUT
or DELETE of a registration another resource owns, and records the caller as its principal.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from keycloak.exceptions import KeycloakAuthenticationError, KeycloakGetError
from pydantic import SecretStr
from realm_operator.cluster import Owner, Secrets, StoredSecret
from realm_operator.keycloak import (
    AdminCredentials,
    KeycloakAdminError,
    KeycloakRejectedError,
    KeycloakUnauthorizedError,
    KeycloakUnavailableError,
    RealmAdmin,
)
from realm_operator.models import ConditionType, PortalSpec, RegionSpec
from realm_operator.reconcile import (
    ObjectRef,
    PortalReconciler,
    Progress,
    ReconcileError,
    RegionReconciler,
    new_progress,
)
from realm_operator.settings import OperatorSettings
from realm_operator.templates import OWNER_ATTRIBUTE, RealmTemplates

from tongxing_api.client import (
    GatewayClient,
    GatewayConflictError,
    GatewayForbiddenError,
    GatewayRejectedError,
)
from tongxing_api.client import Owner as Resource

KEYCLOAK = "http://keycloak.kc.svc:8080"
PUBLIC = "https://id.example.gov.cn"
PLATFORM = "tongxing-system"
TENANT = "tenant"
MARKER = "tx-leak-5f3a"  # what an upstream body says, and must not be repeated


# Stand-ins


class FakeSecrets(Secrets):
    """Secrets by (namespace, name), and every call made."""

    def __init__(self, stored: Mapping[tuple[str, str], dict[str, str]]) -> None:
        # Not Secrets.__init__: no API client, no API server.
        self.stored = {key: StoredSecret(dict(data), frozenset()) for key, data in stored.items()}
        self.calls: list[tuple[str, str, str]] = []

    def read(self, namespace: str, name: str) -> StoredSecret | None:
        self.calls.append(("read", namespace, name))
        return self.stored.get((namespace, name))

    def create(self, namespace: str, name: str, data: dict[str, str], owner: Owner) -> bool:
        self.calls.append(("create", namespace, name))
        self.stored[(namespace, name)] = StoredSecret(dict(data), frozenset({owner.uid}))
        return True

    def update_data(
        self, namespace: str, name: str, data: dict[str, str], previous: dict[str, str]
    ) -> None:
        self.calls.append(("patch", namespace, name))
        owners = self.stored[(namespace, name)].owner_uids
        self.stored[(namespace, name)] = StoredSecret(dict(data), owners)

    def delete(self, namespace: str, name: str) -> bool:
        self.calls.append(("delete", namespace, name))
        return self.stored.pop((namespace, name), None) is not None


class FakeGateway(GatewayClient):
    """The admin API as an operator credential meets it: ownership enforced, calls recorded."""

    def __init__(self) -> None:
        super().__init__("http://gateway.test", SecretStr("o" * 32))
        self.registrations: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.show_legacy = False  # a GET of a registration without an owner answers it

    @staticmethod
    def _same(owner: Any, resource: Mapping[str, str] | None) -> bool:
        if not isinstance(owner, dict) or owner.get("principal") != "operator" or not resource:
            return False
        return all(owner.get(key) == resource.get(key) for key in ("kind", "namespace", "name"))

    def _fetch(self, kind: str, key: str, owner: Resource) -> dict[str, Any] | None:
        self.calls.append(("GET", kind, key))
        found = self.registrations.get((kind, key))
        if found is None:
            return None
        legacy = found.get("managed_by") is None and self.show_legacy
        if not legacy and not self._same(found.get("managed_by"), owner):
            raise GatewayForbiddenError(f"the gateway refused {kind} {key} (403)", [])
        return copy.deepcopy(found)

    def _write(self, kind: str, key: str, document: dict[str, Any]) -> bool:
        self.calls.append(("PUT", kind, key))
        found = self.registrations.get((kind, key))
        claimed = document.get("managed_by")
        if found is not None and not self._same(found.get("managed_by"), claimed):
            raise GatewayConflictError(
                f"the gateway refused {kind} {key} (409): code: {kind} {key} is managed by "
                "another owner",
                [{"field": "code", "message": "managed by another owner"}],
            )
        stored = {k: v for k, v in document.items() if k != "client_secret"}
        stored["managed_by"] = {"principal": "operator", **(claimed or {})}
        stored["secret"] = document.get("client_secret")
        self.registrations[(kind, key)] = stored
        return found is None

    def _remove(self, kind: str, key: str, owner: Resource) -> bool:
        self.calls.append(("DELETE", kind, key))
        found = self.registrations.get((kind, key))
        if found is None:
            return False
        if not self._same(found.get("managed_by"), owner):
            raise GatewayConflictError(f"the gateway refused deleting {kind} {key} (409)", [])
        del self.registrations[(kind, key)]
        return True

    def issuer(self) -> str:
        self.calls.append(("GET", "discovery", ""))
        return "https://gw.example.gov.cn"

    def region(self, code: str, owner: Resource = None) -> dict[str, Any] | None:
        return self._fetch("region", code, owner)

    def put_region(self, code: str, document: dict[str, Any]) -> bool:
        return self._write("region", code, document)

    def delete_region(self, code: str, owner: Resource = None) -> bool:
        return self._remove("region", code, owner)

    def portal(self, client_id: str, owner: Resource = None) -> dict[str, Any] | None:
        return self._fetch("portal", client_id, owner)

    def put_portal(self, client_id: str, document: dict[str, Any]) -> bool:
        return self._write("portal", client_id, document)

    def delete_portal(self, client_id: str, owner: Resource = None) -> bool:
        return self._remove("portal", client_id, owner)


@dataclass
class FakeKeycloak:
    """Realms by name, and who signed in to do what."""

    realms: dict[str, dict[str, Any]] = field(default_factory=dict)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    logins: list[AdminCredentials] = field(default_factory=list)
    writes: list[tuple[str, str]] = field(default_factory=list)
    refusing: bool = False  # answers 403 to everything, as a hostile or misconfigured one

    def factory(self, credentials: AdminCredentials, realm: str, timeout: float) -> RealmAdmin:
        self.logins.append(credentials)
        return FakeRealmAdmin(self, credentials, realm)


class FakeRealmAdmin(RealmAdmin):
    def __init__(self, server: FakeKeycloak, credentials: AdminCredentials, realm: str) -> None:
        self.server = server
        self.url = credentials.url
        self.realm = realm

    def _refuse(self, action: str) -> None:
        if self.server.refusing:
            raise KeycloakRejectedError(
                self.url, f"Keycloak at {self.url} refused to {action} (403)"
            )

    def get_realm(self) -> dict[str, Any] | None:
        self._refuse(f"read realm {self.realm}")
        found = self.server.realms.get(self.realm)
        return copy.deepcopy(found) if found is not None else None

    def create_realm(self, representation: dict[str, Any]) -> bool:
        self.server.writes.append(("create realm", self.realm))
        if self.realm in self.server.realms:
            return False
        realm = {k: v for k, v in representation.items() if k not in ("clients", "components")}
        self.server.realms[self.realm] = copy.deepcopy(realm)
        for client in representation.get("clients", []):
            self.create_client(client)
        return True

    def update_realm(self, changes: dict[str, Any]) -> None:
        self.server.writes.append(("update realm", self.realm))
        self.server.realms[self.realm].update(copy.deepcopy(changes))

    def delete_realm(self) -> bool:
        self._refuse(f"delete realm {self.realm}")
        self.server.writes.append(("delete realm", self.realm))
        return self.server.realms.pop(self.realm, None) is not None

    def user_profile(self) -> dict[str, Any]:
        return copy.deepcopy(self.server.realms[self.realm].get("_profile", {}))

    def update_user_profile(self, profile: dict[str, Any]) -> None:
        self.server.realms[self.realm]["_profile"] = copy.deepcopy(profile)

    def required_action(self, alias: str) -> dict[str, Any] | None:
        actions = self.server.realms[self.realm].setdefault("_actions", {})
        return dict(actions.setdefault(alias, {"alias": alias, "enabled": True}))

    def update_required_action(self, alias: str, representation: dict[str, Any]) -> None:
        self.server.realms[self.realm]["_actions"][alias] = dict(representation)

    def client_by_client_id(self, client_id: str) -> dict[str, Any] | None:
        found = self.server.clients.get(self.realm)
        return copy.deepcopy(found) if found and found["clientId"] == client_id else None

    def create_client(self, representation: dict[str, Any]) -> bool:
        client = copy.deepcopy(representation)
        client["id"] = f"{self.realm}-client"
        for index, mapper in enumerate(client.get("protocolMappers", [])):
            mapper["id"] = f"m{index}"
        self.server.clients[self.realm] = client
        return True

    def update_client(self, internal_id: str, representation: dict[str, Any]) -> None:
        self.server.clients[self.realm].update(copy.deepcopy(representation))

    def add_mapper(self, internal_id: str, mapper: dict[str, Any]) -> None:
        self.server.clients[self.realm].setdefault("protocolMappers", []).append(mapper)

    def update_mapper(self, internal_id: str, mapper: dict[str, Any]) -> None:
        pass

    def client_secret(self, internal_id: str) -> str:
        return f"kc-secret-of-{self.realm}-" + "x" * 16


# The world a test runs in


def platform(**values: Any) -> OperatorSettings:
    grants = [
        {
            "url": KEYCLOAK,
            "public_url": PUBLIC,
            "admin_realm": "master",
            "credentials_secret": {"namespace": PLATFORM, "name": "keycloak-admin"},
            "namespaces": [TENANT, "victim"],
        }
    ]
    return OperatorSettings.model_validate(
        {
            "gateway_url": "http://gateway.test",
            "admin_token": "o" * 32,
            "retry_delay": 2,
            "credentials_retry_delay": 7,
            "keycloaks": grants,
            **values,
        }
    )


@dataclass
class World:
    settings: OperatorSettings
    secrets: FakeSecrets
    gateway: FakeGateway
    keycloak: FakeKeycloak
    regions: RegionReconciler
    portals: PortalReconciler

    def untouched(self) -> bool:
        """Nothing was read, nothing contacted."""
        return not self.secrets.calls and not self.keycloak.logins and not self.gateway.calls


@pytest.fixture
def world() -> World:
    return make_world(platform())


def make_world(settings: OperatorSettings) -> World:
    secrets = FakeSecrets(
        {
            (PLATFORM, "keycloak-admin"): {"username": "platform-admin", "password": "p" * 20},
            # The gateway's own Secret beside the tenant's resources: what a thief would name.
            (TENANT, "tongxing-gateway"): {"admin-token": "gw-" + "s" * 32},
        }
    )
    gateway = FakeGateway()
    keycloak = FakeKeycloak()
    return World(
        settings,
        secrets,
        gateway,
        keycloak,
        RegionReconciler(settings, RealmTemplates(), gateway, secrets, keycloak.factory),
        PortalReconciler(settings, gateway, secrets),
    )


def region(name: str = "zj", namespace: str = TENANT, **spec: Any) -> tuple[ObjectRef, RegionSpec]:
    keycloak = spec.pop("keycloak", {"url": KEYCLOAK})
    document = {
        "code": spec.pop("code", "zj"),
        "names": {"zh": "浙江省", "en": "Zhejiang"},
        "kind": "province",
        "keycloak": keycloak,
        **spec,
    }
    return ObjectRef("Region", namespace, name, f"uid-{namespace}-{name}", 1), RegionSpec(
        **document
    )


def portal(
    name: str = "zwfw", namespace: str = TENANT, client_id: str = "zwfw"
) -> tuple[ObjectRef, PortalSpec]:
    spec = PortalSpec.model_validate(
        {
            "region": "zj",
            "clientId": client_id,
            "names": {"zh": "门户", "en": "Portal"},
            "redirectUris": [f"https://{name}.example.cn/cb"],
            "secretName": f"{name}-credentials",
        }
    )
    return ObjectRef("Portal", namespace, name, f"uid-{namespace}-{name}", 1), spec


def refused(world: World, ref: ObjectRef, spec: RegionSpec) -> ReconcileError:
    with pytest.raises(ReconcileError) as caught:
        world.regions.reconcile(ref, spec, new_progress("Region", {}, 1))
    return caught.value


def settled(world: World, ref: ObjectRef, spec: RegionSpec, status: dict[str, Any]) -> Progress:
    progress = new_progress("Region", status, 1)
    world.regions.reconcile(ref, spec, progress)
    return progress


# Admission: nothing read, nothing contacted


def test_a_region_naming_a_host_of_its_own_and_a_secret_reads_and_contacts_nothing(
    world: World,
) -> None:
    ref, spec = region(
        "thief",
        keycloak={
            "url": "http://127.0.0.1:9999",
            "adminSecretRef": {"name": "tongxing-gateway", "usernameKey": "admin-token"},
        },
    )
    error = refused(world, ref, spec)
    assert error.reason == "KeycloakNotAllowed"
    assert error.permanent
    assert "spec.keycloak.url http://127.0.0.1:9999" in error.message
    assert world.untouched()
    # Deleting it is as quiet: there is nothing of ours, so nothing is read or asked.
    changes = world.regions.delete(ref, spec)
    assert len(changes) == 1
    assert changes[0].startswith("nothing to clean up: spec.keycloak.url")
    assert world.untouched()


def test_a_granted_keycloak_is_granted_only_to_the_namespaces_the_platform_lists(
    world: World,
) -> None:
    ref, spec = region(namespace="sandbox")
    error = refused(world, ref, spec)
    assert (error.reason, error.permanent) == ("KeycloakNotAllowed", True)
    assert "namespace sandbox" in error.message
    assert world.untouched()


def test_a_granted_keycloak_with_credentials_of_the_regions_choosing_is_refused(
    world: World,
) -> None:
    ref, spec = region(
        "borrower",
        keycloak={
            "url": KEYCLOAK,
            "adminSecretRef": {"name": "tongxing-gateway", "usernameKey": "admin-token"},
        },
    )
    error = refused(world, ref, spec)
    assert (error.reason, error.permanent) == ("CredentialsNotGranted", True)
    assert "adminSecretRef" in error.message
    assert error.condition is ConditionType.REALM_READY
    assert world.untouched()
    assert world.regions.delete(ref, spec)[0].startswith("nothing to clean up")
    assert world.untouched()


@pytest.mark.parametrize(
    ("keycloak", "reason", "says"),
    [
        ({"url": KEYCLOAK, "adminRealm": "tenant-admins"}, "CredentialsNotGranted", "adminRealm"),
        ({"url": KEYCLOAK, "publicUrl": "https://evil.example"}, "KeycloakNotAllowed", "publicUrl"),
        ({"url": KEYCLOAK, "realm": "master"}, "KeycloakNotAllowed", "admin realm"),
        ({"url": KEYCLOAK + "/admin"}, "KeycloakNotAllowed", "keycloak.url"),
        ({"url": "https://keycloak.kc.svc:8080"}, "KeycloakNotAllowed", "keycloak.url"),
    ],
)
def test_the_grant_is_compared_field_by_field(
    world: World, keycloak: dict[str, str], reason: str, says: str
) -> None:
    ref, spec = region(keycloak=keycloak)
    error = refused(world, ref, spec)
    assert (error.reason, error.permanent) == (reason, True)
    assert says in error.message
    assert world.untouched()


def test_a_mapping_above_the_ceiling_is_refused_unless_the_platform_raised_it() -> None:
    mapping = [
        {"acr": "pwd", "loa": 1, "level": "loa1"},
        {"acr": "otp", "loa": 2, "level": "loa3"},
    ]
    capped = make_world(platform())
    ref, spec = region(acrMapping=mapping)
    error = refused(capped, ref, spec)
    assert (error.reason, error.permanent) == ("LevelAboveCeiling", True)
    assert "spec.acrMapping[1].level loa3 is above the ceiling loa2" in error.message
    assert "acrMapping[0]" not in error.message
    assert capped.untouched()

    raised = make_world(platform(region_level_ceilings={"zj": "loa3"}))
    progress = settled(raised, ref, spec, {})
    assert progress.phase == "Ready"
    assert raised.gateway.registrations[("region", "zj")]["acr_mapping"] == {
        "otp": "loa3",
        "pwd": "loa1",
    }
    # Another region under the same platform keeps the general ceiling.
    other_ref, other = region("sh", code="sh", acrMapping=mapping)
    assert refused(raised, other_ref, other).reason == "LevelAboveCeiling"


@pytest.mark.parametrize(
    "overrides",
    [
        {"browserFlow": "direct grant"},
        {"identityProviders": [{"alias": "x", "providerId": "oidc"}]},
        {"bruteForceProtected": False},
        {"passwordPolicy": "length(4)"},
        {"clients": []},
    ],
)
def test_overrides_off_the_allow_list_are_refused_before_anything_is_read(
    world: World, overrides: dict[str, Any]
) -> None:
    ref, spec = region(overrides=overrides)
    error = refused(world, ref, spec)
    assert (error.reason, error.permanent) == ("OverrideNotAllowed", True)
    assert f"spec.overrides.{next(iter(overrides))}" in error.message
    assert world.untouched()


# Provisioning with the grant


def test_the_grants_credentials_are_read_from_the_platforms_secret_and_nothing_else(
    world: World,
) -> None:
    ref, spec = region(overrides={"displayName": "浙里办"})
    progress = settled(world, ref, spec, {})
    assert progress.phase == "Ready"
    assert world.secrets.calls == [("read", PLATFORM, "keycloak-admin")]
    (login,) = world.keycloak.logins
    assert (login.url, login.username, login.admin_realm) == (KEYCLOAK, "platform-admin", "master")
    assert login.password.get_secret_value() == "p" * 20
    realm = world.keycloak.realms["zj"]
    assert realm["attributes"][OWNER_ATTRIBUTE] == "tenant/zj"
    assert realm["displayName"] == "浙里办"
    # The issuer is below the grant's public URL, though the Region named only the admin URL.
    assert progress.fields["issuer"] == f"{PUBLIC}/realms/zj"
    registered = world.gateway.registrations[("region", "zj")]
    assert registered["issuer"] == f"{PUBLIC}/realms/zj"
    assert registered["managed_by"] == {
        "principal": "operator",
        "kind": "Region",
        "namespace": TENANT,
        "name": "zj",
        "uid": "uid-tenant-zj",
    }


def test_a_settled_region_sends_nothing_although_the_gateway_added_its_principal(
    world: World,
) -> None:
    ref, spec = region()
    first = settled(world, ref, spec, {})
    world.gateway.calls.clear()
    world.keycloak.writes.clear()
    again = settled(world, ref, spec, first.status())
    assert again.changes == []
    assert [c for c in world.gateway.calls if c[0] != "GET"] == []
    assert world.keycloak.writes == []


def test_a_realm_made_by_someone_else_is_never_taken_up(world: World) -> None:
    world.keycloak.realms["zj"] = {"realm": "zj", "displayName": "the platform's", "attributes": {}}
    ref, spec = region()
    error = refused(world, ref, spec)
    assert (error.reason, error.permanent) == ("RealmOwnedElsewhere", True)
    assert "no tongxing.io/owner attribute" in error.message
    assert world.keycloak.writes == []
    assert world.keycloak.realms["zj"]["displayName"] == "the platform's"
    # Nor deleted with a Region that named it.
    world.regions.delete(ref, spec)
    assert "zj" in world.keycloak.realms
    assert ("delete realm", "zj") not in world.keycloak.writes


def test_a_keycloak_that_refuses_fails_the_region_but_never_holds_up_its_deletion(
    world: World,
) -> None:
    ref, spec = region()
    settled(world, ref, spec, {})
    world.keycloak.refusing = True
    error = refused(world, ref, spec)
    assert (error.reason, error.permanent) == ("KeycloakRejected", True)
    assert error.message == f"Keycloak at {KEYCLOAK} refused to read realm zj (403)"
    changes = world.regions.delete(ref, spec)
    assert changes == [
        "removed region zj from the gateway",
        f"left realm zj as it is: Keycloak at {KEYCLOAK} refused to read realm zj (403)",
    ]
    assert "zj" in world.keycloak.realms  # said so, for a person to remove


def test_a_keycloak_that_refuses_to_delete_leaves_the_realm_and_says_so(world: World) -> None:
    ref, spec = region()
    settled(world, ref, spec, {})

    class Refusing(FakeRealmAdmin):
        def delete_realm(self) -> bool:
            raise KeycloakRejectedError(self.url, "Keycloak refused to delete realm zj (403)")

    world.regions.keycloak = lambda c, r, t: Refusing(world.keycloak, c, r)
    assert world.regions.delete(ref, spec)[-1] == (
        "left realm zj as it is: Keycloak refused to delete realm zj (403)"
    )


# Registrations another owner holds


def victims_region(world: World) -> dict[str, Any]:
    ref, spec = region("home", namespace="victim")
    settled(world, ref, spec, {})
    return copy.deepcopy(world.gateway.registrations[("region", "zj")])


def test_a_region_claiming_a_taken_code_changes_nothing_and_is_retried(world: World) -> None:
    before = victims_region(world)
    world.gateway.calls.clear()
    ref, spec = region("impostor", keycloak={"url": KEYCLOAK, "realm": "fake-zj"})
    error = refused(world, ref, spec)
    assert error.reason == "RegionCodeTaken"
    assert not error.permanent  # when the owner lets the code go, it is free
    assert error.delay == 7
    assert "region zj" in error.message
    assert MARKER not in error.message
    assert ("PUT", "region", "zj") not in world.gateway.calls
    assert world.gateway.registrations[("region", "zj")] == before
    # Found out before Keycloak is asked: no realm is made for a code that cannot be served.
    assert ("create realm", "fake-zj") not in world.keycloak.writes
    assert "fake-zj" not in world.keycloak.realms

    # Deleting the impostor leaves the registration, and its realm, to the owner's code.
    changes = world.regions.delete(ref, spec)
    assert "left region zj to its owner" in changes
    assert world.gateway.registrations[("region", "zj")] == before
    assert ("delete realm", "fake-zj") not in world.keycloak.writes


def test_a_registration_made_before_owners_existed_is_not_taken_over(world: World) -> None:
    legacy = {"code": "zj", "issuer": "https://old/realms/zj", "managed_by": None}
    world.gateway.registrations[("region", "zj")] = dict(legacy)
    world.gateway.show_legacy = True  # even a gateway that shows it gets no PUT
    ref, spec = region()
    error = refused(world, ref, spec)
    assert error.reason == "RegionCodeTaken"
    assert ("PUT", "region", "zj") not in world.gateway.calls
    assert world.gateway.registrations[("region", "zj")] == legacy


def test_deleting_a_region_removes_only_its_own_registration_and_realm(world: World) -> None:
    ref, spec = region()
    settled(world, ref, spec, {})
    changes = world.regions.delete(ref, spec)
    assert changes == ["removed region zj from the gateway", "deleted realm zj"]
    assert ("region", "zj") not in world.gateway.registrations
    assert "zj" not in world.keycloak.realms
    retained_ref, retained = region("keep", code="keep", deletionPolicy="Retain")
    settled(world, retained_ref, retained, {})
    assert world.regions.delete(retained_ref, retained)[-1] == (
        "kept realm keep (deletionPolicy: Retain)"
    )
    assert "keep" in world.keycloak.realms


def test_a_portal_claiming_a_taken_client_id_writes_no_secret_and_sends_nothing(
    world: World,
) -> None:
    owner_ref, owner_spec = portal("owner", namespace="victim", client_id="shared")
    world.portals.reconcile(owner_ref, owner_spec, new_progress("Portal", {}, 1))
    before = copy.deepcopy(world.gateway.registrations[("portal", "shared")])
    world.secrets.calls.clear()

    ref, spec = portal("intruder", client_id="shared")
    with pytest.raises(ReconcileError) as caught:
        world.portals.reconcile(ref, spec, new_progress("Portal", {}, 1))
    assert caught.value.reason == "ClientIdTaken"
    assert not caught.value.permanent
    assert "portal shared" in caught.value.message
    assert world.secrets.calls == []  # no Secret read or written for a client id not ours
    assert world.gateway.registrations[("portal", "shared")] == before

    changes = world.portals.delete(ref, spec)
    assert changes == ["left portal shared to its owner"]
    assert world.gateway.registrations[("portal", "shared")] == before
    assert (("victim", "owner-credentials")) in world.secrets.stored


def test_a_portal_registers_with_its_owner_and_settles(world: World) -> None:
    ref, spec = portal()
    first = new_progress("Portal", {}, 1)
    world.portals.reconcile(ref, spec, first)
    registered = world.gateway.registrations[("portal", "zwfw")]
    assert registered["managed_by"]["name"] == "zwfw"
    assert (
        registered["secret"]
        == world.secrets.stored[(TENANT, "zwfw-credentials")].data["client_secret"]
    )
    world.gateway.calls.clear()
    world.portals.reconcile(ref, spec, new_progress("Portal", first.status(), 1))
    assert [c for c in world.gateway.calls if c[0] == "PUT"] == []
    assert world.portals.delete(ref, spec) == [
        "removed portal zwfw from the gateway",
        "deleted Secret zwfw-credentials",
    ]


# Nothing upstream in a condition


def _raised_by(action: Exception) -> KeycloakAdminError:
    admin = RealmAdmin.__new__(RealmAdmin)
    admin.url, admin.realm = KEYCLOAK, "zj"
    with pytest.raises(KeycloakAdminError) as caught, admin._errors("read realm zj"):
        raise action
    return caught.value


@pytest.mark.parametrize(
    ("error", "kind", "says"),
    [
        (KeycloakGetError(MARKER, 403, MARKER.encode()), KeycloakRejectedError, "(403)"),
        (KeycloakGetError(MARKER, 400, MARKER.encode()), KeycloakRejectedError, "(400)"),
        (KeycloakGetError(MARKER, 502, MARKER.encode()), KeycloakUnavailableError, "502"),
        (KeycloakAuthenticationError(MARKER, 401, MARKER.encode()), KeycloakUnauthorizedError, ""),
        (json.JSONDecodeError(MARKER, MARKER, 0), KeycloakUnavailableError, "unreadable"),
    ],
)
def test_a_keycloak_error_says_the_status_and_never_the_body(
    error: Exception, kind: type[KeycloakAdminError], says: str
) -> None:
    raised = _raised_by(error)
    assert isinstance(raised, kind)
    assert MARKER not in raised.message
    assert MARKER not in str(raised)
    assert raised.__cause__ is None  # no chain a traceback could print
    assert says in raised.message
    assert KEYCLOAK in raised.message


def _answer(status: int, body: str, content_type: str = "application/json") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    response.headers["Content-Type"] = content_type
    return response


def test_gateway_errors_keep_only_its_field_messages_cut_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[dict[str, Any]] = []
    answers = [
        _answer(400, f"<html>{MARKER}</html>", "text/html"),
        _answer(
            409,
            json.dumps(
                {
                    "error": "registration_taken",
                    "error_description": MARKER,
                    "fields": [{"field": "code", "message": "region zj is taken\n" + "x" * 500}],
                }
            ),
        ),
        _answer(403, json.dumps({"error": "insufficient_scope", "error_description": MARKER})),
        _answer(409, "{}"),
    ]

    def request(method: str, url: str, **kwargs: Any) -> requests.Response:
        sent.append({"method": method, "url": url, "params": kwargs.get("params")})
        return answers.pop(0)

    monkeypatch.setattr(requests, "request", request)
    client = GatewayClient("http://gateway.test", SecretStr("o" * 32))
    owner = {"kind": "Region", "namespace": TENANT, "name": "zj", "uid": "u"}
    with pytest.raises(GatewayRejectedError) as rejected:
        client.put_region("zj", {"code": "zj"})
    assert MARKER not in rejected.value.message
    assert rejected.value.message == "the gateway refused region zj (400)"
    with pytest.raises(GatewayConflictError) as taken:
        client.put_region("zj", {"code": "zj"})
    assert MARKER not in taken.value.message
    assert "code: region zj is taken x" in taken.value.message
    assert len(taken.value.message) < 250
    with pytest.raises(GatewayForbiddenError) as forbidden:
        client.region("zj", owner)
    assert MARKER not in forbidden.value.message
    with pytest.raises(GatewayConflictError):
        client.delete_region("zj", owner)
    # A GET or DELETE of one registration names the resource it is made for.
    assert [s["params"] for s in sent] == [None, None, owner, owner]
