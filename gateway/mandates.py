"""Legal persons and acting for them: the enterprise a person signed in for, the mandates a
legal representative grants agents, and whom a person acts for at a portal (issue 16).

Three moments, one service (protocol-free: no Flask; the views of
:mod:`gateway.provider.mandates` and the sign-in of :mod:`gateway.signin` call it):

1. **At the callback of an ``enterprise`` region** (the e-business-licence system): the region's
   ID token carries, beside the person's identity number, the enterprise's unified social credit
   code, name and type and the person's role (:data:`ASSERTED_CLAIMS`). The code is validated
   (GB 32100-2015, :mod:`gateway.enterprise`; a malformed one is
   :class:`~gateway.errors.CreditCodeInvalid`, a clear page, before anything is recorded); the
   enterprise subject is found or made by the keyed hash of the code (the code itself kept
   sealed, for release only), and the person recorded in their role. The SSO session remembers
   the seat (:data:`SEAT_CLAIM`: the enterprise's opaque id and the role).

2. **Mandates** (委托授权). A legal representative, signed in through the enterprise region in
   this very session, grants an agent a mandate: for which portals (client ids) or sectors, until
   when. The grant is a **one-time invitation bound to the agent's identity number**: the
   representative types the agent's number (they know it: it is on the employment contract),
   the gateway keeps only its keyed hash (:func:`gateway.identity.identity_key`) and shows a
   one-time invitation code once. The agent, signed in as themselves through any region, enters
   the code; it is accepted only if their own number hashes to the same key.

   Why not "find the agent's national subject from the number the representative types"?
   That would answer, to anyone holding a representative's session, whether a given identity
   number has a Tongxing account (an enumeration oracle over citizens), and it would bind the
   agent without their knowledge. Why not a bare invitation link? A bearer link forwarded to
   the wrong person makes them the agent. The invitation bound to the keyed number has neither
   flaw: it is made whether or not the number is known (nothing is learnt), the number is never
   stored or shown again (data minimisation, THREAT_MODEL row 8), the agent accepts knowingly,
   and only the intended person can. An invitation lives :data:`INVITATION_LIFETIME`; a mandate
   at most :data:`MAX_MANDATE`. The representative revokes at any time.

3. **Acting for** (代办). At a portal whose registration accepts enterprises
   (``subject_kinds``: ``enterprises`` or ``both``), after the sign-in and before consent, the
   person picks whom they act for: the enterprise they signed in for, one of their live
   mandates that covers the portal, or (``both`` only) themselves. The choice is kept per SSO
   session and portal (``acting_for``) and said in the ID token and userinfo as
   :data:`ACTING_FOR_CLAIM` (:meth:`Mandates.claims`), re-checked at every issue: a mandate
   revoked or expired since is no longer said.

Every sign-in for an enterprise, grant, acceptance, use, refusal and revocation is an event
(:mod:`gateway.observe`) the audit trail keeps (:mod:`gateway.audit`).
"""

from __future__ import annotations

import base64
import datetime
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from gateway.clock import Clock, utc_now
from gateway.enterprise import (
    CreditCodeError,
    EnterpriseRole,
    UnifiedSocialCreditCode,
    enterprise_key,
    parse_credit_code,
)
from gateway.errors import (
    CreditCodeInvalid,
    EnterpriseRoleInvalid,
    MandateInvalid,
    MandateNotLive,
    NotLegalRepresentative,
    PortalRefusesEnterprises,
)
from gateway.identity import (
    IdentityNumberError,
    identity_key,
    pairwise_subject,
    parse_identity_number,
)
from gateway.observe import (
    EnterpriseSignedIn,
    Events,
    MandateAccepted,
    MandateGranted,
    MandateRevoked,
    MandateUsed,
)
from gateway.registry import Portal, RegionKind, Registry
from gateway.sealing import IdentitySealer
from gateway.sessions import SEALED_ID_NUMBER
from gateway.settings import Settings
from gateway.store.contract import SsoSession, token_hash
from gateway.store.contract.mandates import (
    ActingFor,
    Enterprise,
    Mandate,
    MandateNotFoundError,
    MandateStore,
)
from gateway.tokens import User
from tongxing_api.vocabulary import SECTOR_PATTERN

#: The claims of an ``enterprise`` region's ID token (realms/enterprise.json.j2 maps them).
CREDIT_CODE_CLAIM: Final = "credit_code"
ENTERPRISE_NAME_CLAIM: Final = "enterprise_name"
ENTERPRISE_TYPE_CLAIM: Final = "enterprise_type"
ENTERPRISE_ROLE_CLAIM: Final = "enterprise_role"
ASSERTED_CLAIMS: Final = (
    CREDIT_CODE_CLAIM,
    ENTERPRISE_NAME_CLAIM,
    ENTERPRISE_TYPE_CLAIM,
    ENTERPRISE_ROLE_CLAIM,
)
#: Where the SSO session keeps the seat of a sign-in for an enterprise: ``{"id", "role"}``.
SEAT_CLAIM: Final = "enterprise"
#: The claim that says for whom the person acts (a namespace of ours; see the README).
ACTING_FOR_CLAIM: Final = "https://tongxing.gov.cn/claims/acting_for"
#: The scope a portal must be registered for, and ask, to receive the credit code itself.
ENTERPRISE_SCOPE: Final = "enterprise"
#: Which portals accept enterprises.
ENTERPRISE_KINDS: Final = frozenset({"enterprises", "both"})

INVITATION_LIFETIME: Final = datetime.timedelta(days=7)
MAX_MANDATE: Final = datetime.timedelta(days=3 * 366)
INVITATION_BYTES: Final = 18  # 24 URL-safe characters
MAX_TARGETS: Final = 20  # portals plus sectors of one mandate
_SECTOR = re.compile(SECTOR_PATTERN)
_NAME_MAX = 255
SELF_CHOICE: Final = "self"


class MandatesStore(MandateStore, Protocol):
    """What the service keeps: the mandate aggregate (sessions are read by the caller)."""


@dataclass(frozen=True)
class EnterpriseAssertion:
    """What an enterprise region asserted, validated: the code, the name, type and role."""

    code: UnifiedSocialCreditCode
    name: str
    kind: str
    role: EnterpriseRole


@dataclass(frozen=True)
class Choice:
    """One answer of the acting-for page: ``key`` is what the form posts."""

    key: str
    enterprise: Enterprise | None
    role: str | None
    mandate: Mandate | None = None


@dataclass(frozen=True)
class Invitation:
    """A granted mandate and its one-time invitation code (shown once, kept by hash)."""

    mandate: Mandate
    code: str


def accepts_enterprises(portal: Portal) -> bool:
    """Whether the portal's registration lets people act for enterprises there."""
    return portal.subject_kinds in ENTERPRISE_KINDS


def check_assertion(claims: Mapping[str, Any]) -> EnterpriseAssertion:
    """The enterprise region's assertion, validated (GB 32100-2015 for the code): else
    :class:`~gateway.errors.CreditCodeInvalid` (naming the reason, never the value) or
    :class:`~gateway.errors.EnterpriseRoleInvalid`."""
    raw = claims.get(CREDIT_CODE_CLAIM)
    if not isinstance(raw, str):
        raise CreditCodeInvalid(f"the ID token has no {CREDIT_CODE_CLAIM!r} claim")
    try:
        code = parse_credit_code(raw)
    except CreditCodeError as error:
        raise CreditCodeInvalid(error.reason) from None
    name, kind = claims.get(ENTERPRISE_NAME_CLAIM), claims.get(ENTERPRISE_TYPE_CLAIM)
    role = claims.get(ENTERPRISE_ROLE_CLAIM)
    if not isinstance(name, str) or not name.strip() or len(name) > _NAME_MAX:
        raise EnterpriseRoleInvalid("no enterprise name")
    if not isinstance(kind, str) or not kind.strip() or len(kind) > _NAME_MAX:
        raise EnterpriseRoleInvalid("no enterprise type")
    try:
        parsed_role = EnterpriseRole(str(role))
    except ValueError:
        raise EnterpriseRoleInvalid("no role, or one other than the two known") from None
    return EnterpriseAssertion(code, name.strip(), kind.strip(), parsed_role)


class Mandates:
    """Enterprises, mandates and acting for them (see the module)."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: MandatesStore,
        registry: Registry,
        sealer: IdentitySealer,
        events: Events | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.registry = registry
        self.sealer = sealer
        self.events = events if events is not None else Events()
        self.clock = clock
        self._national = settings.national_secret.get_secret_value().encode()
        self._pairwise = settings.pairwise_secret.get_secret_value().encode()

    # -- 1. the sign-in for an enterprise ----------------------------------------------------

    def record_sign_in(
        self, assertion: EnterpriseAssertion, subject: str, region: str, now: datetime.datetime
    ) -> dict[str, str]:
        """Find or make the enterprise, record the person in their role, and return the seat
        for the SSO session's :data:`SEAT_CLAIM`."""
        key = enterprise_key(assertion.code, self._national)
        sealed = self.sealer.cipher.encrypt(assertion.code.value.encode(), _binding(key))
        enterprise = self.store.save_enterprise(
            key, assertion.name, assertion.kind, base64.b64encode(sealed).decode(), now
        )
        self.store.record_enterprise_person(enterprise.id, subject, assertion.role.value, now)
        self.events.emit(
            EnterpriseSignedIn(
                subject=subject, enterprise=enterprise.id, role=assertion.role.value, region=region
            )
        )
        return {"id": enterprise.id, "role": assertion.role.value}

    def credit_code(self, enterprise: Enterprise) -> str:
        """The enterprise's credit code, opened for release."""
        sealed = base64.b64decode(enterprise.credit_code_sealed)
        return self.sealer.cipher.decrypt(sealed, _binding(enterprise.key)).decode()

    def seat(self, session: SsoSession) -> tuple[Enterprise, str] | None:
        """The enterprise and role the session signed in for through an ``enterprise`` region
        (still registered as one), or ``None``."""
        seat = session.claims.get(SEAT_CLAIM)
        region = self.registry.region(session.region)
        if (
            not isinstance(seat, Mapping)
            or region is None
            or region.kind is not RegionKind.ENTERPRISE
        ):
            return None
        enterprise = self.store.get_enterprise(str(seat.get("id", "")))
        role = seat.get("role")
        if enterprise is None or not isinstance(role, str):
            return None
        return enterprise, role

    def represented(self, session: SsoSession) -> Enterprise:
        """The enterprise whose legal representative signed this session in, or
        :class:`~gateway.errors.NotLegalRepresentative`."""
        seat = self.seat(session)
        if seat is None or seat[1] != EnterpriseRole.LEGAL_REPRESENTATIVE:
            raise NotLegalRepresentative("the session is not a legal representative's")
        return seat[0]

    # -- 2. mandates -------------------------------------------------------------------------

    def enterprise_portals(self) -> list[Portal]:
        """The enabled portals that accept enterprises, for the grant form."""
        return [p for p in self.registry.portals() if p.enabled and accepts_enterprises(p)]

    def grant(
        self,
        session: SsoSession,
        *,
        portals: Iterable[str],
        sectors: Iterable[str],
        valid_until: datetime.datetime,
        agent_number: str,
    ) -> Invitation:
        """A legal representative grants a mandate (see the module): validated, stored as an
        invitation bound to the agent's keyed number, said as
        :class:`~gateway.observe.MandateGranted`."""
        enterprise = self.represented(session)
        now = self.clock()
        client_ids = tuple(dict.fromkeys(p.strip() for p in portals if p.strip()))
        sector_names = tuple(dict.fromkeys(s.strip() for s in sectors if s.strip()))
        if not client_ids and not sector_names:
            raise MandateInvalid(
                "no portal or sector",
                message_zh="请至少选择一个门户或填写一个行业。",
                message_en="Choose at least one portal or name one sector.",
            )
        if len(client_ids) + len(sector_names) > MAX_TARGETS:
            raise MandateInvalid(
                "too many portals and sectors",
                message_zh=f"一项授权最多包含 {MAX_TARGETS} 个门户和行业。",
                message_en=f"A mandate names at most {MAX_TARGETS} portals and sectors.",
            )
        for client_id in client_ids:
            portal = self.registry.portal(client_id)
            if portal is None or not portal.enabled:
                raise MandateInvalid(
                    "unknown portal",
                    message_zh="所选门户不存在。",
                    message_en="A chosen portal does not exist.",
                )
            if not accepts_enterprises(portal):
                raise PortalRefusesEnterprises(f"portal {client_id} serves people only")
        for sector in sector_names:
            if _SECTOR.fullmatch(sector) is None:
                raise MandateInvalid(
                    "malformed sector",
                    message_zh="行业名称格式不正确（小写字母、数字和连字符）。",
                    message_en="A sector is a lower-case word (letters, digits, hyphens).",
                )
        if not now < valid_until <= now + MAX_MANDATE:
            raise MandateInvalid(
                "valid_until out of range",
                message_zh="有效期须晚于今天，且不超过三年。",
                message_en="The end date must be after today and within three years.",
            )
        try:
            number = parse_identity_number(agent_number)
        except IdentityNumberError:
            raise MandateInvalid(
                "malformed agent identity number",
                message_zh="经办人的居民身份号码格式不正确。",
                message_en="The agent's resident identity number is not valid.",
            ) from None
        code = secrets.token_urlsafe(INVITATION_BYTES)
        mandate = Mandate(
            id=secrets.token_hex(16),
            enterprise_id=enterprise.id,
            granted_by=session.subject,
            agent_key=identity_key(number, self._national),
            invitation_hash=token_hash(code),
            invitation_expires_at=min(now + INVITATION_LIFETIME, valid_until),
            portals=client_ids,
            sectors=sector_names,
            valid_until=valid_until,
            created_at=now,
        )
        self.store.create_mandate(mandate)
        self.events.emit(
            MandateGranted(
                subject=session.subject,
                enterprise=enterprise.id,
                mandate=mandate.id,
                portals=client_ids,
                sectors=sector_names,
            )
        )
        return Invitation(mandate, code)

    def revoke(self, session: SsoSession, mandate_id: str) -> Mandate:
        """The legal representative revokes one of the enterprise's mandates (once)."""
        enterprise = self.represented(session)
        revoked = self.store.revoke_mandate(mandate_id[:64], enterprise.id, self.clock())
        if revoked is None:
            raise MandateNotLive("no unrevoked mandate of this enterprise by that id")
        self.events.emit(
            MandateRevoked(subject=session.subject, enterprise=enterprise.id, mandate=revoked.id)
        )
        return revoked

    def accept(self, session: SsoSession, invitation: str) -> Mandate:
        """The agent, signed in as themselves, accepts an invitation made for their number."""
        sealed = session.claims.get(SEALED_ID_NUMBER)
        code = invitation.strip()
        if not isinstance(sealed, str) or not code or len(code) > 128:
            raise MandateNotLive("no invitation, or a session without an identity number")
        number = parse_identity_number(self.sealer.open_identity_number(sealed, session.subject))
        try:
            mandate = self.store.accept_mandate(
                token_hash(code),
                identity_key(number, self._national),
                session.subject,
                self.clock(),
            )
        except MandateNotFoundError:
            raise MandateNotLive("the invitation is not live or not for this person") from None
        self.events.emit(
            MandateAccepted(
                subject=session.subject, enterprise=mandate.enterprise_id, mandate=mandate.id
            )
        )
        return mandate

    def of_enterprise(self, enterprise: Enterprise) -> list[Mandate]:
        return self.store.list_enterprise_mandates(enterprise.id)

    def of_agent(self, subject: str) -> list[tuple[Mandate, Enterprise]]:
        """The agent's live mandates with their enterprises."""
        found = []
        for mandate in self.store.list_agent_mandates(subject, self.clock()):
            enterprise = self.store.get_enterprise(mandate.enterprise_id)
            if enterprise is not None:
                found.append((mandate, enterprise))
        return found

    # -- 3. acting for -----------------------------------------------------------------------

    def choices(self, session: SsoSession, portal: Portal) -> list[Choice]:
        """Whom the person may act for at ``portal``: the enterprise they signed in for, their
        live mandates that cover the portal, and themselves where the portal serves both."""
        if not accepts_enterprises(portal):
            return []
        found: list[Choice] = []
        seat = self.seat(session)
        if seat is not None:
            found.append(Choice(f"seat:{seat[0].id}", seat[0], seat[1]))
        for mandate, enterprise in self.of_agent(session.subject):
            if mandate.covers(portal.client_id, portal.sector):
                found.append(
                    Choice(f"mandate:{mandate.id}", enterprise, EnterpriseRole.AGENT.value, mandate)
                )
        if found and portal.subject_kinds == "both":
            found.append(Choice(SELF_CHOICE, None, None))
        return found

    def chosen(self, session_hash: str, portal: Portal, pending_hash: str) -> bool:
        """Whether the person already chose, in this very sign-in, whom to act for here."""
        choice = self.store.get_acting_for(session_hash, portal.client_id)
        return choice is not None and choice.pending_hash == pending_hash

    def choose(self, session: SsoSession, portal: Portal, pending_hash: str, key: str) -> Choice:
        """Keep the person's choice ``key`` for this session and portal (said as
        :class:`~gateway.observe.MandateUsed`): :class:`~gateway.errors.MandateNotLive` when it
        is not (or no longer) one of :meth:`choices`, e.g. a mandate revoked meanwhile;
        :class:`~gateway.errors.PortalRefusesEnterprises` for a portal serving people only."""
        if not accepts_enterprises(portal):
            raise PortalRefusesEnterprises(f"portal {portal.client_id} serves people only")
        picked = next((c for c in self.choices(session, portal) if c.key == key), None)
        if picked is None:
            raise MandateNotLive("the choice is not a live mandate for this portal")
        self.store.choose_acting_for(
            ActingFor(
                session_hash=session.session_hash,
                client_id=portal.client_id,
                pending_hash=pending_hash,
                enterprise_id=picked.enterprise.id if picked.enterprise else None,
                role=picked.role,
                mandate_id=picked.mandate.id if picked.mandate else None,
                chosen_at=self.clock(),
            )
        )
        if picked.enterprise is not None and picked.role is not None:
            self.events.emit(
                MandateUsed(
                    subject=session.subject,
                    enterprise=picked.enterprise.id,
                    portal=portal.client_id,
                    role=picked.role,
                    mandate=picked.mandate.id if picked.mandate else None,
                )
            )
        return picked

    def claims(self, portal: Portal, user: User, scope: str) -> dict[str, Any]:
        """The :data:`ACTING_FOR_CLAIM` for the ID token and userinfo, when the person chose to
        act for an enterprise at this portal in this session and that still stands: the
        enterprise's pairwise ``sub`` (OIDC Core §8.1, its own domain), name, type, the role,
        the mandate's id, and the credit code only for a portal granted the
        :data:`ENTERPRISE_SCOPE`."""
        if not accepts_enterprises(portal) or user.session_hash is None:
            return {}
        choice = self.store.get_acting_for(user.session_hash, portal.client_id)
        if choice is None or choice.enterprise_id is None or choice.role is None:
            return {}
        if choice.mandate_id is not None:
            mandate = self.store.get_mandate(choice.mandate_id)
            if (
                mandate is None
                or mandate.agent_subject != user.subject
                or not mandate.live(self.clock())
                or not mandate.covers(portal.client_id, portal.sector)
            ):
                return {}  # revoked or expired since: no longer said
        else:
            seat = user.claims.get(SEAT_CLAIM)
            if not isinstance(seat, Mapping) or seat.get("id") != choice.enterprise_id:
                return {}
        enterprise = self.store.get_enterprise(choice.enterprise_id)
        if enterprise is None:
            return {}
        said: dict[str, Any] = {
            "sub": pairwise_subject(
                f"enterprise:{enterprise.id}", portal.sector_identifier, self._pairwise
            ),
            "name": enterprise.name,
            "type": enterprise.kind,
            "role": choice.role,
        }
        if choice.mandate_id is not None:
            said["mandate"] = choice.mandate_id
        if ENTERPRISE_SCOPE in scope.split():
            said["credit_code"] = self.credit_code(enterprise)
        return {ACTING_FOR_CLAIM: said}


def _binding(key: str) -> str:
    """What a sealed credit code is bound to: its enterprise's key (AES-GCM associated data)."""
    return f"credit_code:{key}"


__all__ = [
    "ACTING_FOR_CLAIM",
    "ASSERTED_CLAIMS",
    "ENTERPRISE_SCOPE",
    "SEAT_CLAIM",
    "Choice",
    "EnterpriseAssertion",
    "Invitation",
    "Mandates",
    "accepts_enterprises",
    "check_assertion",
]
