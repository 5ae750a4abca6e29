"""What Cedar sees of a sign-in: the person, the portal, the claims, and the two questions.

Cedar decides a request of principal, action, resource and context ("PARC", Cedar docs: How
Cedar authorization works, https://docs.cedarpolicy.com/auth/authorization.html) over a list of
entities in Cedar's JSON form: ``uid``, ``attrs``, ``parents``, entity references written
``{"__entity": {"type": ..., "id": ...}}`` (Cedar docs: Entities and context syntax,
https://docs.cedarpolicy.com/auth/entities-syntax.html). Their types and attributes are
declared in ``policies/schema.cedarschema`` (Cedar docs: Cedar schema,
https://docs.cedarpolicy.com/schema/schema.html).

This module holds the gateway's facts (:class:`PersonFacts`, :class:`PortalFacts`, the national
levels of assurance, age bands, the claims each scope stands for) and builds the entities and
the requests from them, from nothing else: the decision cache of :mod:`gateway.policy.engine`
relies on that. No claim values and no identity numbers reach it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from gateway.registry import Level, Portal

LEVELS: Final[tuple[Level, ...]] = get_args(Level)
"""National levels of assurance, weakest first: loa1 one factor, loa2 two, loa3 two + real name."""

NAMESPACE: Final = "Tongxing"
PERSON: Final = f"{NAMESPACE}::Person"
PORTAL: Final = f"{NAMESPACE}::Portal"
CLAIM: Final = f"{NAMESPACE}::Claim"
ACTION: Final = f"{NAMESPACE}::Action"

ID_NUMBER_CLAIM: Final = "id_number"

# OIDC Core §5.4 style: the personal claims each scope stands for (the provider releases from
# this table too, so the two cannot drift).
SCOPE_CLAIMS: Final[Mapping[str, tuple[str, ...]]] = {
    "profile": ("name", "home_region"),
    "phone": ("phone_number",),
    "id_number": (ID_NUMBER_CLAIM,),
}

# Verified claims (OpenID Connect for Identity Assurance 1.0, gateway.verified) are Claim
# entities of their own, ``verified_claims/<name>``, children of ``verified_claims`` so that a
# policy can speak of them all (``resource in Tongxing::Claim::"verified_claims"``). A portal
# requests the verified claims its registered scopes stand for (OIDC Core §5.4: ``profile``
# covers the names, the birth date and the gender).
VERIFIED_GROUP: Final = "verified_claims"
VERIFIED_SCOPE_CLAIMS: Final[Mapping[str, tuple[str, ...]]] = {
    "profile": ("name", "family_name", "given_name", "birthdate", "gender", "nationalities"),
    "id_number": (ID_NUMBER_CLAIM,),
}

AgeBand = Literal["minor", "adult", "senior"]


_RANKS: Final[Mapping[str, int]] = {level: rank for rank, level in enumerate(LEVELS, start=1)}


def level_rank(level: str) -> int:
    """1 for loa1, 2 for loa2, 3 for loa3; :class:`ValueError` for anything else."""
    try:
        return _RANKS[level]
    except KeyError:
        raise ValueError(f"unknown level of assurance {level!r}") from None


def known_level(value: str) -> Level | None:
    """``value`` if it is a national level, else ``None``."""
    for level in LEVELS:
        if value == level:
            return level
    return None


def age_band(birth_date: datetime.date, today: datetime.date) -> AgeBand:
    """The age band policies may use: under 18 a minor, 60 and over a senior."""
    years = (
        today.year
        - birth_date.year
        - ((today.month, today.day) < (birth_date.month, birth_date.day))
    )
    if years < 18:
        return "minor"
    return "senior" if years >= 60 else "adult"


@dataclass(frozen=True)
class PersonFacts:
    """What policies may know about the person signing in (no claim values, no id number).

    ``level`` and ``amr`` describe this sign-in (the session's ``acr``/``amr``); they reach Cedar
    in the request context. ``home_region`` is the region that vouched for the person.
    """

    subject: str
    home_region: str
    level: Level
    amr: tuple[str, ...] = ()
    age_band: AgeBand | None = None

    def __post_init__(self) -> None:
        level_rank(self.level)


@dataclass(frozen=True)
class PortalFacts:
    """What policies may know about a portal: its registration, as entity attributes."""

    client_id: str
    owner: str
    sector: str = "general"
    minimum_level: Level = "loa1"
    requested_claims: frozenset[str] = frozenset()
    may_receive_id_number: bool = False
    allowed_home_regions: frozenset[str] | None = None

    def __post_init__(self) -> None:
        level_rank(self.minimum_level)

    @classmethod
    def from_portal(cls, portal: Portal) -> PortalFacts:
        """Facts from a registered portal; it requests the claims of its registered scopes."""
        return cls(
            client_id=portal.client_id,
            owner=portal.owner,
            sector=portal.sector,
            minimum_level=portal.minimum_level,
            requested_claims=claims_for_scopes(portal.scopes)
            | verified_claims_for_scopes(portal.scopes),
            may_receive_id_number=portal.may_receive_id_number,
            allowed_home_regions=(
                None
                if portal.allowed_home_regions is None
                else frozenset(portal.allowed_home_regions)
            ),
        )


def claims_for_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The personal claims the given scopes stand for (unknown scopes stand for none)."""
    return frozenset(claim for scope in scopes for claim in SCOPE_CLAIMS.get(scope, ()))


def verified_claims_for_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The verified claims (Cedar ids ``verified_claims/<name>``) the given scopes stand for."""
    return frozenset(
        f"{VERIFIED_GROUP}/{claim}"
        for scope in scopes
        for claim in VERIFIED_SCOPE_CLAIMS.get(scope, ())
    )


# --- entities and requests, in Cedar's JSON form -----------------------------------------------


def _uid(kind: str, key: str) -> dict[str, str]:
    return {"type": kind, "id": key}


def _ref(kind: str, key: str) -> dict[str, dict[str, str]]:
    return {"__entity": _uid(kind, key)}


def _authentication(person: PersonFacts, level: Level) -> dict[str, Any]:
    return {"level": level, "rank": level_rank(level), "amr": sorted(set(person.amr))}


def cedar_entities(
    person: PersonFacts, portal: PortalFacts, claims: Iterable[str]
) -> list[dict[str, Any]]:
    """The person, the portal and every claim asked about or requested, as Cedar entities."""
    person_attrs: dict[str, Any] = {"home_region": person.home_region}
    if person.age_band is not None:
        person_attrs["age_band"] = person.age_band
    portal_attrs: dict[str, Any] = {
        "owner": portal.owner,
        "sector": portal.sector,
        "minimum_level": portal.minimum_level,
        "minimum_rank": level_rank(portal.minimum_level),
        "requested_claims": [_ref(CLAIM, claim) for claim in sorted(portal.requested_claims)],
        "may_receive_id_number": portal.may_receive_id_number,
    }
    if portal.allowed_home_regions is not None:
        portal_attrs["allowed_home_regions"] = sorted(portal.allowed_home_regions)
    entities: list[dict[str, Any]] = [
        {"uid": _uid(PERSON, person.subject), "attrs": person_attrs, "parents": []},
        {"uid": _uid(PORTAL, portal.client_id), "attrs": portal_attrs, "parents": []},
    ]
    every = set(claims) | portal.requested_claims
    grouped = any(claim.startswith(f"{VERIFIED_GROUP}/") for claim in every)
    if grouped:
        every.add(VERIFIED_GROUP)
    for claim in sorted(every):
        parents = [_uid(CLAIM, VERIFIED_GROUP)] if claim.startswith(f"{VERIFIED_GROUP}/") else []
        entities.append({"uid": _uid(CLAIM, claim), "attrs": {}, "parents": parents})
    return entities


def enter_request(person: PersonFacts, portal: PortalFacts, level: Level) -> dict[str, Any]:
    """May the person, signed in at ``level``, ``enter`` the portal?"""
    return {
        "principal": _uid(PERSON, person.subject),
        "action": _uid(ACTION, "enter"),
        "resource": _uid(PORTAL, portal.client_id),
        "context": {"authentication": _authentication(person, level)},
    }


def claim_request(person: PersonFacts, portal: PortalFacts, claim: str) -> dict[str, Any]:
    """May ``claim`` about the person (at the level of this sign-in) leave for the portal?"""
    return {
        "principal": _uid(PERSON, person.subject),
        "action": _uid(ACTION, "release_claim"),
        "resource": _uid(CLAIM, claim),
        "context": {
            "portal": _ref(PORTAL, portal.client_id),
            "authentication": _authentication(person, person.level),
        },
    }
