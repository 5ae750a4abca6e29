"""Thin kopf handlers: parse the resource, call its reconciler, write status, tell kopf.

Create, update and resume all reconcile; a timer repairs drift (a realm or client deleted or
edited by hand comes back); deletion runs behind the finalizer ``tongxing.io/cleanup``.
A :class:`~realm_operator.reconcile.ReconcileError` becomes a condition plus kopf's
``TemporaryError(delay=...)`` (retried in seconds) or ``PermanentError`` (waits for a new spec);
kopf posts both as events on the resource.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kopf

from realm_operator.cluster import Secrets, api_client
from realm_operator.models import (
    FINALIZER,
    GROUP,
    VERSION,
    ConditionType,
    PortalSpec,
    RegionSpec,
    condition,
    parse_conditions,
)
from realm_operator.reconcile import (
    FEDERATION_FIELD,
    INVALID_SPEC,
    ObjectRef,
    PortalReconciler,
    Progress,
    ReconcileError,
    RegionReconciler,
    new_progress,
    parse_spec,
)
from realm_operator.settings import OperatorSettings
from realm_operator.templates import RealmTemplates
from tongxing_api.client import GatewayClient

REGIONS = (GROUP, VERSION, "regions")
PORTALS = (GROUP, VERSION, "portals")


@dataclass
class ObjectLocks:
    """One lock per resource: the timer and a change handler never reconcile it at once."""

    _guard: threading.Lock = field(default_factory=threading.Lock)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)

    def lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def forget(self, key: str) -> None:
        with self._guard:
            self._locks.pop(key, None)


@dataclass
class Services:
    settings: OperatorSettings
    regions: RegionReconciler
    portals: PortalReconciler
    locks: ObjectLocks = field(default_factory=ObjectLocks)

    @classmethod
    def build(cls, settings: OperatorSettings, templates: RealmTemplates) -> Services:
        gateway = GatewayClient(
            settings.gateway_url,
            settings.admin_token,
            timeout=settings.timeout,
            issuer_override=settings.gateway_issuer,
        )
        secrets = Secrets(api_client(), timeout=settings.timeout)
        return cls(
            settings,
            RegionReconciler(settings, templates, gateway, secrets),
            PortalReconciler(settings, gateway, secrets),
        )


def _services(memo: Any) -> Services:
    services = getattr(memo, "services", None)
    if not isinstance(services, Services):
        raise kopf.PermanentError("the operator was started without its services")
    return services


def _ref(kind: str, body: kopf.Body) -> ObjectRef:
    meta = body["metadata"]
    return ObjectRef(
        kind,
        str(meta.get("namespace") or ""),
        str(meta["name"]),
        str(meta["uid"]),
        int(meta.get("generation") or 0),
    )


Reconcile = Callable[[Services, ObjectRef, dict[str, Any], Progress], None]


def _region(services: Services, ref: ObjectRef, spec: dict[str, Any], progress: Progress) -> None:
    services.regions.reconcile(ref, parse_spec(RegionSpec, spec), progress)


def _portal(services: Services, ref: ObjectRef, spec: dict[str, Any], progress: Progress) -> None:
    services.portals.reconcile(ref, parse_spec(PortalSpec, spec), progress)


def _federated(body: kopf.Body) -> bool:
    """Whether the status says the operator recorded a subordinate for the resource."""
    return bool((body.get("status") or {}).get(FEDERATION_FIELD))


def _run(
    kind: str, reconcile: Reconcile, body: kopf.Body, patch: kopf.Patch, memo: Any
) -> tuple[Progress, ReconcileError | None]:
    services = _services(memo)
    ref = _ref(kind, body)
    progress = new_progress(kind, body.get("status") or {}, ref.generation)
    error: ReconcileError | None = None
    with services.locks.lock(ref.key):
        try:
            reconcile(services, ref, dict(body.get("spec") or {}), progress)
        except ReconcileError as exc:
            progress.fail(exc)
            error = exc
    current = body.get("status") or {}
    wanted = progress.status()
    if any(current.get(key) != value for key, value in wanted.items()):
        patch.status.update(wanted)  # a settled object costs the API server no write
    return progress, error


def _report(
    body: kopf.Body, progress: Progress, error: ReconcileError | None, logger: Any, reason: str
) -> None:
    """Events for what changed and for each change of state, not for every retry."""
    for change in progress.changes:
        logger.info(change[0].upper() + change[1:])
        kopf.info(body, reason=reason, message=change)
    _report_federated(body, progress, logger)
    before = condition(parse_conditions(progress.previous.get("conditions")), ConditionType.READY)
    after = condition(progress.conditions, ConditionType.READY)
    if after is None or (before and (before.status, before.reason) == (after.status, after.reason)):
        return
    if error is not None:
        logger.warning(f"{error.reason}: {error.message}")
        kopf.warn(body, reason=error.reason, message=error.message)
    else:
        kopf.info(body, reason="Ready", message=after.message)


def _report_federated(body: kopf.Body, progress: Progress, logger: Any) -> None:
    """A Warning event when the trust anchor refuses or cannot be told (issue 17), once per
    change of the ``Federated`` condition's status or reason."""
    before = condition(
        parse_conditions(progress.previous.get("conditions")), ConditionType.FEDERATED
    )
    after = condition(progress.conditions, ConditionType.FEDERATED)
    if after is None or after.status != "False":
        return
    if before is not None and (before.status, before.reason) == (after.status, after.reason):
        return
    logger.warning(f"{after.reason}: {after.message}")
    kopf.warn(body, reason=after.reason, message=after.message)


def _change(
    kind: str, reconcile: Reconcile, body: kopf.Body, patch: kopf.Patch, memo: Any, logger: Any
) -> None:
    progress, error = _run(kind, reconcile, body, patch, memo)
    _report(body, progress, error, logger, "Reconciled")
    if error is None:
        return
    if error.permanent:
        raise kopf.PermanentError(f"{error.reason}: {error.message}")
    raise kopf.TemporaryError(f"{error.reason}: {error.message}", delay=error.delay)


def _repair(
    kind: str, reconcile: Reconcile, body: kopf.Body, patch: kopf.Patch, memo: Any, logger: Any
) -> None:
    """The drift timer: reconcile objects that are settled; report, never raise."""
    meta = body["metadata"]
    status = body.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("observedGeneration") != meta.get("generation"):
        return  # being deleted, or the change handlers have not finished this generation yet
    if status.get("phase") == "Failed":
        return  # a permanent error waits for a new spec
    progress, error = _run(kind, reconcile, body, patch, memo)
    _report(body, progress, error, logger, "DriftRepaired")


def _delete(
    kind: str,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: Any,
    logger: Any,
    clean: Callable[[Services, ObjectRef], list[str]],
) -> None:
    services = _services(memo)
    ref = _ref(kind, body)
    with services.locks.lock(ref.key):
        try:
            changes = clean(services, ref)
        except ReconcileError as error:
            if error.reason == INVALID_SPEC:
                logger.warning(f"Nothing to clean up: {error.message}")
                changes = []
            else:
                progress = new_progress(kind, body.get("status") or {}, ref.generation)
                progress.fail(error)
                progress.phase = "Deleting"
                patch.status.update(progress.status())
                # What is left is retried (Keycloak or the gateway down, credentials refused):
                # the finalizer must not leave a realm behind. The reconcilers let a resource
                # go by themselves when retrying cannot help (nothing of theirs, or a refusal).
                raise kopf.TemporaryError(
                    f"{error.reason}: {error.message}",
                    delay=max(error.delay, services.settings.retry_delay),
                ) from None
    services.locks.forget(ref.key)
    for change in changes:
        logger.info(change[0].upper() + change[1:])
        kopf.info(body, reason="CleanedUp", message=change)


# The handlers kopf calls.


def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    # Progress and the last handled spec go to annotations: the status is ours, and its schema
    # would prune kopf's own fields.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.reporting_component = "tongxing-operator"
    settings.posting.reporting_instance = os.environ.get("POD_NAME") or socket.gethostname()
    # Events are posted explicitly (what changed, each change of state), not from every log line.
    settings.posting.level = logging.INFO
    settings.execution.max_workers = 8
    # A drift timer caught mid-run when its object is deleted finishes in a second or two; kopf
    # holds the finalizer until it has, and by default looks again only after 60 s.
    settings.background.cancellation_polling = 1.0
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The service account in a pod, ``$KUBECONFIG`` elsewhere (read now, not at import)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def reconcile_region(body: kopf.Body, patch: kopf.Patch, memo: Any, logger: Any, **_: Any) -> None:
    _change("Region", _region, body, patch, memo, logger)


def repair_region(body: kopf.Body, patch: kopf.Patch, memo: Any, logger: Any, **_: Any) -> None:
    _repair("Region", _region, body, patch, memo, logger)


def delete_region(body: kopf.Body, patch: kopf.Patch, memo: Any, logger: Any, **_: Any) -> None:
    def clean(services: Services, ref: ObjectRef) -> list[str]:
        spec = parse_spec(RegionSpec, dict(body.get("spec") or {}))
        return services.regions.delete(ref, spec, federated=_federated(body))

    _delete("Region", body, patch, memo, logger, clean)


def reconcile_portal(body: kopf.Body, patch: kopf.Patch, memo: Any, logger: Any, **_: Any) -> None:
    _change("Portal", _portal, body, patch, memo, logger)


def repair_portal(body: kopf.Body, patch: kopf.Patch, memo: Any, logger: Any, **_: Any) -> None:
    _repair("Portal", _portal, body, patch, memo, logger)


def delete_portal(body: kopf.Body, patch: kopf.Patch, memo: Any, logger: Any, **_: Any) -> None:
    def clean(services: Services, ref: ObjectRef) -> list[str]:
        spec = parse_spec(PortalSpec, dict(body.get("spec") or {}))
        return services.portals.delete(ref, spec, federated=_federated(body))

    _delete("Portal", body, patch, memo, logger, clean)


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    """Every handler, with the pacing from the settings."""
    registry = kopf.OperatorRegistry()
    kopf.on.startup(registry=registry)(configure)
    kopf.on.login(registry=registry)(login)
    backoff = settings.retry_delay
    interval = settings.drift_interval
    for resource, changed, repair, delete in (
        (REGIONS, reconcile_region, repair_region, delete_region),
        (PORTALS, reconcile_portal, repair_portal, delete_portal),
    ):
        for cause in (kopf.on.create, kopf.on.update, kopf.on.resume):
            cause(*resource, registry=registry, backoff=backoff)(changed)
        kopf.on.delete(*resource, registry=registry, backoff=backoff)(delete)
        kopf.timer(*resource, registry=registry, interval=interval, initial_delay=interval)(repair)
    return registry
