"""Pending authorizations: a portal's authorization request, from ``/authorize`` to its answer.

One record per sign-in in progress, as Dex keeps its ``AuthRequest``: the portal's request as it
was validated once at ``/authorize`` (OIDC Core §3.1.2.1), the stage the sign-in has reached,
the round trip to a region while it lasts, and the SSO session a step-up or consent page
belongs to. The browser holds only the record's opaque id, in a cookie; the store keeps the
id's hash (see :func:`~gateway.store.contract.common.token_hash`).

The lifecycle:

* made at ``/authorize`` when the answer cannot be given at once (the chooser, the region, a
  step-up or consent page): :meth:`PendingAuthorizationStore.save_pending_authorization`;
* moved from stage to stage by compare-and-set on the stage
  (:meth:`~PendingAuthorizationStore.update_pending_authorization`); every move renews
  ``expires_at``, and a record whose time has passed is gone for every operation;
* the region's answer takes the round trip once (:meth:`~PendingAuthorizationStore.
  take_upstream_leg`, single use like ``state`` itself, RFC 6749 §10.12);
* taken once, and deleted, when the portal is answered (:meth:`~PendingAuthorizationStore.
  consume_pending_authorization`): the portal's ``state`` is kept no longer than that.

A record is bounded in size (:data:`MAX_RECORD_BYTES`): the provider refuses longer parameters
before they get here, and the store refuses a record that would be larger anyway.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from gateway.store.contract.common import JsonObject, RecordNotFoundError, require_aware

MAX_RECORD_BYTES = 96 * 1024
"""The largest pending authorization the store keeps (its JSON, UTF-8): bad input costs a
refusal, never an unbounded row (THREAT_MODEL row 7)."""


class PendingStage(StrEnum):
    """What a pending authorization waits for."""

    CHOOSING = "choosing"  # the person picks their region on the chooser page
    AT_REGION = "at_region"  # the person signs in at their region
    STEP_UP = "step_up"  # signed in; a second factor must raise the SSO session first
    CONSENT = "consent"  # signed in; the person is asked to release reserved claims
    ACTING_FOR = "acting_for"  # signed in; the person picks the enterprise they act for


@dataclass(frozen=True)
class AuthorizationRequest:
    """A portal's authorization request, parsed and validated once (OIDC Core §3.1.2.1-2).

    ``prompt`` holds the space-separated values of ``prompt``; ``max_age`` is the parsed
    integer; ``hinted_subject`` the ``sub`` the portal's ``id_token_hint`` named (``""`` when
    the hint is not a token of this gateway, so that it names nobody); ``region`` the region the
    portal named. ``state`` and ``nonce`` are the portal's, returned as they came and never
    written to a log (they are left out of ``repr``).
    """

    client_id: str
    redirect_uri: str
    scope: str = ""
    state: str | None = field(default=None, repr=False)
    nonce: str | None = field(default=None, repr=False)
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    prompt: tuple[str, ...] = ()
    max_age: int | None = None
    login_hint: str | None = field(default=None, repr=False)
    acr_values: str | None = None
    ui_locales: str | None = None
    hinted_subject: str | None = field(default=None, repr=False)
    region: str | None = None
    # The ``claims`` request parameter (OIDC Core §5.5), validated and normalised
    # (:func:`gateway.verified.parse_claims_request`); ``None`` when the portal sent none.
    claims: str | None = None

    def to_json(self) -> JsonObject:
        data = asdict(self)
        data["prompt"] = list(self.prompt)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuthorizationRequest:
        """The inverse of :meth:`to_json`; ``ValueError`` on a malformed record."""
        try:
            client_id, redirect_uri = data["client_id"], data["redirect_uri"]
        except KeyError as missing:
            raise ValueError(f"authorization request lacks {missing.args[0]}") from None
        prompt = data.get("prompt", [])
        max_age = data.get("max_age")
        texts = {name: data.get(name) for name in _OPTIONAL_TEXTS}
        if (
            not _text(client_id)
            or not _text(redirect_uri)
            or not isinstance(data.get("scope"), str)
        ):
            raise ValueError("authorization request has no client, redirect URI or scope")
        if not all(value is None or isinstance(value, str) for value in texts.values()):
            raise ValueError("authorization request has a parameter that is not text")
        if not isinstance(prompt, list) or not all(_text(value) for value in prompt):
            raise ValueError("authorization request prompt is not a list of values")
        if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int)):
            raise ValueError("authorization request max_age is not an integer")
        return cls(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=data["scope"],
            prompt=tuple(prompt),
            max_age=max_age,
            **texts,
        )


_OPTIONAL_TEXTS = (
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "login_hint",
    "acr_values",
    "ui_locales",
    "hinted_subject",
    "region",
    "claims",
)


@dataclass(frozen=True)
class UpstreamLeg:
    """The round trip to a region (OIDC Core §3.1.2.1, RFC 7636 §4): the broker's half.

    ``state`` is kept only as its hash, the lookup key of the region's answer; ``nonce`` and
    ``code_verifier`` are kept once, here, because the ID token and the token endpoint need
    them. ``started_at`` is the broker's clock (seconds since the epoch).
    """

    region: str
    state_hash: str
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    redirect_uri: str
    started_at: float
    max_age: int | None = None

    def to_json(self) -> JsonObject:
        data = asdict(self)
        del data["state_hash"]  # a column of its own: the callback's lookup key
        return data

    @classmethod
    def from_json(cls, state_hash: str, data: Mapping[str, Any]) -> UpstreamLeg:
        """The inverse of :meth:`to_json`; ``ValueError`` on a malformed record."""
        try:
            texts = {k: data[k] for k in ("region", "nonce", "code_verifier", "redirect_uri")}
            started_at, max_age = data["started_at"], data.get("max_age")
        except KeyError as missing:
            raise ValueError(f"upstream leg lacks {missing.args[0]}") from None
        if not all(_text(value) for value in texts.values()):
            raise ValueError("upstream leg has a field that is not a non-empty string")
        if isinstance(started_at, bool) or not isinstance(started_at, int | float):
            raise ValueError("upstream leg started_at is not a number")
        if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int)):
            raise ValueError("upstream leg max_age is not an integer")
        return cls(state_hash=state_hash, started_at=float(started_at), max_age=max_age, **texts)


@dataclass(frozen=True)
class PendingAuthorization:
    """One sign-in in progress: the portal's request and how far its answer has come.

    ``id_hash`` is the hash of the opaque id the browser holds. ``upstream`` is set while the
    person is at their region (stage :attr:`PendingStage.AT_REGION`) and cleared when the region
    answers. ``session_hash`` is the SSO session a step-up or consent page belongs to;
    ``consent_claims`` the claims the consent page asks for.
    """

    id_hash: str
    request: AuthorizationRequest
    stage: PendingStage
    expires_at: datetime.datetime
    upstream: UpstreamLeg | None = None
    session_hash: str | None = None
    consent_claims: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        require_aware(self, expires_at=self.expires_at)


def record_size(pending: PendingAuthorization) -> int:
    """The size the store measures against :data:`MAX_RECORD_BYTES` (UTF-8 JSON)."""
    parts: list[Any] = [pending.request.to_json(), list(pending.consent_claims)]
    if pending.upstream is not None:
        parts.append(pending.upstream.to_json())
    return len(json.dumps(parts, ensure_ascii=False).encode("utf-8"))


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


class PendingAuthorizationNotFoundError(RecordNotFoundError):
    """No live pending authorization matches: unknown, expired, answered, or moved on."""


class PendingAuthorizationStore(Protocol):
    """Pending authorizations: saved, read, moved by compare-and-set, taken once."""

    def save_pending_authorization(self, pending: PendingAuthorization) -> None:
        """Keep a new record. :class:`~gateway.store.contract.DuplicateRecordError` when its
        id or its upstream ``state`` is taken; ``ValueError`` when it is larger than
        :data:`MAX_RECORD_BYTES`."""
        ...

    def get_pending_authorization(
        self, id_hash: str, now: datetime.datetime
    ) -> PendingAuthorization | None:
        """The live record (``now < expires_at``) with this id hash, or ``None``."""
        ...

    def update_pending_authorization(
        self,
        pending: PendingAuthorization,
        stages: Collection[PendingStage],
        now: datetime.datetime,
    ) -> None:
        """Replace the live record ``pending.id_hash`` if it is at one of ``stages``.

        Compare-and-set: of two concurrent moves from the same stage to another, one fails.
        Raises :class:`PendingAuthorizationNotFoundError` when no live record is at those
        stages; ``ValueError`` when the new record is larger than :data:`MAX_RECORD_BYTES`.
        """
        ...

    def take_upstream_leg(self, state_hash: str, now: datetime.datetime) -> PendingAuthorization:
        """The region's answer: the live record at :attr:`PendingStage.AT_REGION` whose round
        trip has this ``state`` hash, returned as it was; its round trip is removed in the same
        transaction, so each ``state`` is answered once (RFC 6749 §10.12).

        Raises :class:`PendingAuthorizationNotFoundError` if none is.
        """
        ...

    def consume_pending_authorization(
        self, id_hash: str, stages: Collection[PendingStage], now: datetime.datetime
    ) -> PendingAuthorization:
        """Take the live record at one of ``stages`` exactly once, and delete it.

        Raises :class:`PendingAuthorizationNotFoundError` if there is none (unknown, expired,
        at another stage, or already taken).
        """
        ...


__all__ = [
    "MAX_RECORD_BYTES",
    "AuthorizationRequest",
    "PendingAuthorization",
    "PendingAuthorizationNotFoundError",
    "PendingAuthorizationStore",
    "PendingStage",
    "UpstreamLeg",
    "record_size",
]
