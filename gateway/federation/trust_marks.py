"""Trust marks the anchor issues on the platform's say-so (OpenID Federation 1.0 §7, §8.4-§8.6).

The platform configures the trust mark types it vouches for
(``TONGXING_FEDERATION_TRUST_MARK_TYPES``, :func:`check_trust_mark_types`) and, through the admin
API, which subordinate holds which. :class:`TrustMarkIssuer`:

* issues a trust mark (§7.1): a JWT of ``typ`` ``trust-mark+jwt`` signed with a federation key,
  ``iss`` the gateway, ``sub`` the subordinate's entity identifier, ``trust_mark_type``, ``iat``,
  ``exp`` when the mark expires, ``ref`` and ``logo_uri`` when the type has them, and a ``jti``
  that names the issued mark in the store (§7.1 allows further claims);
* says what the anchor's entity configuration publishes: ``trust_mark_issuers`` (§3.1.1: this
  anchor issues every configured type) and the three endpoints (§5.1.1);
* answers the trust mark status endpoint (§8.4) with a signed ``trust-mark-status-response+jwt``
  whose ``status`` is ``active``, ``expired``, ``revoked`` or ``invalid`` (§8.4.2), read from the
  store on every request so that a revocation is visible at once;
* answers the trust marked entities listing (§8.5; ``not_found`` for a type it does not issue,
  §8.9) and trust mark (§8.6; 404 when the entity holds no such mark) endpoints, and the list
  endpoint's ``trust_marked`` / ``trust_mark_type`` filters (§8.2.1);
* validates the trust marks a subject's entity configuration carries for the resolve response
  (§8.3, §7.3): only those it issued, that verify and are active, are kept.

A mark is *active* while it is not revoked, not expired, its type is still configured and its
subordinate still has the entity identifier it was issued to: withdrawing the subordinate or the
type withdraws its marks too (they answer ``revoked``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from gateway.errors import FederationError, FederationNotFound, FieldError, InvalidDocument
from gateway.federation.statements import StatementError, unverified_claims
from gateway.keys import TokenRejectedError
from gateway.store.contract.federation import FederationTrustMark, SubordinateKind

if TYPE_CHECKING:
    from gateway.federation.anchor import TrustAnchor

TRUST_MARK_TYP: Final = "trust-mark+jwt"  # §7.1
TRUST_MARK_MEDIA_TYPE: Final = "application/trust-mark+jwt"  # §8.6.2, §15
STATUS_RESPONSE_TYP: Final = "trust-mark-status-response+jwt"  # §8.4.2
STATUS_RESPONSE_MEDIA_TYPE: Final = "application/trust-mark-status-response+jwt"  # §15
#: The lifetimes a type may give its marks: at least five minutes, at most five years.
MIN_LIFETIME: Final = timedelta(minutes=5)
MAX_LIFETIME: Final = timedelta(days=5 * 366)
MAX_TYPE_LENGTH: Final = 2048

Status = Literal["active", "expired", "revoked", "invalid"]


@dataclass(frozen=True)
class TrustMarkType:
    """One trust mark type the platform vouches for: its identifier, the optional ``ref`` and
    ``logo_uri`` its marks carry (§7.1), and the default lifetime (``None``: no ``exp``)."""

    trust_mark_type: str
    ref: str | None = None
    logo_uri: str | None = None
    lifetime: timedelta | None = None


def _https_url(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.startswith("https://") or "#" in value:
        raise ValueError(f"{what} must be an https URL without a fragment")
    if len(value) > MAX_TYPE_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_TYPE_LENGTH} characters")
    return value


def check_trust_mark_types(value: Mapping[str, Any]) -> dict[str, TrustMarkType]:
    """The configured trust mark types (``{type: {"ref", "logo_uri", "lifetime"}}``, lifetime in
    seconds), checked: each type an https URL (§7.1: the identifier SHOULD resolve to a page
    about the type), ``ref`` and ``logo_uri`` https URLs, the lifetime within
    :data:`MIN_LIFETIME`..:data:`MAX_LIFETIME`. :class:`ValueError` says what is wrong."""
    types: dict[str, TrustMarkType] = {}
    for name, options in value.items():
        _https_url(name, "a trust mark type")
        if not isinstance(options, Mapping):
            raise ValueError(f"trust mark type {name[:200]}: options must be an object")
        unknown = set(options) - {"ref", "logo_uri", "lifetime"}
        if unknown:
            raise ValueError(f"trust mark type {name[:200]}: unknown options {sorted(unknown)}")
        lifetime = options.get("lifetime")
        seconds: timedelta | None = None
        if lifetime is not None:
            if isinstance(lifetime, bool) or not isinstance(lifetime, int):
                raise ValueError(f"trust mark type {name[:200]}: lifetime must be seconds")
            seconds = timedelta(seconds=lifetime)
            if not MIN_LIFETIME <= seconds <= MAX_LIFETIME:
                raise ValueError(f"trust mark type {name[:200]}: lifetime out of range")
        types[name] = TrustMarkType(
            trust_mark_type=name,
            ref=None if options.get("ref") is None else _https_url(options["ref"], "ref"),
            logo_uri=(
                None
                if options.get("logo_uri") is None
                else _https_url(options["logo_uri"], "logo_uri")
            ),
            lifetime=seconds,
        )
    return types


def _parse_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date and time with a time zone")
    moment = datetime.fromisoformat(value)
    if moment.utcoffset() is None:
        raise ValueError("must be an ISO 8601 date and time with a time zone")
    return moment


@dataclass
class TrustMarkIssuer:
    """The trust anchor as the issuer of the platform's trust marks (§7)."""

    anchor: TrustAnchor

    @property
    def types(self) -> dict[str, TrustMarkType]:
        return check_trust_mark_types(self.anchor.settings.federation_trust_mark_types)

    # --- the entity configuration -------------------------------------------------------------

    def publish(self, claims: dict[str, Any]) -> None:
        """Add to the anchor's entity configuration ``claims`` what trust marks need: the
        ``trust_mark_issuers`` claim (§3.1.1: only in a trust anchor's entity configuration;
        this anchor is the issuer of each type it configures) and the status (§8.4), listing
        (§8.5) and trust mark (§8.6) endpoints in its ``federation_entity`` metadata (§5.1.1).
        Nothing when no type is configured."""
        types = self.types
        if not types:
            return
        claims["trust_mark_issuers"] = {name: [self.anchor.entity_id] for name in types}
        claims["metadata"]["federation_entity"].update(
            {
                "federation_trust_mark_status_endpoint": self.anchor.endpoint("trust-mark-status"),
                "federation_trust_mark_list_endpoint": self.anchor.endpoint("trust-mark-list"),
                "federation_trust_mark_endpoint": self.anchor.endpoint("trust-mark"),
            }
        )

    # --- the platform's say-so (admin API) ---------------------------------------------------

    def issue(
        self, kind: SubordinateKind, key: str, body: Mapping[str, Any]
    ) -> tuple[FederationTrustMark, bool]:
        """Make the subordinate ``(kind, key)`` hold a mark of ``body["trust_mark_type"]`` (a
        configured type), expiring at ``body["expires_at"]`` (ISO 8601, in the future) or after
        the type's lifetime. An active mark with the same expiry is kept (idempotent): ``(mark,
        False)``; otherwise a new one is issued: ``(mark, True)``."""
        errors: list[FieldError] = []
        now = self.anchor.clock()
        trust_mark_type = body.get("trust_mark_type")
        configured = self.types.get(trust_mark_type) if isinstance(trust_mark_type, str) else None
        if configured is None:
            errors.append(
                {"field": "trust_mark_type", "message": "must be a configured trust mark type"}
            )
        expires_at: datetime | None = None
        if body.get("expires_at") is not None:
            try:
                expires_at = _parse_time(body["expires_at"])
                if expires_at <= now:
                    raise ValueError("must be in the future")
            except ValueError as error:
                errors.append({"field": "expires_at", "message": str(error)})
        elif configured is not None and configured.lifetime is not None:
            expires_at = now + configured.lifetime
        subordinate = self.anchor.store.federation_subordinate(kind, key)
        if subordinate is None:
            errors.append(
                {"field": "", "message": "record the subordinate's entity identifier first"}
            )
        if errors or configured is None or subordinate is None:
            raise InvalidDocument(errors)
        if expires_at is not None:
            expires_at = expires_at.replace(microsecond=0)
        for held in self.anchor.store.federation_trust_marks(kind, key, configured.trust_mark_type):
            if self.status_of(held, now) == "active" and held.expires_at == expires_at:
                return held, False
        mark = FederationTrustMark(
            jti=secrets.token_urlsafe(24),
            trust_mark_type=configured.trust_mark_type,
            kind=kind,
            key=key,
            entity_id=subordinate.entity_id,
            issued_at=now.replace(microsecond=0),
            expires_at=expires_at,
        )
        self.anchor.store.add_federation_trust_mark(mark)
        return mark, True

    def revoke(self, kind: SubordinateKind, key: str, trust_mark_type: str) -> int:
        """Revoke every live mark of ``trust_mark_type`` the subordinate holds; how many."""
        return self.anchor.store.revoke_federation_trust_marks(
            kind, key, trust_mark_type, self.anchor.clock()
        )

    # --- the marks ----------------------------------------------------------------------------

    def token(self, mark: FederationTrustMark) -> str:
        """The trust mark JWT of ``mark`` (§7.1), signed now by the active federation key (so
        the answer never depends on a key that has left the published set)."""
        claims: dict[str, Any] = {
            "iss": self.anchor.entity_id,
            "sub": mark.entity_id,
            "trust_mark_type": mark.trust_mark_type,
            "iat": int(mark.issued_at.timestamp()),
            "jti": mark.jti,
        }
        if mark.expires_at is not None:
            claims["exp"] = int(mark.expires_at.timestamp())
        configured = self.types.get(mark.trust_mark_type)
        if configured is not None and configured.ref is not None:
            claims["ref"] = configured.ref
        if configured is not None and configured.logo_uri is not None:
            claims["logo_uri"] = configured.logo_uri
        return self.anchor.keys.sign(claims, typ=TRUST_MARK_TYP)

    def status_of(self, mark: FederationTrustMark, now: datetime) -> Status:
        """``revoked`` when the platform revoked it, withdrew its type, or the subordinate no
        longer has the entity identifier it names; ``expired`` past its ``exp``; else
        ``active`` (§8.4.2)."""
        subordinate = self.anchor.store.federation_subordinate(mark.kind, mark.key)
        if (
            mark.revoked_at is not None
            or mark.trust_mark_type not in self.types
            or subordinate is None
            or subordinate.entity_id != mark.entity_id
        ):
            return "revoked"
        if mark.expires_at is not None and mark.expires_at <= now:
            return "expired"
        return "active"

    def active(
        self, trust_mark_type: str | None = None, sub: str | None = None
    ) -> list[FederationTrustMark]:
        """The active marks (of ``trust_mark_type``, about ``sub`` when given), latest first."""
        now = self.anchor.clock()
        kind: SubordinateKind | None = None
        key: str | None = None
        if sub is not None:
            subordinate = self.anchor.store.federation_subordinate_by_entity(sub)
            if subordinate is None:
                return []
            kind, key = subordinate.kind, subordinate.key
        return [
            mark
            for mark in self.anchor.store.federation_trust_marks(kind, key, trust_mark_type)
            if self.status_of(mark, now) == "active"
        ]

    # --- §8.4, §8.5, §8.6 --------------------------------------------------------------------

    def _stored(self, claims: Mapping[str, Any]) -> FederationTrustMark | None:
        """The stored mark a verified trust mark's claims name (by ``jti``), when every claim
        matches it."""
        mark = self.anchor.store.federation_trust_mark(str(claims.get("jti", "")))
        if (
            mark is None
            or claims.get("iss") != self.anchor.entity_id
            or claims.get("sub") != mark.entity_id
            or claims.get("trust_mark_type") != mark.trust_mark_type
            or claims.get("iat") != int(mark.issued_at.timestamp())
        ):
            return None
        return mark

    def status(self, trust_mark: str) -> str:
        """The signed status response (§8.4.2: ``iss``, ``iat``, ``trust_mark``, ``status``;
        ``typ`` ``trust-mark-status-response+jwt`` with ``kid``) about ``trust_mark``, posted
        form-encoded (§8.4.1): ``invalid`` when its ``iss`` is this anchor but it does not
        verify (bad signature, another ``typ``, a key it never published); else the stored
        mark's status. :class:`FederationError` (400 ``invalid_request``) when it is not a JWT
        at all; :class:`FederationNotFound` (404, §8.4.2) when this anchor did not issue it
        (another ``iss``) or does not know it."""
        now = self.anchor.clock()
        try:
            unverified = unverified_claims(trust_mark)
        except StatementError:
            raise FederationError(
                "trust_mark is not a JWT", message_en="The trust_mark is not a JWT."
            ) from None
        if unverified.get("iss") != self.anchor.entity_id:
            raise FederationNotFound(
                "this trust mark was not issued here",
                message_zh="此信任标记不是本签发方签发的。",
                message_en="This trust mark was not issued by this trust mark issuer.",
            )
        status: Status
        try:
            claims = self.anchor.keys.verify(trust_mark, now=now, typ=TRUST_MARK_TYP)
        except TokenRejectedError:
            status = "invalid"
        else:
            mark = self._stored(claims)
            if mark is None:
                raise FederationNotFound(
                    "this trust mark was not issued here",
                    message_zh="此信任标记不是本签发方签发的。",
                    message_en="This trust mark was not issued by this trust mark issuer.",
                )
            status = self.status_of(mark, now)
        return self.anchor.keys.sign(
            {
                "iss": self.anchor.entity_id,
                "iat": int(now.timestamp()),
                "trust_mark": trust_mark,
                "status": status,
            },
            typ=STATUS_RESPONSE_TYP,
        )

    def verified(self, value: object, sub: str) -> list[tuple[dict[str, str], int | None]]:
        """The trust marks of a subject's entity configuration (its ``trust_marks`` claim,
        §3.1.2: objects with ``trust_mark_type`` and ``trust_mark``) that the resolve response
        may carry (§8.3, §8.3.2), each with its ``exp``: validated as §7.3 says, issued by this
        anchor (the only issuer ``trust_mark_issuers`` names), signed by a federation key it
        publishes with ``typ`` ``trust-mark+jwt``, about ``sub``, of the entry's
        ``trust_mark_type``, a type it configures, and active now (not expired, not revoked:
        the status §8.4 would answer). Anything else is left out, never an error."""
        if not isinstance(value, list):
            return []
        now = self.anchor.clock()
        kept: list[tuple[dict[str, str], int | None]] = []
        for entry in value[:64]:
            if not isinstance(entry, Mapping):
                continue
            trust_mark_type, token = entry.get("trust_mark_type"), entry.get("trust_mark")
            if not isinstance(trust_mark_type, str) or not isinstance(token, str):
                continue
            try:
                claims = self.anchor.keys.verify(token, now=now, typ=TRUST_MARK_TYP)
            except TokenRejectedError:
                continue
            mark = self._stored(claims)
            expiry = claims.get("exp")
            if (
                mark is None
                or claims.get("sub") != sub
                or claims.get("trust_mark_type") != trust_mark_type
                or (expiry is not None and not isinstance(expiry, int))
                or (isinstance(expiry, int) and expiry <= now.timestamp())
                or self.status_of(mark, now) != "active"
            ):
                continue
            kept.append(({"trust_mark_type": trust_mark_type, "trust_mark": token}, expiry))
        return kept

    def marked_entities(self, trust_mark_type: str, sub: str | None = None) -> list[str]:
        """§8.5.2: the entity identifiers holding an active mark of ``trust_mark_type``;
        :class:`FederationNotFound` (§8.9 ``not_found``, 404) for a type this anchor does not
        issue."""
        if trust_mark_type not in self.types:
            raise FederationNotFound(
                "this trust mark type is not issued here",
                message_zh="本签发方不签发此类型的信任标记。",
                message_en="This trust mark issuer does not issue trust marks of this type.",
            )
        return sorted({mark.entity_id for mark in self.active(trust_mark_type, sub)})

    def current(self, trust_mark_type: str, sub: str) -> str:
        """§8.6.2: the latest active mark of ``trust_mark_type`` about ``sub``;
        :class:`FederationNotFound` (404) when there is none."""
        marks = self.active(trust_mark_type, sub)
        if not marks:
            raise FederationNotFound(f"no active trust mark of this type for {sub[:200]}")
        return self.token(marks[0])


__all__ = [
    "STATUS_RESPONSE_MEDIA_TYPE",
    "STATUS_RESPONSE_TYP",
    "TRUST_MARK_MEDIA_TYPE",
    "TRUST_MARK_TYP",
    "Status",
    "TrustMarkIssuer",
    "TrustMarkType",
    "check_trust_mark_types",
]
