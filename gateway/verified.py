"""The ``claims`` request parameter and ``verified_claims``: parsed, checked, stored and released.

Specifications:

* OpenID Connect Core 1.0 §5.5 ("Requesting Claims using the "claims" Request Parameter"):
  a JSON object whose ``id_token`` and ``userinfo`` members name the claims wanted in each,
  each claim ``null`` or an object with ``essential``, ``value`` or ``values`` (§5.5.1);
  members other than these two are ignored (§5.5).
* OpenID Connect for Identity Assurance 1.0 (Final; "IDA"): §5 requesting ``verified_claims``
  through that parameter (a ``verification`` element, whose ``trust_framework`` may filter by
  ``value``/``values``, and a non-empty ``claims`` element), the answer holding only what was
  requested and is available (§5, data minimisation), and §8 the OP metadata
  (``verified_claims_supported``, ``trust_frameworks_supported``, ``evidence_supported``,
  ``documents_supported``, ``claims_in_verified_claims_supported``).
* OpenID Identity Assurance Schema Definition 1.0 §5: the ``verified_claims`` element
  (``verification``: ``trust_framework``, ``assurance_level``, ``time``, ``evidence``;
  ``claims``).

What the gateway does with them:

* a portal's ``claims`` parameter is validated at ``/authorize`` (:func:`parse_claims_request`;
  a malformed one is ``invalid_request`` at its redirect URI, RFC 6749 §4.1.2.1), kept with the
  pending authorization, then with the grant the authorization makes
  (:attr:`~gateway.store.contract.tokens.Grant.claims_request`): every ID token and userinfo
  answer under that grant honours it (§5.5), read with the grant at no cost of its own;
* a proofing provider (:mod:`gateway.proofing`) asserts ``verified_claims``; they are checked
  against what the platform lets that provider vouch for (:func:`checked_assertion`) and kept,
  sealed, with the session;
* the ID token and userinfo carry the ``verified_claims`` the portal asked for, only those
  claims the Cedar policies release to it (claim ids ``verified_claims/<name>``,
  ``policies/national-verified-claims.cedar``) and only with the person's consent (the consent
  page asks for :data:`VERIFIED_CLAIMS` separately, whatever the registration says: the
  网号/网证 rule that identity data leaves only with separate consent).

Protocol-free: no Flask, no Authlib.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Final, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from gateway.registry import ClaimMapping, Names, Region, RegionKind
from gateway.store.contract.tokens import MAX_CLAIMS_REQUEST_BYTES

if TYPE_CHECKING:
    from gateway.assurance import Assurance, SignIn
    from gateway.registry import Portal
    from gateway.sealing import SecretCipher
    from gateway.store.contract.verified_claims import VerifiedClaimsStore

log = logging.getLogger(__name__)

VERIFIED_CLAIMS: Final = "verified_claims"
"""The claim (IDA §5) and the consent item for all verified claims of a portal."""
VERIFIED_PREFIX: Final = "verified_claims/"
"""Cedar's id of a verified claim: ``verified_claims/<name>`` (see :mod:`gateway.policy`)."""
MAX_CLAIMS_PARAMETER: Final = MAX_CLAIMS_REQUEST_BYTES
"""The longest ``claims`` parameter accepted (bytes of UTF-8): THREAT_MODEL row 7."""
MAX_REQUESTED_CLAIMS: Final = 32
"""The most claims one member (``id_token``, ``userinfo``, a ``verified_claims.claims``) names."""
MAX_VERIFIED_REQUESTS: Final = 4
"""The most ``verified_claims`` request objects one member may hold (an array, IDA §5)."""
TARGETS: Final = ("id_token", "userinfo")

SUPPORTED_VERIFIED_CLAIMS: Final = (
    "name",
    "family_name",
    "given_name",
    "birthdate",
    "gender",
    "nationalities",
    "id_number",
)
"""The claims the gateway can carry inside ``verified_claims.claims``; a proofing provider may
vouch for a subset the platform names (:attr:`ProofingProviderSettings.claims`)."""
EVIDENCE_TYPES: Final = ("document", "electronic_record", "vouch", "electronic_signature")
"""The evidence types of the Schema Definition §5.1.1."""

_FRAMEWORK = r"^[A-Za-z0-9_.:-]{1,64}$"
_VERIFICATION_KEYS: Final = ("assurance_level", "time", "evidence")
"""Verification elements released only when the request names them (IDA §5: minimisation)."""


class ClaimsRequestError(ValueError):
    """A ``claims`` parameter that is not what OIDC Core §5.5 and IDA §5 allow."""


class ProofingRefused(ValueError):  # noqa: N818 - named after what happened
    """A proofing provider's ``verified_claims`` that the gateway will not keep: ``reason``
    is a line for operators (no claim value in it)."""


# --- the platform's proofing providers ---------------------------------------------------------


class ProofingProviderSettings(BaseModel):
    """An identity proofing provider the platform trusts: an upstream OpenID Provider that
    answers with ``verified_claims`` (IDA §5) in its ID token.

    What it may vouch for is the platform's to say, not the provider's: ``trust_frameworks``
    and ``claims`` bound what the gateway keeps from it (THREAT_MODEL row 2, for proofing).
    ``identity_number_claim`` names the claim of its ID token that holds the person's resident
    identity number: the proofing is kept only for the session whose person has that number.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,20}$")]
    names: Names
    issuer: str
    client_id: Annotated[str, Field(min_length=1, max_length=255)]
    client_secret: SecretStr
    scopes: list[str] = Field(default_factory=lambda: ["openid"])
    identity_number_claim: Annotated[str, Field(min_length=1, max_length=64)] = "id_number"
    trust_frameworks: Annotated[
        list[Annotated[str, Field(pattern=_FRAMEWORK)]], Field(min_length=1, max_length=10)
    ]
    claims: Annotated[list[str], Field(min_length=1, max_length=len(SUPPORTED_VERIFIED_CLAIMS))]
    evidence: list[str] = Field(default_factory=lambda: ["document"])
    documents: list[Annotated[str, Field(pattern=_FRAMEWORK)]] = Field(default_factory=list)

    @field_validator("claims")
    @classmethod
    def _supported_claims(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(SUPPORTED_VERIFIED_CLAIMS))
        if unknown:
            raise ValueError(f"claims {unknown} are not among {list(SUPPORTED_VERIFIED_CLAIMS)}")
        return list(dict.fromkeys(value))

    @field_validator("evidence")
    @classmethod
    def _evidence_types(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(EVIDENCE_TYPES))
        if unknown:
            raise ValueError(f"evidence {unknown} are not among {list(EVIDENCE_TYPES)}")
        return list(dict.fromkeys(value))

    @property
    def code(self) -> str:
        """Its name towards the broker (metadata cache, circuit, ``state`` legs)."""
        return f"proofing-{self.id}"

    def region(self) -> Region:
        """The provider as the broker (:class:`~gateway.broker.RegionClient`) reaches it."""
        return Region(
            code=self.code,
            names=self.names,
            kind=RegionKind.DEPARTMENT,
            issuer=self.issuer,
            client_id=self.client_id,
            client_secret=self.client_secret,
            scopes=self.scopes,
            claims=ClaimMapping(identity_number=self.identity_number_claim),
        )


def discovery_metadata(providers: Sequence[ProofingProviderSettings]) -> dict[str, Any]:
    """The OP metadata of IDA §8 for the configured providers (``verified_claims_supported``
    false, and nothing else, when there are none)."""
    if not providers:
        return {"verified_claims_supported": False}
    frameworks = sorted({f for p in providers for f in p.trust_frameworks})
    evidence = sorted({e for p in providers for e in p.evidence})
    documents = sorted({d for p in providers for d in p.documents})
    claims = [c for c in SUPPORTED_VERIFIED_CLAIMS if any(c in p.claims for p in providers)]
    metadata: dict[str, Any] = {
        "verified_claims_supported": True,
        "trust_frameworks_supported": frameworks,
        "evidence_supported": evidence,
        "claims_in_verified_claims_supported": claims,
    }
    if "document" in evidence and documents:
        metadata["documents_supported"] = documents
    return metadata


# --- the claims request parameter (OIDC Core §5.5, IDA §5) ------------------------------------


@dataclass(frozen=True)
class VerifiedRequest:
    """One ``verified_claims`` request object (IDA §5): the trust frameworks it accepts
    (``None``: any), the verification elements it asks for, and the claims it wants."""

    frameworks: frozenset[str] | None
    verification: frozenset[str]
    claims: tuple[str, ...]


@dataclass(frozen=True)
class IndividualRequest:
    """One claim's request object (OIDC Core §5.5.1): whether it is ``essential``, and the
    values it asks for (``value`` as one value, ``values`` in order of preference; ``None``:
    no particular value)."""

    essential: bool = False
    values: tuple[Any, ...] | None = None

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` may be released for this request (the rule of this module's
        "Claims asked for with a value"): an essential request with values takes only one of
        them, compared as JSON (``1`` is not ``true``); anything else takes any value."""
        if not self.essential or self.values is None:
            return True
        held = _json(value)
        return any(held == _json(wanted) for wanted in self.values)


@dataclass(frozen=True)
class ClaimsRequest:
    """A validated ``claims`` parameter: per target, the ordinary claims asked for and the
    ``verified_claims`` request objects. ``text`` is its normalised JSON, as kept.

    ``individual`` holds, per target, the claims asked for with ``essential``, ``value`` or
    ``values`` (OIDC Core §5.5.1); a claim asked for with ``null`` is not in it.

    Claims asked for with a value (OIDC Core §5.5.1, §5.5.1.1), the gateway's rules:

    * ``sub`` with a ``value`` (in ``id_token`` or ``userinfo``; :meth:`subject`): the sign-in
      answers positively only for the person whose ``sub`` at this portal is that value (§5.5.1:
      "MUST only send a positive response if the End-User identified by that sub value has an
      active session ... or has been Authenticated as a result of the request"). An SSO session
      of someone else does not answer the request: the person signs in at their region, and
      if someone else signs in there the portal gets ``login_required`` (as for an
      ``id_token_hint`` naming someone else, §3.1.2.1; with ``prompt=none`` at once, §3.1.2.6).
      ``values`` for ``sub`` must hold one value; two different subjects (``id_token`` and
      ``userinfo``) are ``invalid_request``.
    * ``acr`` in ``id_token`` (:meth:`acr`, §5.5.1.1) with ``value``/``values``: the levels
      among them are mapped as ``acr_values`` are (the lowest level named is what must be
      reached, :func:`gateway.assurance.requested_acr`). ``essential: true`` makes it a
      requirement: a request none of whose values is a level the gateway knows is refused
      with ``unmet_authentication_requirements``, and the ID token's ``acr`` is one of the
      values asked for (the highest the sign-in reaches: saying less than happened, never
      more). Without ``essential`` the values are voluntary, as ``acr_values`` are (unknown
      ones ignored); the gateway still raises the sign-in to the level they name, as it does
      for ``acr_values`` (THREAT_MODEL row 3). When both ``acr_values`` and ``claims`` name a
      level, the stricter (higher) one must be reached.
    * Any other claim with ``essential: true`` and ``value``/``values``: released only when
      the person's value is one of them (compared as JSON), else omitted (§5.5: an OP may
      leave out any claim; it never releases a different value for an essential request).
      Without ``essential``, ``value``/``values`` are ignored (§5.5.1 makes them voluntary):
      the person's own value is released, and the portal must not read it as confirming the
      value it sent.
    """

    text: str
    claims: Mapping[str, frozenset[str]] = field(default_factory=dict)
    verified: Mapping[str, tuple[VerifiedRequest, ...]] = field(default_factory=dict)
    individual: Mapping[str, Mapping[str, IndividualRequest]] = field(default_factory=dict)

    def subject(self) -> str | None:
        """The ``sub`` the request names with a value (either target), if any (§5.5.1)."""
        for target in TARGETS:
            wanted = self.individual.get(target, {}).get("sub")
            if wanted is not None and wanted.values:
                value: str = wanted.values[0]
                return value
        return None

    def acr(self) -> IndividualRequest | None:
        """The ``acr`` of the ID token asked for with values (OIDC Core §5.5.1.1), if any."""
        wanted = self.individual.get("id_token", {}).get("acr")
        return wanted if wanted is not None and wanted.values is not None else None

    def accepts(self, target: str, name: str, value: Any) -> bool:
        """Whether claim ``name`` with the person's ``value`` may go into ``target``."""
        wanted = self.individual.get(target, {}).get(name)
        return wanted is None or wanted.accepts(value)

    def wants_verified(self, target: str | None = None) -> bool:
        targets = TARGETS if target is None else (target,)
        return any(self.verified.get(t) for t in targets)

    def verified_names(self) -> frozenset[str]:
        """Every claim name any ``verified_claims`` request asks for."""
        return frozenset(
            name for requests in self.verified.values() for r in requests for name in r.claims
        )


def parse_claims_request(text: str) -> ClaimsRequest:
    """The ``claims`` parameter, validated (OIDC Core §5.5, §5.5.1; IDA §5), or
    :class:`ClaimsRequestError` naming what is wrong (for ``invalid_request``)."""
    if len(text.encode("utf-8")) > MAX_CLAIMS_PARAMETER:
        raise ClaimsRequestError(f"claims is longer than {MAX_CLAIMS_PARAMETER} bytes")
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ClaimsRequestError("claims is not JSON") from None
    if not isinstance(document, dict):
        raise ClaimsRequestError("claims is not a JSON object")
    kept: dict[str, Any] = {}
    claims: dict[str, frozenset[str]] = {}
    verified: dict[str, tuple[VerifiedRequest, ...]] = {}
    individual: dict[str, dict[str, IndividualRequest]] = {}
    for target in TARGETS:  # other members are ignored (OIDC Core §5.5)
        member = document.get(target)
        if member is None:
            continue
        if not isinstance(member, dict):
            raise ClaimsRequestError(f"claims.{target} is not a JSON object")
        if len(member) > MAX_REQUESTED_CLAIMS:
            raise ClaimsRequestError(f"claims.{target} names too many claims")
        names = []
        for name, value in member.items():
            if name == VERIFIED_CLAIMS:
                verified[target] = _verified_requests(value, f"claims.{target}")
            else:
                asked = _individual(value, f"claims.{target}.{name}")
                if asked is not None:
                    _check_special(name, asked, f"claims.{target}.{name}")
                    individual.setdefault(target, {})[name] = asked
                names.append(name)
        claims[target] = frozenset(names)
        kept[target] = member
    subjects = {
        r.values[0] for r in (individual.get(t, {}).get("sub") for t in TARGETS) if r and r.values
    }
    if len(subjects) > 1:
        raise ClaimsRequestError("claims.id_token.sub and claims.userinfo.sub differ")
    normalised = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return ClaimsRequest(normalised, claims, verified, individual)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _individual(value: Any, where: str) -> IndividualRequest | None:
    """A claim's request: ``null`` or an object whose ``essential`` is a boolean and whose
    ``values`` is an array (OIDC Core §5.5.1); other members are ignored (§5.5.1). ``value``
    and ``values`` together are refused (§5.5.1 gives them as alternatives: which one would
    bind is not said). The request as kept, ``None`` when it asks for nothing particular."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ClaimsRequestError(f"{where} is neither null nor a JSON object")
    if "essential" in value and not isinstance(value["essential"], bool):
        raise ClaimsRequestError(f"{where}.essential is not a boolean")
    if "values" in value and not isinstance(value["values"], list):
        raise ClaimsRequestError(f"{where}.values is not an array")
    if "value" in value and "values" in value:
        raise ClaimsRequestError(f"{where} has both value and values")
    purpose = value.get("purpose")
    if purpose is not None and (not isinstance(purpose, str) or not 3 <= len(purpose) <= 300):
        raise ClaimsRequestError(f"{where}.purpose is not a text of 3 to 300 characters")
    values: tuple[Any, ...] | None = None
    if "value" in value:
        values = (value["value"],)
    elif "values" in value:
        values = tuple(value["values"])
    essential = value.get("essential") is True
    if not essential and values is None:
        return None
    return IndividualRequest(essential, values)


def _check_special(name: str, asked: IndividualRequest, where: str) -> None:
    """``sub`` and ``acr`` with values bind the sign-in (OIDC Core §5.5.1, §5.5.1.1): their
    values must be text, and ``sub`` names one subject."""
    if name not in ("sub", "acr") or asked.values is None:
        return
    if not all(isinstance(v, str) and v for v in asked.values):
        raise ClaimsRequestError(f"{where} values are not all non-empty text")
    if name == "sub" and len(set(asked.values)) != 1:
        raise ClaimsRequestError(f"{where} must name exactly one subject")
    if name == "acr" and not asked.values:
        raise ClaimsRequestError(f"{where}.values is empty")


def _json(value: Any) -> str:
    """A value's canonical JSON, for comparing a held claim with a requested one."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _verified_requests(value: Any, where: str) -> tuple[VerifiedRequest, ...]:
    """``verified_claims`` in a request: one object or an array of them (IDA §5)."""
    items = value if isinstance(value, list) else [value]
    if not items or len(items) > MAX_VERIFIED_REQUESTS:
        raise ClaimsRequestError(f"{where}.verified_claims has no or too many request objects")
    return tuple(_verified_request(item, f"{where}.verified_claims") for item in items)


def _verified_request(item: Any, where: str) -> VerifiedRequest:
    """One ``verified_claims`` request object: ``verification`` with ``trust_framework``, and
    a non-empty ``claims`` object (IDA §5: a request without them is ``invalid_request``)."""
    if not isinstance(item, dict):
        raise ClaimsRequestError(f"{where} is not a JSON object")
    verification = item.get("verification")
    if not isinstance(verification, dict) or "trust_framework" not in verification:
        raise ClaimsRequestError(f"{where}.verification.trust_framework is missing")
    frameworks = _framework_filter(verification["trust_framework"], where)
    for key in _VERIFICATION_KEYS:
        element = verification.get(key)
        if element is not None and not isinstance(element, dict | list):
            raise ClaimsRequestError(f"{where}.verification.{key} is not null or an object")
    asked = frozenset(k for k in _VERIFICATION_KEYS if k in verification)
    claims = item.get("claims")
    if not isinstance(claims, dict) or not claims:
        raise ClaimsRequestError(f"{where}.claims is missing or empty")
    if len(claims) > MAX_REQUESTED_CLAIMS:
        raise ClaimsRequestError(f"{where}.claims names too many claims")
    for name, value in claims.items():
        _individual(value, f"{where}.claims.{name}")
    return VerifiedRequest(frameworks, asked, tuple(sorted(claims)))


def _framework_filter(value: Any, where: str) -> frozenset[str] | None:
    """``trust_framework``: ``null`` (any), or an object with ``value`` or ``values`` (IDA §5,
    constraining the verification data)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ClaimsRequestError(f"{where}.verification.trust_framework is not null or an object")
    if "value" in value:
        if not isinstance(value["value"], str):
            raise ClaimsRequestError(f"{where}.verification.trust_framework.value is not text")
        return frozenset({value["value"]})
    if "values" in value:
        values = value["values"]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ClaimsRequestError(f"{where}.verification.trust_framework.values is not text")
        return frozenset(values)
    return None


# --- what a proofing provider asserted (Schema Definition §5) ----------------------------------


def checked_assertion(raw: Any, provider: ProofingProviderSettings) -> list[dict[str, Any]]:
    """The provider's ``verified_claims`` (one object or an array), kept only when every
    element names a trust framework and claims the platform lets ``provider`` vouch for:
    otherwise :class:`ProofingRefused` (nothing of it is kept).

    Only what the gateway can carry is kept: the ``verification`` elements of
    :data:`_VERIFICATION_KEYS` beside ``trust_framework``, and the claims of ``provider.claims``.
    """
    items = raw if isinstance(raw, list) else [raw]
    if raw is None or not items or len(items) > MAX_VERIFIED_REQUESTS:
        raise ProofingRefused("the provider's ID token has no usable verified_claims")
    kept = []
    for item in items:
        if not isinstance(item, dict):
            raise ProofingRefused("a verified_claims element is not an object")
        verification, claims = item.get("verification"), item.get("claims")
        if not isinstance(verification, dict) or not isinstance(claims, dict) or not claims:
            raise ProofingRefused("a verified_claims element lacks verification or claims")
        framework = verification.get("trust_framework")
        if not isinstance(framework, str) or framework not in provider.trust_frameworks:
            raise ProofingRefused(
                f"provider {provider.id} may not vouch for trust framework {str(framework)[:64]!r}"
            )
        foreign = sorted(set(claims) - set(provider.claims))
        if foreign:
            raise ProofingRefused(
                f"provider {provider.id} may not vouch for claims {[c[:40] for c in foreign]}"
            )
        evidence = verification.get("evidence")
        if evidence is not None and (
            not isinstance(evidence, list)
            or not all(isinstance(e, dict) and e.get("type") in provider.evidence for e in evidence)
        ):
            raise ProofingRefused(f"provider {provider.id} reported evidence it may not")
        element = {"trust_framework": framework}
        element |= {k: verification[k] for k in _VERIFICATION_KEYS if k in verification}
        kept.append({"verification": element, "claims": dict(claims)})
    return kept


def answer(
    held: Sequence[Mapping[str, Any]],
    requests: Sequence[VerifiedRequest],
    released: Iterable[str],
) -> list[dict[str, Any]]:
    """The ``verified_claims`` for one target (IDA §5): for each request object, the first held
    element whose trust framework it accepts, with only the claims it asks for that are held and
    ``released`` (names), and only the verification elements it asks for; a request nothing
    answers is left out (IDA §5: the OP omits what it cannot or may not provide)."""
    allowed = set(released)
    out = []
    for request in requests:
        for element in held:
            verification = element["verification"]
            framework = verification["trust_framework"]
            if request.frameworks is not None and framework not in request.frameworks:
                continue
            claims = {
                name: element["claims"][name]
                for name in request.claims
                if name in element["claims"] and name in allowed
            }
            if not claims:
                continue
            shown = {"trust_framework": framework}
            shown |= {k: verification[k] for k in request.verification if k in verification}
            out.append({"verification": shown, "claims": claims})
            break
    return out


# --- the service ---------------------------------------------------------------------------------


class _Person(Protocol):
    """What the service needs of :class:`gateway.tokens.User`."""

    @property
    def subject(self) -> str: ...

    @property
    def session_hash(self) -> str | None: ...

    def sign_in(self) -> SignIn: ...


@dataclass(frozen=True)
class Held:
    """A session's verified claims, opened: who vouched, and the elements."""

    provider: str
    elements: tuple[dict[str, Any], ...]


class VerifiedClaimsService:
    """Verified claims per session, released per portal and ``claims`` request (protocol-free)."""

    def __init__(
        self,
        store: VerifiedClaimsStore,
        assurance: Assurance,
        cipher: SecretCipher,
        clock: Any,
    ) -> None:
        self.store = store
        self.assurance = assurance
        self.cipher = cipher
        self.clock = clock

    # -- sealing (THREAT_MODEL row 8: never a clear-text column) -----------------------------

    def seal(self, elements: Sequence[Mapping[str, Any]], subject: str) -> str:
        data = json.dumps(list(elements), sort_keys=True, ensure_ascii=False).encode("utf-8")
        return base64.b64encode(self.cipher.encrypt(data, f"verified_claims:{subject}")).decode()

    def held(self, session_hash: str | None, subject: str) -> Held | None:
        """The session's verified claims, opened (``None`` when it has none)."""
        if session_hash is None:
            return None
        record = self.store.get_verified_claims(session_hash)
        if record is None or record.subject != subject:
            return None
        opened = self.cipher.decrypt(base64.b64decode(record.sealed), f"verified_claims:{subject}")
        elements = json.loads(opened)
        return Held(record.provider, tuple(e for e in elements if isinstance(e, dict)))

    # -- release ------------------------------------------------------------------------------

    def releasable(self, portal: Portal, person: _Person, request: ClaimsRequest) -> set[str]:
        """The verified claims (names) held for ``person`` that the request asks for and the
        policies release to ``portal`` (Cedar ids ``verified_claims/<name>``)."""
        wanted = request.verified_names()
        if not wanted:
            return set()
        held = self.held(person.session_hash, person.subject)
        if held is None:
            return set()
        available = {name for e in held.elements for name in e["claims"]} & wanted
        if not available:
            return set()
        candidates = {VERIFIED_PREFIX + name for name in available}
        released = self.assurance.released(person.sign_in(), portal, candidates)
        return {name.removeprefix(VERIFIED_PREFIX) for name in released}

    def claims_for(
        self, portal: Portal, person: _Person, request: ClaimsRequest | None, target: str
    ) -> list[dict[str, Any]]:
        """The ``verified_claims`` for ``target`` (``id_token`` or ``userinfo``): the caller
        has checked the person's consent to :data:`VERIFIED_CLAIMS`."""
        if request is None or not request.verified.get(target):
            return []
        released = self.releasable(portal, person, request)
        if not released:
            return []
        held = self.held(person.session_hash, person.subject)
        if held is None:  # pragma: no cover - releasable found them
            return []
        return answer(held.elements, request.verified[target], released)


__all__ = [
    "EVIDENCE_TYPES",
    "MAX_CLAIMS_PARAMETER",
    "SUPPORTED_VERIFIED_CLAIMS",
    "VERIFIED_CLAIMS",
    "VERIFIED_PREFIX",
    "ClaimsRequest",
    "ClaimsRequestError",
    "Held",
    "IndividualRequest",
    "ProofingProviderSettings",
    "ProofingRefused",
    "VerifiedClaimsService",
    "VerifiedRequest",
    "answer",
    "checked_assertion",
    "discovery_metadata",
    "parse_claims_request",
]
