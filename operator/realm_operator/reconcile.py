"""The Region and Portal reconcilers: read, diff, write; create or adopt, never duplicate.

A reconciler is given a parsed spec and a :class:`Progress` and either finishes (the Progress
then says Ready) or raises :class:`ReconcileError`, which names the condition that failed, why,
and whether trying again can help. The kopf handlers only translate that into status, events
and kopf's retry exceptions; everything here runs (and is tested) without kopf.

A Region is admitted before anything is read or contacted (THREAT_MODEL.md rows 1 and 2): its
Keycloak must be one the platform grants to its namespace, with the grant's credentials only;
its acr mapping must stay within the platform's ceiling for it; its overrides within the
allow-list. Registrations carry their owner (``managed_by``); one the gateway says is someone
else's is reported (``RegionCodeTaken``, ``ClientIdTaken``) and never touched, not even on delete.
"""

from __future__ import annotations

import secrets as random_secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, SecretStr, ValidationError

from realm_operator import diff
from realm_operator.cluster import ClusterUnavailableError, Owner, Secrets
from realm_operator.keycloak import (
    AdminCredentials,
    KeycloakRejectedError,
    KeycloakUnauthorizedError,
    KeycloakUnavailableError,
    RealmAdmin,
)
from realm_operator.models import (
    PORTAL_CONDITIONS,
    REGION_CONDITIONS,
    Condition,
    ConditionType,
    DeletionPolicy,
    FederationSpec,
    OverrideError,
    PortalSpec,
    RegionSpec,
    check_overrides,
    condition,
    dump_conditions,
    parse_conditions,
    set_condition,
)
from realm_operator.settings import KeycloakGrant, OperatorSettings
from realm_operator.templates import (
    GATEWAY_CLIENT_ID,
    OWNER_ATTRIBUTE,
    RealmBlueprint,
    RealmTemplates,
    TemplateError,
)
from tongxing_api.client import (
    GatewayClient,
    GatewayConflictError,
    GatewayForbiddenError,
    GatewayRejectedError,
    GatewayUnauthorizedError,
    GatewayUnavailableError,
    SubordinateKind,
)
from tongxing_api.vocabulary import OWNER_FIELDS, above

INVALID_SPEC = "InvalidSpec"
KEYCLOAK_NOT_ALLOWED = "KeycloakNotAllowed"
CREDENTIALS_NOT_GRANTED = "CredentialsNotGranted"
LEVEL_ABOVE_CEILING = "LevelAboveCeiling"
OVERRIDE_NOT_ALLOWED = "OverrideNotAllowed"
REGION_CODE_TAKEN = "RegionCodeTaken"
CLIENT_ID_TAKEN = "ClientIdTaken"
#: The status field with the entity id the operator recorded at the trust anchor (issue 17).
FEDERATION_FIELD = "federationEntityId"
# The fixed keys of a granted credentials Secret: a Region cannot choose which keys are read.
USERNAME_KEY = "username"
PASSWORD_KEY = "password"  # noqa: S105 - the name of a key, not a password
S = TypeVar("S", bound=BaseModel)


class ReconcileError(Exception):
    """Why a reconcile stopped: the condition it leaves False, a reason and a message.

    ``permanent`` errors need a change of the spec (or of something it names); the others are
    retried after ``delay`` seconds.
    """

    def __init__(
        self,
        condition: ConditionType,
        reason: str,
        message: str,
        *,
        permanent: bool = False,
        delay: float = 5.0,
    ) -> None:
        super().__init__(message)
        self.condition = condition
        self.reason = reason
        self.message = message
        self.permanent = permanent
        self.delay = delay


@dataclass(frozen=True)
class ObjectRef:
    """The custom resource being reconciled."""

    kind: str
    namespace: str
    name: str
    uid: str
    generation: int

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _now() -> datetime:
    return datetime.now(UTC)


GATEWAY_PROCESS_NOTE = "as one gateway process sees it"


@dataclass
class Progress:
    """The status a reconcile leaves behind: conditions, fields and what it changed."""

    previous: Mapping[str, Any]
    generation: int
    order: tuple[ConditionType, ...]
    clock: Callable[[], datetime] = _now
    changes: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    conditions: list[Condition] = field(init=False)
    phase: str = "Provisioning"

    def __post_init__(self) -> None:
        self.conditions = parse_conditions(self.previous.get("conditions"))

    def set(self, type_: ConditionType, status: bool | None, reason: str, message: str) -> None:
        self.conditions = set_condition(
            self.conditions,
            type_,
            status,
            reason,
            message,
            generation=self.generation,
            now=self.clock(),
        )

    def fail(self, error: ReconcileError) -> None:
        self.set(error.condition, False, error.reason, error.message)
        if error.condition is not ConditionType.READY:
            self.set(ConditionType.READY, False, error.reason, error.message)
        for type_ in self.order:  # a condition never reported yet is Unknown, not absent
            if condition(self.conditions, type_) is None:
                self.set(type_, None, "Pending", "not reached yet")
        self.phase = "Failed" if error.permanent else "Provisioning"

    def drop(self, type_: ConditionType) -> None:
        """Forget a condition that no longer applies (``Federated`` without spec.federation)."""
        self.conditions = [c for c in self.conditions if c.type != type_.value]

    def ready(self, message: str) -> None:
        self.set(ConditionType.READY, True, "Ready", message)
        self.phase = "Ready"

    def previous_field(self, name: str) -> Any:
        return self.fields.get(name, self.previous.get(name))

    def status(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "observedGeneration": self.generation,
            "conditions": dump_conditions(self.conditions, self.order),
            **self.fields,
        }


def parse_spec(model: type[S], spec: Mapping[str, Any]) -> S:
    """The spec as a model, or a permanent error listing every field that is wrong."""
    try:
        return model.model_validate(dict(spec))
    except ValidationError as exc:
        problems = "; ".join(
            f"spec.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise ReconcileError(ConditionType.READY, INVALID_SPEC, problems, permanent=True) from None


@contextmanager
def _translated(
    settings: OperatorSettings, stage: ConditionType, taken: str | None = None
) -> Iterator[None]:
    """Errors of the servers the operator talks to, as conditions.

    ``taken`` is the reason a 409 or 403 of the gateway becomes: the registration is another
    owner's. It is retried (not permanent): when that owner goes away the key is free again.
    """
    delay = settings.retry_delay
    try:
        yield
    except (GatewayConflictError, GatewayForbiddenError) as exc:
        conflict = isinstance(exc, GatewayConflictError)
        why = "" if conflict else ": another owner manages it, or this credential may not"
        raise ReconcileError(
            stage,
            taken or ("GatewayConflict" if conflict else "GatewayForbidden"),
            f"{exc.message}{why} (tried again every {settings.credentials_retry_delay:g} s)",
            delay=settings.credentials_retry_delay,
        ) from None
    except KeycloakUnavailableError as exc:
        raise ReconcileError(stage, "KeycloakUnavailable", exc.message, delay=delay) from exc
    except KeycloakUnauthorizedError as exc:
        raise ReconcileError(
            stage, "KeycloakUnauthorized", exc.message, delay=settings.credentials_retry_delay
        ) from exc
    except KeycloakRejectedError as exc:
        raise ReconcileError(stage, "KeycloakRejected", exc.message, permanent=True) from exc
    except GatewayUnavailableError as exc:
        raise ReconcileError(stage, "GatewayUnavailable", exc.message, delay=delay) from exc
    except GatewayUnauthorizedError as exc:
        raise ReconcileError(
            stage, "GatewayUnauthorized", exc.message, delay=settings.credentials_retry_delay
        ) from exc
    except GatewayRejectedError as exc:
        raise ReconcileError(stage, "GatewayRejected", exc.message, permanent=True) from exc
    except TemplateError as exc:
        raise ReconcileError(stage, "InvalidTemplate", str(exc), permanent=True) from exc
    except OverrideError as exc:
        raise ReconcileError(stage, OVERRIDE_NOT_ALLOWED, str(exc), permanent=True) from None
    except ClusterUnavailableError as exc:
        raise ReconcileError(stage, "KubernetesUnavailable", str(exc), delay=delay) from exc
    except ApiException as exc:
        raise ReconcileError(
            stage, "KubernetesApiError", f"the API server answered {exc.status}: {exc.reason}"
        ) from exc


KeycloakFactory = Callable[[AdminCredentials, str, float], RealmAdmin]


def mirror_region_health(gateway: GatewayClient, code: str, progress: Progress) -> None:
    """The gateway's view of the region (its circuit) as the ``Reachable`` condition,
    refreshed by every reconcile and drift repair. The gateway's answer is one process's
    (circuits are per process), so the message says so; only codes and times are copied,
    never text from the region (THREAT_MODEL row 1)."""
    health = gateway.region_health(code)
    if health is None:
        progress.set(
            ConditionType.REACHABLE, None, "StatusUnavailable", "the gateway gave no status"
        )
        return
    state = health["state"]
    failures = health.get("failures")
    error = health.get("last_error")
    error_code = error.get("code") if isinstance(error, dict) else None
    since = health.get("since")
    if state == "closed":
        message = f"the gateway reaches the region ({GATEWAY_PROCESS_NOTE})"
        progress.set(ConditionType.REACHABLE, True, "CircuitClosed", message)
        return
    detail = f"last error {error_code}" if isinstance(error_code, str) else "no error recorded"
    when = f" since {since}" if isinstance(since, str) else ""
    count = f", {failures} failures in a row" if isinstance(failures, int) else ""
    reason = "CircuitOpen" if state == "open" else "CircuitHalfOpen"
    message = f"sign-ins are refused at once{when}: {detail}{count} ({GATEWAY_PROCESS_NOTE})"
    progress.set(ConditionType.REACHABLE, False, reason, message[:500])


class RegionReconciler:
    """Region -> a Keycloak realm (with the gateway's client) + a gateway registration."""

    def __init__(
        self,
        settings: OperatorSettings,
        templates: RealmTemplates,
        gateway: GatewayClient,
        secrets: Secrets,
        keycloak: KeycloakFactory = RealmAdmin,
    ) -> None:
        self.settings = settings
        self.templates = templates
        self.gateway = gateway
        self.secrets = secrets
        self.keycloak = keycloak

    # Admission: what the platform allows, decided before anything is read or contacted.

    def grant(self, ref: ObjectRef, spec: RegionSpec) -> KeycloakGrant:
        """The platform's grant of the Region's Keycloak, or a permanent refusal.

        Nothing is read and nothing contacted before this passes: a Region that names a host of
        its own, or credentials of its own, causes no request and no Secret read (THREAT_MODEL.md
        row 1).
        """
        keycloak = spec.keycloak
        grant = self.settings.grant_for(keycloak.url)
        if grant is None or not grant.allows(ref.namespace):
            raise ReconcileError(
                ConditionType.REALM_READY,
                KEYCLOAK_NOT_ALLOWED,
                f"spec.keycloak.url {keycloak.url} is not a Keycloak the platform grants to "
                f"namespace {ref.namespace}",
                permanent=True,
            )
        if keycloak.public_url is not None and keycloak.public_url != grant.issuer_base:
            raise ReconcileError(
                ConditionType.REALM_READY,
                KEYCLOAK_NOT_ALLOWED,
                f"spec.keycloak.publicUrl {keycloak.public_url} is not the public URL the "
                f"platform grants for {grant.url}; remove it or set {grant.issuer_base}",
                permanent=True,
            )
        if keycloak.admin_secret_ref is not None:
            raise ReconcileError(
                ConditionType.REALM_READY,
                CREDENTIALS_NOT_GRANTED,
                "the platform grants Keycloak credentials; remove spec.keycloak.adminSecretRef",
                permanent=True,
            )
        if keycloak.admin_realm is not None and keycloak.admin_realm != grant.admin_realm:
            raise ReconcileError(
                ConditionType.REALM_READY,
                CREDENTIALS_NOT_GRANTED,
                "the admin realm is the platform's grant, not the Region's; remove "
                "spec.keycloak.adminRealm",
                permanent=True,
            )
        if spec.realm_name == grant.admin_realm:
            raise ReconcileError(
                ConditionType.REALM_READY,
                KEYCLOAK_NOT_ALLOWED,
                f"realm {spec.realm_name} is the Keycloak's admin realm; choose another code or "
                "spec.keycloak.realm",
                permanent=True,
            )
        return grant

    def admit(self, ref: ObjectRef, spec: RegionSpec) -> KeycloakGrant:
        """The grant, the level ceiling and the overrides allow-list; no I/O at all."""
        grant = self.grant(ref, spec)
        ceiling = self.settings.ceiling_for(spec.code)
        over = [
            f"spec.acrMapping[{i}].level {a.level} is above the ceiling {ceiling} the platform "
            f"set for region {spec.code}"
            for i, a in enumerate(spec.acr_mapping)
            if above(a.level, ceiling)
        ]
        if over:
            raise ReconcileError(
                ConditionType.READY, LEVEL_ABOVE_CEILING, "; ".join(over), permanent=True
            )
        try:
            check_overrides(spec.overrides)
        except OverrideError as exc:
            raise ReconcileError(
                ConditionType.REALM_READY, OVERRIDE_NOT_ALLOWED, str(exc), permanent=True
            ) from None
        return grant

    def reconcile(self, ref: ObjectRef, spec: RegionSpec, progress: Progress) -> None:
        grant = self.admit(ref, spec)
        issuer = spec.issuer_at(grant.issuer_base)
        with _translated(self.settings, ConditionType.GATEWAY_REGISTERED):
            gateway_issuer = self.gateway.issuer()
        self._claimable(ref, spec)
        with _translated(self.settings, ConditionType.REALM_READY):
            blueprint = self.templates.render_for(spec, gateway_issuer, owner=ref.key)
            admin = self._admin(spec, grant)
            client_secret = self._ensure_realm(admin, blueprint, ref, progress)
        progress.fields.update(realm=spec.realm_name, issuer=issuer)
        progress.set(
            ConditionType.REALM_READY,
            True,
            "RealmInSync",
            f"realm {spec.realm_name} at {grant.url} matches template {spec.template_name}",
        )
        with _translated(self.settings, ConditionType.GATEWAY_REGISTERED, REGION_CODE_TAKEN):
            self._ensure_registration(ref, spec, issuer, client_secret, progress)
        progress.set(
            ConditionType.GATEWAY_REGISTERED,
            True,
            "Registered",
            f"region {spec.code} is registered with the gateway at {self.gateway.url}",
        )
        progress.ready(f"citizens of {spec.names.en} can sign in through the gateway")
        mirror_region_health(self.gateway, spec.code, progress)
        federate(self.gateway, ref, "region", spec.code, spec.federation, issuer, progress)

    def _claimable(self, ref: ObjectRef, spec: RegionSpec) -> None:
        """A code another owner registered is reported before any realm is made for it.

        The registration step checks again (the gateway decides, atomically); this only spares
        Keycloak a realm for a Region that cannot be served. A gateway that cannot be reached now
        does not stop provisioning: the registration waits for it, as before.
        """
        with _translated(self.settings, ConditionType.GATEWAY_REGISTERED, REGION_CODE_TAKEN):
            try:
                actual = self.gateway.region(spec.code, managed_by(ref))
            except GatewayUnavailableError:
                return
            _check_owner(actual, ref, f"region {spec.code}")

    def _admin(self, spec: RegionSpec, grant: KeycloakGrant) -> RealmAdmin:
        """Keycloak administration with the grant's credentials (its Secret, fixed keys)."""
        where = grant.credentials_secret
        stored = self.secrets.read(where.namespace, where.name)
        missing = f"the platform's Secret {where.key} with the credentials for {grant.url}"
        if stored is None:
            raise ReconcileError(
                ConditionType.REALM_READY,
                "AdminSecretMissing",
                f"{missing} does not exist",
                delay=self.settings.retry_delay,
            )
        username = stored.data.get(USERNAME_KEY)
        password = stored.data.get(PASSWORD_KEY)
        if not username or not password:
            raise ReconcileError(
                ConditionType.REALM_READY,
                "AdminSecretIncomplete",
                f"{missing} lacks {USERNAME_KEY!r} or {PASSWORD_KEY!r}",
                delay=self.settings.credentials_retry_delay,
            )
        credentials = AdminCredentials(grant.url, username, SecretStr(password), grant.admin_realm)
        return self.keycloak(credentials, spec.realm_name, self.settings.timeout)

    def _ensure_realm(
        self, admin: RealmAdmin, blueprint: RealmBlueprint, ref: ObjectRef, progress: Progress
    ) -> str:
        """Create the realm (marked as this Region's) or take up one this Region marked, make
        it match the blueprint, return the client secret.

        A realm that names another Region, or none (made by someone else: the platform, a
        person), is never touched: ``RealmOwnedElsewhere``. The marker is part of the creating
        request, so a realm this Region made always carries it, even after a crash.
        """
        realm = admin.get_realm()
        if realm is None:
            if admin.create_realm(blueprint.creation()):
                progress.changes.append(f"created realm {admin.realm}")
            realm = admin.get_realm()
            if realm is None:
                raise KeycloakUnavailableError(
                    admin.url, f"realm {admin.realm} vanished after creation"
                )
        owner = (realm.get("attributes") or {}).get(OWNER_ATTRIBUTE)
        if owner != ref.key:
            whose = (
                f"belongs to Region {owner}"
                if owner
                else f"exists and was not made for a Region (no {OWNER_ATTRIBUTE} attribute)"
            )
            raise ReconcileError(
                ConditionType.REALM_READY,
                "RealmOwnedElsewhere",
                f"realm {admin.realm} {whose}; choose another code or keycloak.realm",
                permanent=True,
            )
        update = diff.realm_update(blueprint.realm, realm)
        if update:
            admin.update_realm(update)
            progress.changes.append(f"updated realm {admin.realm} ({', '.join(sorted(update))})")

        profile = admin.user_profile()
        new_profile = diff.user_profile_update(blueprint.user_profile, profile)
        if new_profile is not None:
            admin.update_user_profile(new_profile)
            progress.changes.append("updated the user profile")

        for alias, wanted in blueprint.required_actions.items():
            current = admin.required_action(alias)
            if current is not None and not diff.covers(current, wanted):
                admin.update_required_action(alias, {**current, **wanted})
                progress.changes.append(f"updated required action {alias}")

        client = admin.client_by_client_id(GATEWAY_CLIENT_ID)
        if client is None:
            if admin.create_client(blueprint.client):
                progress.changes.append(f"created client {GATEWAY_CLIENT_ID}")
            client = admin.client_by_client_id(GATEWAY_CLIENT_ID)
            if client is None:
                raise KeycloakUnavailableError(
                    admin.url, "the gateway client vanished after creation"
                )
        client_update = diff.client_update(blueprint.client, client)
        if client_update is not None:
            admin.update_client(client["id"], client_update)
            progress.changes.append(f"updated client {GATEWAY_CLIENT_ID}")
        to_add, to_replace = diff.mapper_changes(
            blueprint.client.get("protocolMappers", []), client.get("protocolMappers") or []
        )
        for mapper in to_add:
            admin.add_mapper(client["id"], mapper)
            progress.changes.append(f"added protocol mapper {mapper['name']}")
        for mapper in to_replace:
            admin.update_mapper(client["id"], mapper)
            progress.changes.append(f"restored protocol mapper {mapper['name']}")
        return admin.client_secret(client["id"])

    def registration(self, ref: ObjectRef, spec: RegionSpec, issuer: str) -> dict[str, Any]:
        """The region as the gateway's admin API takes it (without its secret)."""
        return {
            "code": spec.code,
            "names": {"zh": spec.names.zh, "en": spec.names.en},
            "kind": spec.kind.value,
            "issuer": issuer,
            "client_id": GATEWAY_CLIENT_ID,
            "scopes": ["openid", "profile"],
            "claims": {
                "identity_number": "id_number",
                "name": "name",
                "phone_number": "phone_number",
            },
            "acr_mapping": spec.acr_levels,
            "enabled": spec.enabled,
            "managed_by": managed_by(ref),
        }

    def _ensure_registration(
        self,
        ref: ObjectRef,
        spec: RegionSpec,
        issuer: str,
        client_secret: str,
        progress: Progress,
    ) -> None:
        desired = self.registration(ref, spec, issuer)
        actual = self.gateway.region(spec.code, managed_by(ref))
        _check_owner(actual, ref, f"region {spec.code}")
        fingerprint = diff.digest(client_secret)
        stale = [] if actual is None else diff.registration_changes(desired, actual)
        if fingerprint != progress.previous_field("registeredSecret"):
            stale.append("client_secret")
        if actual is None or stale:
            created = self.gateway.put_region(
                spec.code, {**desired, "client_secret": client_secret}
            )
            progress.changes.append(
                f"registered region {spec.code} with the gateway"
                if created
                else f"updated the gateway's region {spec.code} ({', '.join(stale)})"
            )
        progress.fields["registeredSecret"] = fingerprint

    def delete(self, ref: ObjectRef, spec: RegionSpec, *, federated: bool = False) -> list[str]:
        """Remove the registration and (unless retained) the realm: only what is this Region's.

        A Region the platform does not grant its Keycloak never had anything made for it: it is
        let go without a read or a request. A realm marked for another Region (or for none), or
        a registration the gateway says is another owner's, is left to its owner; so is the
        realm then, for the code was never this Region's to serve. A Keycloak that refuses
        (4xx) to show or delete the realm gets the same answer on every retry: the realm is left
        in place, said so, and the Region goes; unavailable Keycloaks are waited for.
        """
        try:
            grant = self.grant(ref, spec)
        except ReconcileError as refused:
            return [f"nothing to clean up: {refused.message}"]
        changes: list[str] = []
        unreadable: str | None = None
        with _translated(self.settings, ConditionType.REALM_READY):
            admin = self._admin(spec, grant)
            try:
                realm = admin.get_realm()
            except KeycloakRejectedError as exc:
                realm, unreadable = None, exc.message
            owner = None if realm is None else (realm.get("attributes") or {}).get(OWNER_ATTRIBUTE)
            if owner not in (None, ref.key):
                # Never this Region's: its registration and realm belong to another Region.
                return [f"left realm {spec.realm_name} and its registration to Region {owner}"]
        if federated or spec.federation is not None:
            changes += leave_federation(self.settings, self.gateway, ref, "region", spec.code)
        with _translated(self.settings, ConditionType.GATEWAY_REGISTERED):
            try:
                if self.gateway.delete_region(spec.code, managed_by(ref)):
                    changes.append(f"removed region {spec.code} from the gateway")
            except (GatewayConflictError, GatewayForbiddenError):
                changes.append(f"left region {spec.code} to its owner")
                return changes
        if unreadable is not None:
            changes.append(f"left realm {spec.realm_name} as it is: {unreadable}")
        elif realm is not None and owner is None:
            changes.append(f"left realm {spec.realm_name} alone: it is not marked as this Region's")
        elif spec.deletion_policy is DeletionPolicy.RETAIN:
            changes.append(f"kept realm {spec.realm_name} (deletionPolicy: Retain)")
        elif realm is not None:
            with _translated(self.settings, ConditionType.REALM_READY):
                try:
                    if admin.delete_realm():
                        changes.append(f"deleted realm {spec.realm_name}")
                except KeycloakRejectedError as exc:
                    changes.append(f"left realm {spec.realm_name} as it is: {exc.message}")
        return changes


def federate(
    gateway: GatewayClient,
    ref: ObjectRef,
    kind: SubordinateKind,
    key: str,
    federation: FederationSpec | None,
    issuer: str | None,
    progress: Progress,
) -> None:
    """The subordinate spec.federation describes, at the trust anchor (OpenID Federation 1.0
    §3, issue 17): read, diff, write, as the registration is; removed when spec.federation is
    (only if this operator recorded it: one the platform recorded is the platform's).

    A region's entity id defaults to its realm's issuer (§5.1.3: an OP's issuer is its entity
    id). Every failure is the ``Federated`` condition (False, with the gateway's field messages)
    and never stops the reconcile: the registration serves sign-ins without the federation, and
    the drift timer tries again.
    """
    owner = managed_by(ref)
    where = f"{kind} {key}"
    try:
        if federation is None:
            if progress.previous_field(FEDERATION_FIELD):
                if gateway.delete_federation_subordinate(kind, key, owner):
                    progress.changes.append(f"removed {where} from the federation")
                progress.fields[FEDERATION_FIELD] = None  # a merge patch's null removes it
            progress.drop(ConditionType.FEDERATED)
            return
        entity_id = federation.entity_id or issuer
        if entity_id is None:  # a Portal's model requires entityId; this is a guard
            raise GatewayRejectedError("no entity id to record", [])
        desired = federation.document(entity_id)
        actual = gateway.federation_subordinate(kind, key, owner)
        stale = sorted(
            name for name, value in desired.items() if actual is None or actual.get(name) != value
        )
        if stale:
            gateway.put_federation_subordinate(kind, key, desired, owner)
            progress.changes.append(
                f"published {where} in the federation as {entity_id}"
                if actual is None
                else f"updated {where} in the federation ({', '.join(stale)})"
            )
        progress.fields[FEDERATION_FIELD] = entity_id
        progress.set(
            ConditionType.FEDERATED,
            True,
            "SubordinateRecorded",
            f"the trust anchor {gateway.url} publishes a subordinate statement about {entity_id}",
        )
    except GatewayRejectedError as exc:
        progress.set(ConditionType.FEDERATED, False, "SubordinateRefused", exc.message)
    except (GatewayForbiddenError, GatewayConflictError) as exc:
        progress.set(ConditionType.FEDERATED, False, "SubordinateForbidden", exc.message)
    except GatewayUnauthorizedError as exc:
        progress.set(ConditionType.FEDERATED, False, "GatewayUnauthorized", exc.message)
    except GatewayUnavailableError as exc:
        progress.set(ConditionType.FEDERATED, False, "GatewayUnavailable", exc.message)


def leave_federation(
    settings: OperatorSettings,
    gateway: GatewayClient,
    ref: ObjectRef,
    kind: SubordinateKind,
    key: str,
) -> list[str]:
    """Remove the subordinate of a resource being deleted, before its registration (the gateway
    derives the operator's right to it from the registration). Another owner's is left; a
    gateway that cannot be reached is waited for (the finalizer holds)."""
    with _translated(settings, ConditionType.FEDERATED):
        try:
            if gateway.delete_federation_subordinate(kind, key, managed_by(ref)):
                return [f"removed {kind} {key} from the federation"]
        except (GatewayConflictError, GatewayForbiddenError):
            return [f"left the federation subordinate {kind} {key} to its owner"]
    return []


def managed_by(ref: ObjectRef) -> dict[str, str]:
    """Who a registration belongs to: the custom resource (the gateway adds the principal)."""
    return {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name, "uid": ref.uid}


def _check_owner(actual: dict[str, Any] | None, ref: ObjectRef, what: str) -> None:
    """A registration the gateway showed that is not this resource's is another owner's.

    The gateway answers 403 for those already; this catches one made before owners existed
    (no ``managed_by``), which the gateway refuses to replace (409) all the same. A new uid
    under the same namespace and name is the same resource made again: it takes over.
    """
    if actual is None:
        return
    owner = actual.get("managed_by")
    mine = managed_by(ref)
    if not isinstance(owner, dict) or any(owner.get(key) != mine[key] for key in OWNER_FIELDS):
        raise GatewayConflictError(
            f"{what} is registered with the gateway by another owner",
            [{"field": what, "message": "managed by another owner"}],
        )


class PortalReconciler:
    """Portal -> a credentials Secret + a gateway client registration."""

    def __init__(
        self, settings: OperatorSettings, gateway: GatewayClient, secrets: Secrets
    ) -> None:
        self.settings = settings
        self.gateway = gateway
        self.secrets = secrets

    def registration(self, ref: ObjectRef, spec: PortalSpec, client_id: str) -> dict[str, Any]:
        """The portal as the gateway's admin API takes it (without its secret)."""
        return {
            "client_id": client_id,
            "names": {"zh": spec.names.zh, "en": spec.names.en},
            "owner": spec.region,
            "application_type": spec.application_type,
            "redirect_uris": list(spec.redirect_uris),
            "post_logout_redirect_uris": list(spec.post_logout_redirect_uris),
            "backchannel_logout_uri": spec.backchannel_logout_uri,
            "backchannel_logout_session_required": spec.backchannel_logout_session_required,
            "sector_identifier_uri": spec.sector_identifier_uri,
            "token_endpoint_auth_method": spec.token_endpoint_auth_method.value,
            "scopes": spec.scopes,
            "subject_type": spec.subject_type,
            "subject_kinds": spec.subject_kinds,
            "minimum_level": spec.minimum_level,
            "sector": spec.sector or "general",
            "enabled": spec.enabled,
            "managed_by": managed_by(ref),
        }

    def reconcile(self, ref: ObjectRef, spec: PortalSpec, progress: Progress) -> None:
        """Ask the gateway first: a client id another owner holds gets no Secret and no PUT."""
        client_id = spec.client_id_for(ref.name)
        progress.fields.update(clientId=client_id, secretName=spec.secret_name)
        with _translated(self.settings, ConditionType.GATEWAY_REGISTERED, CLIENT_ID_TAKEN):
            issuer = self.gateway.issuer()
            actual = self.gateway.portal(client_id, managed_by(ref))
            _check_owner(actual, ref, f"portal {client_id}")
        progress.fields["issuer"] = issuer
        with _translated(self.settings, ConditionType.SECRET_READY):
            client_secret = self._ensure_secret(ref, spec, client_id, issuer, progress)
        progress.set(
            ConditionType.SECRET_READY,
            True,
            "SecretWritten",
            f"Secret {spec.secret_name} holds the client credentials",
        )
        with _translated(self.settings, ConditionType.GATEWAY_REGISTERED, CLIENT_ID_TAKEN):
            desired = self.registration(ref, spec, client_id)
            stale = [] if actual is None else diff.registration_changes(desired, actual)
            fingerprint = None if client_secret is None else diff.digest(client_secret)
            if fingerprint is not None and fingerprint != progress.previous_field(
                "registeredSecret"
            ):
                stale.append("client_secret")
            if actual is None or stale:
                document = dict(desired)
                if client_secret is not None:
                    document["client_secret"] = client_secret
                created = self.gateway.put_portal(client_id, document)
                progress.changes.append(
                    f"registered portal {client_id} with the gateway"
                    if created
                    else f"updated the gateway's portal {client_id} ({', '.join(stale)})"
                )
            if fingerprint is not None:
                progress.fields["registeredSecret"] = fingerprint
        progress.set(
            ConditionType.GATEWAY_REGISTERED,
            True,
            "Registered",
            f"portal {client_id} is registered with the gateway at {self.gateway.url}",
        )
        progress.ready(f"portal {client_id} can sign people in through the gateway")
        federate(self.gateway, ref, "portal", client_id, spec.federation, None, progress)

    def _ensure_secret(
        self, ref: ObjectRef, spec: PortalSpec, client_id: str, issuer: str, progress: Progress
    ) -> str | None:
        """The credentials Secret, created first, so a secret is never issued and then lost."""
        owner = Owner(ref.kind, ref.name, ref.uid)
        stored = self.secrets.read(ref.namespace, spec.secret_name)
        if stored is not None and not stored.owned_by(owner):
            raise ReconcileError(
                ConditionType.SECRET_READY,
                "SecretConflict",
                f"Secret {spec.secret_name} exists and does not belong to this Portal; "
                "name another secretName or delete that Secret",
                permanent=True,
            )
        client_secret: str | None = None
        if spec.token_endpoint_auth_method.uses_secret:
            kept = stored.data.get("client_secret") if stored else None
            client_secret = kept if kept and len(kept) >= 32 else random_secrets.token_urlsafe(32)
        wanted = {"client_id": client_id, "issuer": issuer}
        if client_secret is not None:
            wanted["client_secret"] = client_secret
        if stored is None:
            if not self.secrets.create(ref.namespace, spec.secret_name, wanted, owner):
                raise ReconcileError(
                    ConditionType.SECRET_READY,
                    "SecretRace",
                    f"Secret {spec.secret_name} appeared while it was being created",
                    delay=1.0,
                )
            progress.changes.append(f"created Secret {spec.secret_name}")
        elif stored.data != wanted:
            self.secrets.update_data(ref.namespace, spec.secret_name, wanted, stored.data)
            progress.changes.append(f"updated Secret {spec.secret_name}")
        return client_secret

    def delete(self, ref: ObjectRef, spec: PortalSpec, *, federated: bool = False) -> list[str]:
        """Remove the subordinate and the registration if they are this Portal's, and the Secret
        this Portal owns."""
        changes: list[str] = []
        client_id = spec.client_id_for(ref.name)
        if federated or spec.federation is not None:
            changes += leave_federation(self.settings, self.gateway, ref, "portal", client_id)
        with _translated(self.settings, ConditionType.GATEWAY_REGISTERED):
            try:
                if self.gateway.delete_portal(client_id, managed_by(ref)):
                    changes.append(f"removed portal {client_id} from the gateway")
            except (GatewayConflictError, GatewayForbiddenError):
                changes.append(f"left portal {client_id} to its owner")
        with _translated(self.settings, ConditionType.SECRET_READY):
            stored = self.secrets.read(ref.namespace, spec.secret_name)
            owner = Owner(ref.kind, ref.name, ref.uid)
            if stored is not None and stored.owned_by(owner):
                self.secrets.delete(ref.namespace, spec.secret_name)
                changes.append(f"deleted Secret {spec.secret_name}")
        return changes


def new_progress(
    kind: str, status: Mapping[str, Any], generation: int, clock: Callable[[], datetime] = _now
) -> Progress:
    order = REGION_CONDITIONS if kind == "Region" else PORTAL_CONDITIONS
    return Progress(previous=dict(status), generation=generation, order=order, clock=clock)
