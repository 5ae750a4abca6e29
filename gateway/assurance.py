"""What a sign-in must reach before a portal gets a code, and which claims then leave.

Combines the portal's registration, the request's ``acr_values`` and the Cedar policies
(:mod:`gateway.policy`) into one outcome per authorization request. The gateway can raise a
session to ``loa2`` itself (TOTP, :mod:`gateway.mfa`). ``loa3`` is two factors AND a verified
real name: ``verified_claims`` (OpenID Connect for Identity Assurance 1.0) from a proofing
provider the platform trusts (:mod:`gateway.proofing`), never a region's say-so. A region's
sign-in is therefore worth at most ``loa2`` (:data:`REGION_LEVEL_LIMIT`), whatever its mapping
and ceiling say; a session reaches ``loa3`` only when proofing attaches verified claims to it.
Without a proofing provider a request that needs ``loa3`` is refused with
``unmet_authentication_requirements`` rather than answered at a lower level.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from gateway.policy import PersonFacts, PolicyEngine, PortalFacts, known_level, level_rank
from gateway.registry import Level, Portal, Region

if TYPE_CHECKING:
    from gateway.verified import IndividualRequest

STEP_UP_LEVEL: Level = "loa2"  # the highest level a TOTP step-up can reach
REGION_LEVEL_LIMIT: Level = "loa2"
"""The most a region's sign-in is worth: ``loa3`` needs verified claims (issue 16)."""
PROOFED_LEVEL: Level = "loa3"
"""What a session with verified claims from a trusted proofing provider is worth."""


def region_level(region: Region, acr: str | None, ceiling: Level) -> Level:
    """The level a sign-in at ``region`` is worth: its ``acr_mapping`` of the upstream ``acr``
    (``loa1`` when unmapped), never above the ``ceiling`` the platform set for the region.

    THREAT_MODEL row 2: the ceiling is read at every sign-in, so one lowered after the region
    was registered still binds. Only the gateway's own step-up raises a session further.

    Never above :data:`REGION_LEVEL_LIMIT` either: a region that maps an ``acr`` to ``loa3``
    (and a ceiling of ``loa3``) gives ``loa2``. ``loa3`` means verified claims from a trusted
    proofing framework, which a region's assertion is not (issue 16).
    """
    mapped = region.acr_mapping.get(acr or "", "loa1")
    for bound in (ceiling, REGION_LEVEL_LIMIT):
        if level_rank(mapped) > level_rank(bound):
            mapped = bound
    return mapped


def region_acr_values(region: Region, acr_values: str | None) -> tuple[str, ...]:
    """The portal's ``acr_values`` in the region's words, for its Authentication Request (OIDC
    Core §3.1.2.1): the region's acr values whose ``acr_mapping`` level is at least the lowest
    level the portal asked for (any value it lists satisfies it), lowest level first; ``()``
    when the portal asked for no known level or the region maps none that high."""
    requested = [known_level(v) for v in (acr_values or "").split()]
    levels = [level for level in requested if level is not None]
    if not levels:
        return ()
    lowest = min(level_rank(level) for level in levels)
    mapped = [(acr, level) for acr, level in region.acr_mapping.items()]
    enough = [pair for pair in mapped if level_rank(pair[1]) >= lowest]
    return tuple(acr for acr, _ in sorted(enough, key=lambda pair: level_rank(pair[1])))


@dataclass(frozen=True)
class RequestedAcr:
    """What a portal asked of the sign-in's level, ``acr_values`` and the ``claims``
    parameter's ``acr`` (OIDC Core §3.1.2.1, §5.5.1.1) together.

    ``acr_values`` is what :meth:`Assurance.evaluate` and :func:`region_acr_values` take (the
    one level that must be reached, or the portal's own ``acr_values`` when the claims request
    adds nothing); ``unmeetable`` when an essential ``acr`` names no level the gateway knows
    (``unmet_authentication_requirements``, §5.5.1.1)."""

    acr_values: str | None
    unmeetable: bool = False


def requested_acr(acr_values: str | None, acr: IndividualRequest | None) -> RequestedAcr:
    """``acr_values`` and the requested ``acr`` claim (OIDC Core §5.5.1.1), combined.

    Each is mapped the same way: the lowest national level it names is what it asks for (any
    of its values satisfies it; unknown values are ignored). When both name a level, the
    stricter (higher) one wins: the sign-in must satisfy both requests. An essential ``acr``
    none of whose values is a level is a requirement nobody here can meet.
    """
    if acr is None or acr.values is None:
        return RequestedAcr(acr_values)
    claimed = _lowest_level(v for v in acr.values if isinstance(v, str))
    if claimed is None:
        return RequestedAcr(acr_values, unmeetable=acr.essential)
    given = _lowest_level((acr_values or "").split())
    if given is not None and level_rank(given) > level_rank(claimed):
        claimed = given
    return RequestedAcr(claimed)


def reported_acr(session_acr: str | None, acr: IndividualRequest | None) -> str | None:
    """The ``acr`` an ID token reports: the session's level, or, for an essential ``acr``
    request with values (OIDC Core §5.5.1.1: the OP "MUST return an acr Claim Value that
    matches one of the requested values"), the highest level asked for that the session
    reaches. That says no more than happened (THREAT_MODEL row 3): the session reached it."""
    if acr is None or not acr.essential or acr.values is None or session_acr is None:
        return session_acr
    reached = known_level(session_acr)
    if reached is None or session_acr in acr.values:
        return session_acr
    levels = [
        level
        for v in acr.values
        if isinstance(v, str) and (level := known_level(v)) is not None
        if level_rank(level) <= level_rank(reached)
    ]
    return max(levels, key=level_rank) if levels else session_acr


def _lowest_level(values: Iterable[str]) -> Level | None:
    found = (known_level(v) for v in values)
    levels: list[Level] = [level for level in found if level is not None]
    if not levels:
        return None
    lowest: Level = min(levels, key=level_rank)
    return lowest


class Verdict(StrEnum):
    ENTER = "enter"
    STEP_UP = "step_up"  # the gateway can raise the session to the required level
    PROOF = "proof"  # loa2 reached; identity proofing must add verified claims (loa3)
    UNMET = "unmet"  # a higher level is needed than the gateway can give
    DENIED = "denied"  # no level would do


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    required_level: Level
    policy_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignIn:
    """The facts of a sign-in that policies may see (no claim values)."""

    subject: str
    home_region: str
    acr: str | None
    amr: tuple[str, ...]

    @property
    def level(self) -> Level:
        return known_level(self.acr or "") or "loa1"

    def facts(self) -> PersonFacts:
        return PersonFacts(
            subject=self.subject, home_region=self.home_region, level=self.level, amr=self.amr
        )


class Assurance:
    """Entry and claim-release decisions for one portal and one sign-in."""

    def __init__(self, policy: PolicyEngine, *, proofing: bool = False) -> None:
        self.policy = policy
        # Whether the platform configured a proofing provider: then loa3 can be reached.
        self.proofing = proofing

    def evaluate(self, sign_in: SignIn, portal: Portal, acr_values: str | None) -> Outcome:
        person, facts = sign_in.facts(), PortalFacts.from_portal(portal)
        required, entry = self.policy.admission(person, facts, acr_values)
        if not entry.allowed and entry.required_level is None:
            return Outcome(Verdict.DENIED, required, entry.policy_ids)
        if entry.required_level is not None and level_rank(entry.required_level) > level_rank(
            required
        ):
            required = entry.required_level
        if level_rank(sign_in.level) >= level_rank(required):
            return Outcome(Verdict.ENTER, required, entry.policy_ids)
        if level_rank(required) <= level_rank(STEP_UP_LEVEL):
            return Outcome(Verdict.STEP_UP, required, entry.policy_ids)
        if not self.proofing or level_rank(required) > level_rank(PROOFED_LEVEL):
            return Outcome(Verdict.UNMET, required, entry.policy_ids)
        if level_rank(sign_in.level) < level_rank(STEP_UP_LEVEL):
            # loa3 is two factors and a verified name: the second factor comes first.
            return Outcome(Verdict.STEP_UP, required, entry.policy_ids)
        return Outcome(Verdict.PROOF, required, entry.policy_ids)

    def released(self, sign_in: SignIn, portal: Portal, candidates: Iterable[str]) -> set[str]:
        """The claims (names) among ``candidates`` that may leave for ``portal``."""
        return self.policy.released_claims(
            sign_in.facts(), PortalFacts.from_portal(portal), candidates
        )
