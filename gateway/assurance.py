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

from gateway.policy import PersonFacts, PolicyEngine, PortalFacts, known_level, level_rank
from gateway.registry import Level, Portal, Region

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
