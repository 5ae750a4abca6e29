"""What happened, said once: the events the gateway's parts emit, and the sinks that hear them.

A sign-in, a logout, a consent, a factor bound or reset, an identity linked, an admin change, a
policy reload, a token issued: each part of the gateway says what happened by emitting one
:class:`Event` on its :class:`Events` (one per :class:`~gateway.services.Services`, never a
module global: tests run several gateways in one process). The sinks subscribed to it turn
events into what operations need (issue 14): the audit trail (GB/T 22239-2019 §8.1.4, THREAT_MODEL
row 9), Prometheus metrics and structured log lines. A part never writes an audit record, a
metric or a log line for an event itself; it emits, and the sinks decide.

Events carry identifiers (the national subject's opaque id, a portal's client id, a region's
code), stable reason codes and levels; never an identity number, a token, a secret or a
password (THREAT_MODEL row 8). Admin changes carry the documents before and after, already
redacted by the emitter (:func:`redact`).

A sink that fails is logged and skipped, and the others still hear the event, unless it was
subscribed ``required=True`` (the audit trail): then its error reaches the emitter, so an
action whose record cannot be written is not reported as done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

log = logging.getLogger(__name__)

REDACTED: Final = "[redacted]"
SECRET_FIELDS: Final = frozenset({"client_secret", "client_secret_hash", "secret", "token"})


def redact(document: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``document`` with every secret-bearing field (at any depth) replaced by
    :data:`REDACTED`; ``None`` stays ``None``."""
    if document is None:
        return None
    return {k: _redact_value(k, v) for k, v in document.items()}


def _redact_value(key: str, value: Any) -> Any:
    if key in SECRET_FIELDS:
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _redact_value(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value("", v) for v in value]
    return value


@dataclass(frozen=True)
class Event:
    """Something that happened. ``kind`` names the event class for sinks (stable, dotted)."""

    kind: ClassVar[str] = "event"


# --- sign-in ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignInStarted(Event):
    """A portal's authorization request was accepted and a sign-in began (or was answered from
    the SSO session at once)."""

    kind: ClassVar[str] = "signin.started"
    portal: str
    region: str | None


@dataclass(frozen=True)
class SignInCompleted(Event):
    """A portal got its code: the person ``subject`` entered at ``level``."""

    kind: ClassVar[str] = "signin.completed"
    subject: str
    portal: str
    region: str
    level: str
    amr: tuple[str, ...] = ()
    single_sign_on: bool = False  # answered from an existing SSO session, no region round trip


@dataclass(frozen=True)
class SignInFailed(Event):
    """A sign-in ended without a code: ``reason`` is the stable error code the portal or the
    page was given (``access_denied``, ``login_required``, ``mix_up``, ``bad_signature``,
    ``state_mismatch``, ``region_unavailable``, ...)."""

    kind: ClassVar[str] = "signin.failed"
    portal: str | None
    region: str | None
    reason: str
    subject: str | None = None


@dataclass(frozen=True)
class IdentityLinked(Event):
    """A region asserted, for the first time, a number already linked through other regions."""

    kind: ClassVar[str] = "identity.linked"
    subject: str
    region: str
    earlier_regions: tuple[str, ...]


@dataclass(frozen=True)
class SteppedUp(Event):
    """A second-factor check during a step-up: ``outcome`` ``accepted``, ``wrong``,
    ``locked_out`` or ``slowed``."""

    kind: ClassVar[str] = "mfa.step_up"
    subject: str
    method: str  # "totp" or "recovery_code"
    outcome: str


@dataclass(frozen=True)
class LockedOut(Event):
    kind: ClassVar[str] = "mfa.locked_out"
    subject: str


@dataclass(frozen=True)
class FactorBound(Event):
    kind: ClassVar[str] = "mfa.factor_bound"
    subject: str


@dataclass(frozen=True)
class FactorRemoved(Event):
    """A factor removed by the person (``principal`` ``None``) or reset by the help desk."""

    kind: ClassVar[str] = "mfa.factor_removed"
    subject: str
    principal: str | None = None
    reason: str | None = None


# --- consents, sessions, logout -------------------------------------------------------------


@dataclass(frozen=True)
class ConsentGiven(Event):
    kind: ClassVar[str] = "consent.given"
    subject: str
    portal: str
    claims: tuple[str, ...]


@dataclass(frozen=True)
class ConsentWithdrawn(Event):
    kind: ClassVar[str] = "consent.withdrawn"
    subject: str
    portal: str


@dataclass(frozen=True)
class LoggedOut(Event):
    """An SSO session ended. ``initiator``: ``portal`` (RP-initiated), ``person`` (confirmed
    at the gateway), ``region`` (its back-channel logout), ``admin`` (a region's sessions
    ended) or ``expiry``."""

    kind: ClassVar[str] = "logout"
    subject: str
    region: str
    initiator: str
    portals: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogoutDelivered(Event):
    """One back-channel logout delivery to a portal: ``outcome`` ``delivered``, ``failed``
    or ``given_up``; ``attempt`` counts from 1."""

    kind: ClassVar[str] = "logout.delivery"
    portal: str
    outcome: str
    attempt: int = 1


# --- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenIssued(Event):
    """The token endpoint answered a grant (``authorization_code``, ``refresh_token``,
    ``client_credentials``) for ``portal``."""

    kind: ClassVar[str] = "token.issued"
    portal: str
    grant_type: str


# --- the platform -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdminChange(Event):
    """An admin API change: ``action`` (``put``, ``delete``, ``reset_second_factor``,
    ``end_sessions``, ...), of ``target_kind`` (``region``, ``portal``, ``subject``) ``target``;
    ``before`` and ``after`` redacted (:func:`redact`)."""

    kind: ClassVar[str] = "admin.change"
    principal: str
    role: str
    action: str
    target_kind: str
    target: str
    before: Mapping[str, Any] | None = field(default=None, hash=False)
    after: Mapping[str, Any] | None = field(default=None, hash=False)
    reason: str | None = None


@dataclass(frozen=True)
class PolicyReloaded(Event):
    kind: ClassVar[str] = "policy.reloaded"
    principal: str | None
    digest: str
    outcome: str  # "activated" or "refused"
    generation: int | None = None  # the store's generation active after the reload


# --- enterprises and mandates (issue 16) --------------------------------------------------------


@dataclass(frozen=True)
class EnterpriseSignedIn(Event):
    """A person signed in for an enterprise through an ``enterprise`` region, in ``role``
    (``legal_representative`` or ``agent``): ``enterprise`` is the gateway's opaque id of it,
    never the credit code."""

    kind: ClassVar[str] = "enterprise.signed_in"
    subject: str
    enterprise: str
    role: str
    region: str


@dataclass(frozen=True)
class MandateGranted(Event):
    """A legal representative ``subject`` granted mandate ``mandate`` of ``enterprise`` (an
    invitation until the agent accepts it), for ``portals`` and ``sectors``."""

    kind: ClassVar[str] = "mandate.granted"
    subject: str
    enterprise: str
    mandate: str
    portals: tuple[str, ...] = ()
    sectors: tuple[str, ...] = ()


@dataclass(frozen=True)
class MandateAccepted(Event):
    """The agent ``subject`` accepted the invitation of mandate ``mandate``."""

    kind: ClassVar[str] = "mandate.accepted"
    subject: str
    enterprise: str
    mandate: str


@dataclass(frozen=True)
class MandateUsed(Event):
    """``subject`` chose to act for ``enterprise`` at ``portal`` in ``role`` (under ``mandate``
    for an agent; ``None`` for a person the e-business-licence system asserted)."""

    kind: ClassVar[str] = "mandate.used"
    subject: str
    enterprise: str
    portal: str
    role: str
    mandate: str | None = None


@dataclass(frozen=True)
class MandateRevoked(Event):
    """The legal representative ``subject`` revoked mandate ``mandate``."""

    kind: ClassVar[str] = "mandate.revoked"
    subject: str
    enterprise: str
    mandate: str


@dataclass(frozen=True)
class MandateRefused(Event):
    """An agent's use of a mandate was refused: ``reason`` is the error code (a revoked or
    expired mandate, a portal that does not serve enterprises, none at all)."""

    kind: ClassVar[str] = "mandate.refused"
    subject: str
    portal: str
    reason: str
    mandate: str | None = None


Sink = Callable[[Event], None]


class Events:
    """The gateway's event stream: :meth:`emit` calls every subscribed sink in order."""

    def __init__(self) -> None:
        self._sinks: list[tuple[Sink, bool]] = []
        self._lock = threading.Lock()

    def subscribe(self, sink: Sink, *, required: bool = False) -> None:
        """Add ``sink``; a ``required`` sink's error reaches the emitter (see the module)."""
        with self._lock:
            self._sinks = [*self._sinks, (sink, required)]

    def emit(self, event: Event) -> None:
        failure: Exception | None = None
        for sink, required in self._sinks:
            try:
                sink(event)
            except Exception as error:
                if required and failure is None:
                    failure = error
                log.exception("event sink %r failed on %s", sink, event.kind)
        if failure is not None:
            raise failure


__all__ = [
    "REDACTED",
    "AdminChange",
    "ConsentGiven",
    "ConsentWithdrawn",
    "EnterpriseSignedIn",
    "Event",
    "Events",
    "FactorBound",
    "FactorRemoved",
    "IdentityLinked",
    "LockedOut",
    "LoggedOut",
    "LogoutDelivered",
    "MandateAccepted",
    "MandateGranted",
    "MandateRefused",
    "MandateRevoked",
    "MandateUsed",
    "PolicyReloaded",
    "SignInCompleted",
    "SignInFailed",
    "SignInStarted",
    "Sink",
    "SteppedUp",
    "TokenIssued",
    "redact",
]
