"""The audit trail's sink: the events that must leave a trace become audit records.

GB/T 22239-2019 §8.1.4 (security audit, level 3): a) audit covers every user and the
security-relevant events; b) each record holds the date and time, the user, the event type,
whether it succeeded, and other audit-relevant information; c) records are protected from
unexpected deletion, change or overwriting (the hash chain and the append-only table of
:mod:`gateway.store.contract.audit`) and kept (``TONGXING_AUDIT_RETENTION``, 184 days by default:
the Cybersecurity Law's six months). THREAT_MODEL row 9: every sign-in, logout, consent, factor
change, identity link and admin change leaves a record.

:class:`AuditTrail` is subscribed ``required=True`` to the gateway's
:class:`~gateway.observe.Events` (:func:`gateway.services.wire`): if a record cannot be written,
the emitter's action fails instead of happening without a trace. It records sign-ins completed
and failed, logouts, consents given and withdrawn, factors bound and removed (a help-desk reset
with its principal and reason), step-up checks and lock-outs, identities linked from a further
region, admin changes (before and after, redacted by the emitter and once more here) and policy
reloads. Not token issuance (one per request of every portal: metrics count it), nor the start
of a sign-in or a back-channel delivery attempt (metrics and logs).

Records carry identifiers only (THREAT_MODEL row 8): the national subject's opaque id, an admin
principal's name, a portal's client id, a region's code, reason codes and levels; never an
identity number, a token, a secret or a password, because no event carries one.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections.abc import Callable
from typing import Any, Final

from gateway.clock import Clock, utc_now
from gateway.observe import (
    AdminChange,
    ConsentGiven,
    ConsentWithdrawn,
    EnterpriseSignedIn,
    Event,
    FactorBound,
    FactorRemoved,
    IdentityLinked,
    LockedOut,
    LoggedOut,
    MandateAccepted,
    MandateGranted,
    MandateRefused,
    MandateRevoked,
    MandateUsed,
    PolicyReloaded,
    SignInCompleted,
    SignInFailed,
    SteppedUp,
    redact,
)
from gateway.store.contract.audit import (
    MAX_DETAILS_BYTES,
    AuditEntry,
    AuditStore,
    canonical_details,
)

log = logging.getLogger(__name__)

SIGN_IN_KINDS: Final = frozenset({SignInCompleted.kind})
"""The kinds the citizen's account page lists as their recent sign-ins."""

DEFAULT_ENTRY_LIMIT: Final = 4096
"""Bytes of ``details`` the sink keeps per record; larger admin documents are replaced by
their digest (the admin API's own store keeps the documents themselves)."""


def _sign_in_completed(event: SignInCompleted, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(
        kind=event.kind,
        outcome="success",
        occurred_at=now,
        subject=event.subject,
        portal=event.portal,
        region=event.region,
        level=event.level,
        details={"amr": list(event.amr), "single_sign_on": event.single_sign_on},
    )


def _sign_in_failed(event: SignInFailed, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(
        kind=event.kind,
        outcome="failure",
        occurred_at=now,
        subject=event.subject,
        portal=event.portal,
        region=event.region,
        details={"reason": event.reason},
    )


def _identity_linked(event: IdentityLinked, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(
        kind=event.kind,
        outcome="linked",
        occurred_at=now,
        subject=event.subject,
        region=event.region,
        details={"earlier_regions": sorted(event.earlier_regions)},
    )


def _stepped_up(event: SteppedUp, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(
        kind=event.kind,
        outcome=event.outcome,
        occurred_at=now,
        subject=event.subject,
        details={"method": event.method},
    )


def _locked_out(event: LockedOut, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(kind=event.kind, outcome="locked_out", occurred_at=now, subject=event.subject)


def _factor_bound(event: FactorBound, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(kind=event.kind, outcome="bound", occurred_at=now, subject=event.subject)


def _factor_removed(event: FactorRemoved, now: datetime.datetime) -> AuditEntry:
    by_help_desk = event.principal is not None
    return AuditEntry(
        kind=event.kind,
        outcome="reset" if by_help_desk else "removed",
        occurred_at=now,
        subject=event.subject,
        principal=event.principal,
        details={"reason": event.reason} if event.reason is not None else {},
    )


def _consent_given(event: ConsentGiven, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(
        kind=event.kind,
        outcome="given",
        occurred_at=now,
        subject=event.subject,
        portal=event.portal,
        details={"claims": sorted(event.claims)},
    )


def _consent_withdrawn(event: ConsentWithdrawn, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(
        kind=event.kind,
        outcome="withdrawn",
        occurred_at=now,
        subject=event.subject,
        portal=event.portal,
    )


def _logged_out(event: LoggedOut, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(
        kind=event.kind,
        outcome="ended",
        occurred_at=now,
        subject=event.subject,
        region=event.region,
        details={"initiator": event.initiator, "portals": sorted(event.portals)},
    )


def _admin_change(event: AdminChange, now: datetime.datetime) -> AuditEntry:
    details: dict[str, Any] = {
        "role": event.role,
        "action": event.action,
        "target_kind": event.target_kind,
        "target": event.target,
        # Redacted by the emitter; once more here, so a missed field cannot reach the trail.
        "before": redact(event.before),
        "after": redact(event.after),
    }
    if event.reason is not None:
        details["reason"] = event.reason
    subject = event.target if event.target_kind == "subject" else None
    return AuditEntry(
        kind=event.kind,
        outcome="done",
        occurred_at=now,
        subject=subject,
        principal=event.principal,
        portal=event.target if event.target_kind == "portal" else None,
        region=event.target if event.target_kind == "region" else None,
        details=_bounded(details),
    )


def _policy_reloaded(event: PolicyReloaded, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(
        kind=event.kind,
        outcome=event.outcome,
        occurred_at=now,
        principal=event.principal,
        details={"digest": event.digest},
    )


def _enterprise_signed_in(event: EnterpriseSignedIn, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(
        kind=event.kind,
        outcome="signed_in",
        occurred_at=now,
        subject=event.subject,
        region=event.region,
        details={"enterprise": event.enterprise, "role": event.role},
    )


def _mandate_granted(event: MandateGranted, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(
        kind=event.kind,
        outcome="granted",
        occurred_at=now,
        subject=event.subject,
        details={
            "enterprise": event.enterprise,
            "mandate": event.mandate,
            "portals": sorted(event.portals),
            "sectors": sorted(event.sectors),
        },
    )


def _mandate_accepted(event: MandateAccepted, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(
        kind=event.kind,
        outcome="accepted",
        occurred_at=now,
        subject=event.subject,
        details={"enterprise": event.enterprise, "mandate": event.mandate},
    )


def _mandate_used(event: MandateUsed, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(
        kind=event.kind,
        outcome="used",
        occurred_at=now,
        subject=event.subject,
        portal=event.portal,
        details={"enterprise": event.enterprise, "role": event.role, "mandate": event.mandate},
    )


def _mandate_revoked(event: MandateRevoked, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(
        kind=event.kind,
        outcome="revoked",
        occurred_at=now,
        subject=event.subject,
        details={"enterprise": event.enterprise, "mandate": event.mandate},
    )


def _mandate_refused(event: MandateRefused, now: datetime.datetime) -> AuditEntry:
    return AuditEntry(
        kind=event.kind,
        outcome="refused",
        occurred_at=now,
        subject=event.subject,
        portal=event.portal,
        details={"reason": event.reason, "mandate": event.mandate},
    )


def _bounded(details: dict[str, Any], limit: int = DEFAULT_ENTRY_LIMIT) -> dict[str, Any]:
    """``details``, or, when larger than ``limit`` bytes, with ``before`` and ``after``
    replaced by the SHA-256 of their canonical JSON (so a record never grows unbounded, and the
    documents can still be matched against a backup)."""
    if len(canonical_details(details).encode("utf-8")) <= limit:
        return details
    bounded = dict(details)
    for name in ("before", "after"):
        document = details.get(name)
        if document is not None:
            encoded = canonical_details(document).encode("utf-8")
            bounded[name] = {"sha256": hashlib.sha256(encoded).hexdigest(), "bytes": len(encoded)}
    if len(canonical_details(bounded).encode("utf-8")) > MAX_DETAILS_BYTES:
        bounded = {k: v for k, v in bounded.items() if k not in ("before", "after", "reason")}
    return bounded


_RECORDERS: Final[dict[type[Event], Callable[[Any, datetime.datetime], AuditEntry]]] = {
    SignInCompleted: _sign_in_completed,
    SignInFailed: _sign_in_failed,
    IdentityLinked: _identity_linked,
    SteppedUp: _stepped_up,
    LockedOut: _locked_out,
    FactorBound: _factor_bound,
    FactorRemoved: _factor_removed,
    ConsentGiven: _consent_given,
    ConsentWithdrawn: _consent_withdrawn,
    LoggedOut: _logged_out,
    AdminChange: _admin_change,
    PolicyReloaded: _policy_reloaded,
    EnterpriseSignedIn: _enterprise_signed_in,
    MandateGranted: _mandate_granted,
    MandateAccepted: _mandate_accepted,
    MandateUsed: _mandate_used,
    MandateRevoked: _mandate_revoked,
    MandateRefused: _mandate_refused,
}

AUDITED_KINDS: Final = frozenset(event.kind for event in _RECORDERS)
"""The event kinds that leave an audit record (everything else is for metrics and logs)."""


class AuditTrail:
    """A sink of :class:`~gateway.observe.Events` that appends one audit record per audited
    event, timed by ``clock``. Holds no state of its own: one per gateway, over its store."""

    def __init__(self, store: AuditStore, clock: Clock = utc_now) -> None:
        self.store = store
        self.clock = clock

    def entry(self, event: Event) -> AuditEntry | None:
        """The record ``event`` leaves, or ``None`` for an event the trail does not keep."""
        recorder = _RECORDERS.get(type(event))
        return None if recorder is None else recorder(event, self.clock())

    def __call__(self, event: Event) -> None:
        entry = self.entry(event)
        if entry is not None:
            self.store.append_audit(entry)

    def __repr__(self) -> str:
        return f"AuditTrail({self.store!r})"


__all__ = ["AUDITED_KINDS", "SIGN_IN_KINDS", "AuditTrail"]
