"""Metadata policies (OpenID Federation 1.0 §6.1): checked when loaded, merged, applied.

A policy maps an entity type (``openid_provider``, ``openid_relying_party``, ...) to metadata
parameters, each with policy operators (§6.1.3.1): ``value``, ``add``, ``default``, ``one_of``,
``subset_of``, ``superset_of`` and ``essential``. What the specification forbids is refused when
the policy is loaded, with the reason, never when a chain is resolved:

* an operator given a value of the wrong JSON type (§6.1.3.1);
* two operators on one parameter that cannot be combined, or whose values contradict each other
  (§6.1.3.1, "can be combined with");
* a merge conflict between two superiors' policies (§6.1.4.1): two different ``value`` or
  ``default`` values, ``one_of`` lists without a common value;
* an operator the gateway does not implement that ``metadata_policy_crit`` names as critical
  (§6.1.3.2, §3.1.3); an unknown operator not named there is ignored, as §6.1.3.2 says;
  ``metadata_policy_crit`` naming a standard operator is refused too.

Applying a checked policy to metadata (§6.1.4.2) either gives the resolved metadata or a
:class:`PolicyViolationError` saying which parameter broke which operator. Pure functions over JSON
values: no HTTP, no store, no clock.

Constraints (§6.2) are here too: :func:`check_constraints` when the platform records an
intermediate, :func:`check_chain_constraint` and :func:`allowed_metadata` when a chain through one
is resolved.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

#: The standard operators (§6.1.3.1), in the order they are applied (§6.1.4.2).
OPERATORS: Final = ("value", "add", "default", "one_of", "subset_of", "superset_of", "essential")
_ARRAY_OPERATORS: Final = frozenset({"add", "one_of", "subset_of", "superset_of"})
#: Pairs of operators that may not appear together on one parameter (§6.1.3.1).
_EXCLUSIVE: Final = (("add", "one_of"), ("one_of", "subset_of"), ("one_of", "superset_of"))

Policy = dict[str, dict[str, dict[str, Any]]]
"""entity type -> metadata parameter -> operator -> operator value."""


class PolicyError(ValueError):
    """The policy is one the specification forbids (§6.1); the message says why."""


class PolicyViolationError(ValueError):
    """Metadata does not satisfy a policy (§6.1.4.2); the message names the parameter."""


def check_policy(policy: object, crit: Sequence[str] = ()) -> Policy:
    """``policy`` as a checked :data:`Policy`, or :class:`PolicyError` with the reason.

    ``crit`` is ``metadata_policy_crit`` (§6.1.3.2): operators beyond the standard ones that
    must be understood; the gateway understands none, so naming any that is used is refused.
    """
    _check_crit(crit)
    if not isinstance(policy, Mapping):
        raise PolicyError("metadata_policy must be a JSON object of entity types")
    checked: Policy = {}
    for entity_type, parameters in policy.items():
        if not isinstance(entity_type, str) or not isinstance(parameters, Mapping):
            raise PolicyError(f"{entity_type!s:.64}: must map metadata parameters to operators")
        checked[entity_type] = {}
        for name, operators in parameters.items():
            where = f"{entity_type}.{name}"
            if not isinstance(name, str) or not isinstance(operators, Mapping):
                raise PolicyError(f"{where:.128}: must be a JSON object of policy operators")
            checked[entity_type][name] = _check_operators(where, operators, crit)
    return checked


def _check_crit(crit: Sequence[str]) -> None:
    if isinstance(crit, str) or not all(isinstance(name, str) for name in crit):
        raise PolicyError("metadata_policy_crit must be a list of operator names")
    standard = sorted(set(crit) & set(OPERATORS))
    if standard:
        raise PolicyError(
            f"metadata_policy_crit names standard operators ({', '.join(standard)}); "
            "it lists only extensions (§6.1.3.2)"
        )


def _check_operators(
    where: str, operators: Mapping[str, Any], crit: Sequence[str]
) -> dict[str, Any]:
    known: dict[str, Any] = {}
    for operator, value in operators.items():
        if operator in OPERATORS:
            known[operator] = _check_operator_value(where, operator, value)
        elif operator in crit:
            raise PolicyError(
                f"{where}: operator {operator!s:.32} is critical (metadata_policy_crit) and not "
                "understood (§6.1.3.2)"
            )
        # Other unknown operators are ignored (§6.1.3.2).
    _check_combination(where, known)
    return known


def _check_operator_value(where: str, operator: str, value: Any) -> Any:
    if operator in _ARRAY_OPERATORS and not isinstance(value, list):
        raise PolicyError(f"{where}: {operator} takes a JSON array (§6.1.3.1)")
    if operator == "one_of" and not value:
        raise PolicyError(f"{where}: one_of needs at least one value (§6.1.3.1.4)")
    if operator == "essential" and not isinstance(value, bool):
        raise PolicyError(f"{where}: essential takes true or false (§6.1.3.1.7)")
    if operator == "default" and value is None:
        raise PolicyError(f"{where}: default cannot be null (§6.1.3.1.3)")
    return copy.deepcopy(value)


def _check_combination(where: str, ops: Mapping[str, Any]) -> None:
    """The combination rules of §6.1.3.1: which operators go together, and on which values."""
    for first, second in _EXCLUSIVE:
        if first in ops and second in ops:
            raise PolicyError(f"{where}: {first} and {second} cannot be combined (§6.1.3.1)")
    if "value" in ops:
        value = ops["value"]
        if value is None:
            for other in ("add", "default", "one_of", "subset_of", "superset_of"):
                if other in ops:
                    raise PolicyError(f"{where}: value null (remove) contradicts {other}")
            if ops.get("essential") is True:
                raise PolicyError(f"{where}: value null (remove) contradicts essential true")
        else:
            if "add" in ops and not _contains(_as_list(value), ops["add"]):
                raise PolicyError(f"{where}: value must contain every add value")
            if "one_of" in ops and value not in ops["one_of"]:
                raise PolicyError(f"{where}: value is not one of one_of")
            if "subset_of" in ops and not _contains(ops["subset_of"], _as_list(value)):
                raise PolicyError(f"{where}: value is not a subset of subset_of")
            if "superset_of" in ops and not _contains(_as_list(value), ops["superset_of"]):
                raise PolicyError(f"{where}: value is not a superset of superset_of")
    if "add" in ops and "subset_of" in ops and not _contains(ops["subset_of"], ops["add"]):
        raise PolicyError(f"{where}: add values must all be in subset_of")
    if (
        "subset_of" in ops
        and "superset_of" in ops
        and not _contains(ops["subset_of"], ops["superset_of"])
    ):
        raise PolicyError(f"{where}: superset_of must be a subset of subset_of")


def merge_policies(superior: Policy, subordinate: Policy) -> Policy:
    """Two checked policies of one chain merged (§6.1.4.1), the superior's first.

    ``value`` and ``default`` must agree; ``add`` and ``superset_of`` are united; ``one_of`` and
    ``subset_of`` intersected (``one_of`` must keep a value); ``essential`` is true if either says
    so. The result passes the combination rules again, else :class:`PolicyError`.
    """
    merged: Policy = copy.deepcopy(superior)
    for entity_type, parameters in subordinate.items():
        into = merged.setdefault(entity_type, {})
        for name, operators in parameters.items():
            where = f"{entity_type}.{name}"
            current = into.setdefault(name, {})
            for operator, value in operators.items():
                current[operator] = (
                    _merge_operator(where, operator, current[operator], value)
                    if operator in current
                    else copy.deepcopy(value)
                )
            _check_combination(where, current)
    return merged


def _merge_operator(where: str, operator: str, first: Any, second: Any) -> Any:
    if operator in ("value", "default"):
        if first != second:
            raise PolicyError(f"{where}: merge conflict, two different {operator} values")
        return first
    if operator in ("add", "superset_of"):
        return _union(first, second)
    if operator in ("one_of", "subset_of"):
        common = [item for item in first if item in second]
        if operator == "one_of" and not common:
            raise PolicyError(f"{where}: merge conflict, the one_of lists have no common value")
        return common
    return bool(first) or bool(second)  # essential


def apply_policy(policy: Policy, entity_type: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` of ``entity_type`` with ``policy`` applied (§6.1.4.2), or
    :class:`PolicyViolationError` naming the parameter and the operator it fails."""
    result = copy.deepcopy(dict(metadata))
    for name, ops in policy.get(entity_type, {}).items():
        where = f"{entity_type}.{name}"
        if "value" in ops:
            if ops["value"] is None:
                result.pop(name, None)
            else:
                result[name] = copy.deepcopy(ops["value"])
        if "add" in ops:
            present = result.get(name)
            if present is not None and not isinstance(present, list):
                raise PolicyViolationError(f"{where}: add needs an array parameter")
            result[name] = _union(present or [], ops["add"])
        if "default" in ops and result.get(name) is None:
            result[name] = copy.deepcopy(ops["default"])
        if name in result:
            present = result[name]
            if "one_of" in ops and present not in ops["one_of"]:
                raise PolicyViolationError(f"{where}: the value is not one of {ops['one_of']}")
            if "subset_of" in ops:
                if not isinstance(present, list):
                    raise PolicyViolationError(f"{where}: subset_of needs an array parameter")
                result[name] = [item for item in present if item in ops["subset_of"]]
            if "superset_of" in ops and not _contains(_as_list(present), ops["superset_of"]):
                raise PolicyViolationError(f"{where}: the value lacks some of {ops['superset_of']}")
        if ops.get("essential") is True and result.get(name) is None:
            raise PolicyViolationError(f"{where}: essential, and absent")
    return result


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _contains(container: Iterable[Any], items: Iterable[Any]) -> bool:
    pool = list(container)
    return all(item in pool for item in items)


def _union(first: Iterable[Any], second: Iterable[Any]) -> list[Any]:
    out = list(first)
    out.extend(item for item in second if item not in out)
    return out


# --- §6.2: constraints -----------------------------------------------------------------------

#: What the anchor's statement about an intermediate says when the platform gives no other
#: constraints: its subordinates are leaves (§6.2.1: ``max_path_length`` counts the
#: intermediates between the anchor and the chain's subject, so 1 is the intermediate itself)
#: that are relying parties (§6.2.3).
DEFAULT_INTERMEDIATE_CONSTRAINTS: Final[dict[str, Any]] = {
    "max_path_length": 1,
    "allowed_entity_types": ["openid_relying_party"],
}
_DOMAIN: Final = re.compile(r"^\.?(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]+$")


class ConstraintError(ValueError):
    """Constraints that break §6.2, or a chain that breaks them; the message says which."""


def check_constraints(value: object) -> dict[str, Any]:
    """``value`` as the ``constraints`` of a subordinate statement (§3.1.3, §6.2), with
    :data:`DEFAULT_INTERMEDIATE_CONSTRAINTS` for what it leaves out: ``max_path_length`` an
    integer >= 0 (§6.2.1), ``naming_constraints`` with ``permitted`` and/or ``excluded`` arrays
    of domain name constraints (§6.2.2, RFC 5280 §4.2.1.10: ``host.example.cn`` or
    ``.example.cn``), ``allowed_entity_types`` an array of entity type identifiers without
    ``federation_entity`` (§6.2.3). Other members are refused (the platform sets only these).
    :class:`ConstraintError` says what is wrong."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConstraintError("constraints must be a JSON object")
    unknown = sorted(set(value) - {"max_path_length", "naming_constraints", "allowed_entity_types"})
    if unknown:
        raise ConstraintError(f"unknown constraint {unknown[0][:64]}")
    checked: dict[str, Any] = {**copy.deepcopy(DEFAULT_INTERMEDIATE_CONSTRAINTS), **value}
    length = checked["max_path_length"]
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ConstraintError("max_path_length must be an integer >= 0 (§6.2.1)")
    types = checked["allowed_entity_types"]
    if not isinstance(types, list) or not all(isinstance(item, str) and item for item in types):
        raise ConstraintError("allowed_entity_types must be an array of entity types (§6.2.3)")
    if "federation_entity" in types:
        raise ConstraintError("allowed_entity_types must not include federation_entity (§6.2.3)")
    naming = checked.get("naming_constraints")
    if naming is not None:
        if not isinstance(naming, dict) or not naming or set(naming) - {"permitted", "excluded"}:
            raise ConstraintError("naming_constraints has permitted and/or excluded (§6.2.2)")
        for name, names in naming.items():
            if not isinstance(names, list) or not all(
                isinstance(item, str) and _DOMAIN.match(item) for item in names
            ):
                raise ConstraintError(
                    f"naming_constraints.{name} must be an array of lower-case domain names "
                    "or .domains (§6.2.2)"
                )
    return checked


def _name_matches(host: str, constraint: str) -> bool:
    """RFC 5280 §4.2.1.10 as §6.2.2 reads it: ``.example.cn`` is any host below it (not
    ``example.cn`` itself), ``host.example.cn`` that host only."""
    if constraint.startswith("."):
        return host.endswith(constraint)
    return host == constraint


def check_chain_constraint(
    constraints: Mapping[str, Any], intermediates_below: int, subordinates: Sequence[str]
) -> None:
    """Apply the ``constraints`` of one subordinate statement to its chain (§6.2: each
    statement's independently): ``intermediates_below`` is the number of intermediates between
    the statement's issuer and the chain's subject (§6.2.1), ``subordinates`` the entity
    identifiers of the entities below the issuer, subject included (§6.2.2, on their hosts).
    :class:`ConstraintError` when the chain breaks them. Unknown members are ignored (§6.2)."""
    length = constraints.get("max_path_length")
    if isinstance(length, int) and not isinstance(length, bool) and intermediates_below > length:
        raise ConstraintError(
            f"max_path_length {length} exceeded: {intermediates_below} intermediates (§6.2.1)"
        )
    naming = constraints.get("naming_constraints")
    if not isinstance(naming, Mapping):
        return
    permitted, excluded = naming.get("permitted"), naming.get("excluded")
    for entity_id in subordinates:
        host = (urlsplit(entity_id).hostname or "").lower()
        if isinstance(excluded, list) and any(_name_matches(host, str(n)) for n in excluded):
            raise ConstraintError(f"{host[:253]} is excluded by naming_constraints (§6.2.2)")
        if isinstance(permitted, list) and not any(_name_matches(host, str(n)) for n in permitted):
            raise ConstraintError(f"{host[:253]} is not permitted by naming_constraints (§6.2.2)")


def allowed_metadata(constraints: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The subject's ``metadata`` without the entity types ``allowed_entity_types`` does not
    list (§6.2.3: removed, before the policies are applied); ``federation_entity`` stays."""
    allowed = constraints.get("allowed_entity_types")
    if not isinstance(allowed, list):
        return dict(metadata)
    return {
        entity_type: values
        for entity_type, values in metadata.items()
        if entity_type == "federation_entity" or entity_type in allowed
    }


__all__ = [
    "DEFAULT_INTERMEDIATE_CONSTRAINTS",
    "OPERATORS",
    "ConstraintError",
    "Policy",
    "PolicyError",
    "PolicyViolationError",
    "allowed_metadata",
    "apply_policy",
    "check_chain_constraint",
    "check_constraints",
    "check_policy",
    "merge_policies",
]
