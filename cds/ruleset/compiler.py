"""Check a rule's conditions against the fact schema and turn them into durable-rules JSON.

Pure functions: nothing here imports durable_rules. Every name in a condition (fact type, field,
value set, policy key, enum value) is checked, so a typo is a load error with file, rule id and
field — never a rule that silently cannot fire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cds.facts.schema import FACT_TYPES, FactType, FieldSpec
from cds.ruleset.model import Pattern, Variant
from cds.ruleset.policy import Policy, PolicyValue

_DURABLE_OP = {"lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte", "ne": "$neq"}


class ConditionError(ValueError):
    """A condition that does not fit the schema; ``field`` is a dotted path inside the rule."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class CompiledVariant:
    rule_id: str
    variant: str
    key: str  # durable rule name: "<rule id>#<variant>"
    durable: dict[str, Any]
    aliases: dict[str, str]  # pattern name -> fact type (positive patterns only)
    negated_types: frozenset[str]


@dataclass(frozen=True)
class _Scope:
    valuesets: frozenset[str]
    policy: Policy


def compile_variant(
    rule_id: str, index: int, variant: Variant, valuesets: frozenset[str], policy: Policy
) -> CompiledVariant:
    scope = _Scope(valuesets, policy)
    base = f"variants[{index}].condition"
    positives = [
        {p.name: _pattern(p, f"{base}.all[{i}]", scope)}
        for i, p in enumerate(variant.condition.all)
    ]
    negatives = [
        {f"not{i}$not": _pattern(p, f"{base}.none[{i}]", scope)}
        for i, p in enumerate(variant.condition.none)
    ]
    return CompiledVariant(
        rule_id=rule_id,
        variant=variant.name,
        key=f"{rule_id}#{variant.name}",
        durable={"all": positives + negatives},
        aliases={p.name: p.fact for p in variant.condition.all},
        negated_types=frozenset(p.fact for p in variant.condition.none),
    )


def _pattern(pattern: Pattern, path: str, scope: _Scope) -> dict[str, Any]:
    fact_type = FACT_TYPES.get(pattern.fact)
    if fact_type is None:
        known = ", ".join(sorted(FACT_TYPES))
        raise ConditionError(f"{path}.fact", f"unknown fact type {pattern.fact!r} (known: {known})")
    tests = _where(pattern.where, fact_type, f"{path}.where", scope)
    return {"$and": [{"t": pattern.fact}, *tests]}


def _where(where: Mapping[str, Any], fact: FactType, path: str, scope: _Scope) -> list[Any]:
    tests: list[Any] = []
    for key, value in where.items():
        here = f"{path}.{key}"
        if key in ("any", "all"):
            if not isinstance(value, list) or not value:
                raise ConditionError(here, f"`{key}` takes a non-empty list of field tests")
            groups = [_group(item, fact, f"{here}[{i}]", scope) for i, item in enumerate(value)]
            tests.append({"$or" if key == "any" else "$and": groups})
            continue
        spec = fact.fields.get(key)
        if spec is None:
            raise ConditionError(here, f"fact {fact.name!r} has no field {key!r}")
        tests.append(_test(key, spec, value, here, scope))
    return tests


def _group(item: Any, fact: FactType, path: str, scope: _Scope) -> Any:
    if not isinstance(item, Mapping) or not item:
        raise ConditionError(path, "expected a mapping of field tests")
    tests = _where(item, fact, path, scope)
    return tests[0] if len(tests) == 1 else {"$and": tests}


def _test(field: str, spec: FieldSpec, raw: Any, path: str, scope: _Scope) -> Any:
    if not isinstance(raw, Mapping):
        return {field: _value(spec, raw, path, scope)}
    if len(raw) != 1:
        raise ConditionError(path, "give exactly one operator, e.g. {gt: 140}")
    ((op, operand),) = raw.items()
    if op == "eq":
        return {field: _value(spec, operand, path, scope)}
    if op == "exists":
        if not isinstance(operand, bool):
            raise ConditionError(path, "exists takes true or false")
        return {"$ex" if operand else "$nex": {field: 1}}
    if op == "in":
        if not isinstance(operand, list) or not operand:
            raise ConditionError(path, "in takes a non-empty list")
        return {"$or": [{field: _value(spec, v, path, scope)} for v in operand]}
    if op not in _DURABLE_OP:
        raise ConditionError(path, f"unknown operator {op!r}")
    if op != "ne" and spec.kind != "number":
        raise ConditionError(path, f"{op} compares numbers; {field} is a {spec.kind}")
    return {_DURABLE_OP[op]: {field: _value(spec, operand, path, scope)}}


def _value(spec: FieldSpec, raw: Any, path: str, scope: _Scope) -> PolicyValue:
    value = _resolve_policy(raw, path, scope.policy)
    if spec.kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConditionError(path, f"expected a number, got {value!r}")
    elif spec.kind == "bool":
        if not isinstance(value, bool):
            raise ConditionError(path, f"expected true or false, got {value!r}")
    elif spec.kind == "enum":
        if value not in spec.values:
            raise ConditionError(path, f"{value!r} is not one of {', '.join(spec.values)}")
    elif spec.kind == "valueset":
        if value not in scope.valuesets:
            raise ConditionError(path, f"unknown value set {value!r}")
    elif not isinstance(value, str):
        raise ConditionError(path, f"expected text, got {value!r}")
    return value


def _resolve_policy(raw: Any, path: str, policy: Policy) -> PolicyValue:
    if isinstance(raw, str) and raw.startswith("policy."):
        key = raw.removeprefix("policy.")
        if key not in policy.values:
            raise ConditionError(path, f"unknown policy key {key!r}")
        return policy.values[key]
    if isinstance(raw, bool | int | float | str):
        return raw
    raise ConditionError(path, f"unsupported value {raw!r}")


def policy_switch(enabled_if: str | None, policy: Policy, path: str) -> bool:
    """Evaluate a variant's ``enabled_if`` ("policy.x" or "not policy.x") at load time."""
    if enabled_if is None:
        return True
    negate = enabled_if.startswith("not ")
    key = enabled_if.removeprefix("not ").removeprefix("policy.")
    if key not in policy.values or not isinstance(policy.values[key], bool):
        raise ConditionError(path, f"enabled_if needs a true/false policy key, not {key!r}")
    return policy.flag(key) != negate
