"""Policies: who may enter which portal, at which level of assurance, with which claims.

The rules are Cedar policies (``policies/*.cedar``), validated against the Cedar schema
``policies/schema.cedarschema`` and evaluated with :mod:`cedarpy`. Protocol-free: no Flask, no
HTTP. The package is split by job:

:mod:`~gateway.policy.entities`
    what Cedar sees: :class:`PersonFacts`, :class:`PortalFacts`, the levels of assurance, the
    claims of each scope, and the entities and requests built from them.
:mod:`~gateway.policy.loader`
    the files: parsed, validated against the schema, ``@id`` on every policy, all or nothing;
    a refused reload keeps the last good set.
:mod:`~gateway.policy.stored`
    the set kept in the store: one generation for every worker and replica, written by a
    reload, polled by every process.
:mod:`~gateway.policy.engine`
    :class:`PolicyEngine`: the questions, Cedar's answers as :class:`Decision` values (fail
    closed), the decision cache and the decision log.

Importers use the names below from ``gateway.policy``; which module holds them is the package's
business.
"""

from gateway.policy.engine import DECISION_CACHE_SIZE, Decision, EntryDecision, PolicyEngine
from gateway.policy.entities import (
    ACTION,
    CLAIM,
    ID_NUMBER_CLAIM,
    LEVELS,
    NAMESPACE,
    PERSON,
    PORTAL,
    SCOPE_CLAIMS,
    AgeBand,
    PersonFacts,
    PortalFacts,
    age_band,
    claims_for_scopes,
    known_level,
    level_rank,
)
from gateway.policy.loader import (
    SCHEMA_FILE,
    PolicySetError,
    PolicySetInfo,
    default_policy_dir,
    policy_digest,
)
from gateway.policy.stored import POLL_INTERVAL

__all__ = [
    "ACTION",
    "CLAIM",
    "DECISION_CACHE_SIZE",
    "ID_NUMBER_CLAIM",
    "LEVELS",
    "NAMESPACE",
    "PERSON",
    "POLL_INTERVAL",
    "PORTAL",
    "SCHEMA_FILE",
    "SCOPE_CLAIMS",
    "AgeBand",
    "Decision",
    "EntryDecision",
    "PersonFacts",
    "PolicyEngine",
    "PolicySetError",
    "PolicySetInfo",
    "PortalFacts",
    "age_band",
    "claims_for_scopes",
    "default_policy_dir",
    "known_level",
    "level_rank",
    "policy_digest",
]
