"""The whole store: its lifecycle, and :class:`Store`, the union of every aggregate's contract."""

from __future__ import annotations

import datetime
from typing import Protocol

from gateway.store.contract.attempts import AttemptStore
from gateway.store.contract.audit import AuditStore
from gateway.store.contract.consents import ConsentStore
from gateway.store.contract.deliveries import LogoutDeliveryStore
from gateway.store.contract.federation import FederationStore  # issue 17
from gateway.store.contract.federation_registrations import FederationRegistrationStore  # §12.2
from gateway.store.contract.mandates import MandateStore
from gateway.store.contract.pending_authorizations import PendingAuthorizationStore
from gateway.store.contract.policy_sets import PolicySetStore
from gateway.store.contract.pushed_requests import PushedRequestStore  # RFC 9126
from gateway.store.contract.registry import RegistryStore
from gateway.store.contract.replay import ReplayStore
from gateway.store.contract.second_factors import SecondFactorStore
from gateway.store.contract.sessions import SessionStore
from gateway.store.contract.subjects import SubjectStore
from gateway.store.contract.tokens import TokenStore
from gateway.store.contract.verified_claims import VerifiedClaimsStore


class LifecycleStore(Protocol):
    """The store as a whole: schema, health, connections and housekeeping."""

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent; safe from several replicas)."""
        ...

    def healthy(self) -> bool:
        """A cheap round trip to the database, for readiness probes. Never raises."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    def purge_expired(self, now: datetime.datetime) -> int:
        """Delete expired short-lived rows; return how many rows went.

        Attempt counters go once their window and any lock have passed; logout deliveries at
        their ``expires_at`` (pending or given up).
        """
        ...


class Store(
    LifecycleStore,
    SubjectStore,
    RegistryStore,
    TokenStore,
    SessionStore,
    PendingAuthorizationStore,
    SecondFactorStore,
    AttemptStore,
    ConsentStore,
    ReplayStore,
    LogoutDeliveryStore,
    AuditStore,
    PolicySetStore,
    VerifiedClaimsStore,
    MandateStore,
    FederationStore,
    FederationRegistrationStore,
    PushedRequestStore,
    Protocol,
):
    """Everything the gateway keeps. One transaction per call; see :mod:`gateway.store.contract`.

    Services that need one aggregate depend on its narrow protocol (:class:`SessionStore`,
    :class:`TokenStore`, ...); only what wires them together needs the whole store.
    """


__all__ = ["LifecycleStore", "Store"]
