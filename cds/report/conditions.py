"""Conditions rendered for reviewers: ``bp: sbp > 140 (policy bp_warning_systolic = 140)``
rather than the YAML, and the policy keys and value sets a rule depends on.

Reviewers sign off what a rule does with the site's values, so a ``policy.<key>`` operand is
shown with the value in effect (and says when a site policy file changed it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cds.ruleset.model import PLACEHOLDER, Condition, Pattern, RuleFile
from cds.ruleset.policy import Policy, PolicyValue

_SYMBOL = {"lt": "<", "le": "≤", "gt": ">", "ge": "≥"}
_POLICY_PREFIX = "policy."


def show_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ConditionText:
    """Renders conditions against one rule set's policy and value-set titles."""

    def __init__(self, policy: Policy, valueset_titles: Mapping[str, str]) -> None:
        self.policy = policy
        self.titles = valueset_titles

    def condition(self, condition: Condition) -> list[str]:
        lines = [f"{_name(p)}: {self.where(p.where)}" for p in condition.all]
        lines += [f"no {_name(p)}: {self.where(p.where)}" for p in condition.none]
        return lines

    def where(self, where: Mapping[str, Any]) -> str:
        if not where:
            return "any"
        return " and ".join(self._test(key, value) for key, value in where.items())

    def _test(self, key: str, value: Any) -> str:
        if key in ("any", "all") and isinstance(value, list):
            joiner = " or " if key == "any" else " and "
            parts = [self.where(item) if isinstance(item, Mapping) else str(item) for item in value]
            text = joiner.join(parts)
            return f"({text})" if len(parts) > 1 else text
        if not isinstance(value, Mapping):
            return f"{key} is {self.operand(value)}"
        if len(value) != 1:  # the loader refuses this; show it rather than guess
            return f"{key} {dict(value)}"
        op, operand = next(iter(value.items()))
        return self._operator(key, str(op), operand)

    def _operator(self, key: str, op: str, operand: Any) -> str:
        if op == "eq":
            return f"{key} is {self.operand(operand)}"
        if op == "ne":
            return f"{key} is not {self.operand(operand)}"
        if op == "in" and isinstance(operand, list):
            return f"{key} is one of {', '.join(self.operand(v) for v in operand)}"
        if op == "exists":
            return f"{key} is recorded" if operand else f"{key} is not recorded"
        if op in _SYMBOL:
            return f"{key} {_SYMBOL[op]} {self.operand(operand)}"
        return f"{key} {op} {self.operand(operand)}"

    def operand(self, value: Any) -> str:
        if isinstance(value, str) and value.startswith(_POLICY_PREFIX):
            key = value.removeprefix(_POLICY_PREFIX)
            if key not in self.policy.values:
                return value
            effective = self.policy.values[key]
            shown = show_value(effective)
            return f"{shown} ({self.policy_source(key)} {key} = {shown})"
        if isinstance(value, str) and value in self.titles:
            return f"{value} ({self.titles[value]})"
        return show_value(value)

    def policy_source(self, key: str) -> str:
        return "site policy" if key in self.policy.overridden else "policy"

    def switch(self, enabled_if: str | None) -> str | None:
        """``not policy.x`` -> 'only when policy x is false (now: true)'."""
        if enabled_if is None:
            return None
        negated = enabled_if.startswith("not ")
        key = enabled_if.removeprefix("not ").removeprefix(_POLICY_PREFIX)
        now = show_value(self.policy.values.get(key, "unknown"))
        wanted = "false" if negated else "true"
        active = "enabled" if now == wanted else "DISABLED at this site"
        return f"only when {self.policy_source(key)} {key} is {wanted} (now {now}: {active})"


def _name(pattern: Pattern) -> str:
    if pattern.alias in (None, pattern.fact):
        return pattern.fact
    return f"{pattern.alias} ({pattern.fact})"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _condition_strings(rule: RuleFile) -> Iterator[str]:
    for variant in rule.variants:
        for pattern in [*variant.condition.all, *variant.condition.none]:
            yield from _strings(pattern.where)
        if variant.enabled_if:
            yield variant.enabled_if.removeprefix("not ")


def policy_keys(rule: RuleFile, policy: Policy) -> list[str]:
    """Policy keys the rule reads: in conditions, switches, card texts, or listed for it in
    policy.yaml (``rules:``), in policy-file order."""
    named = {
        s.removeprefix(_POLICY_PREFIX)
        for s in _condition_strings(rule)
        if s.startswith(_POLICY_PREFIX)
    }
    for variant in rule.variants:
        for text in (variant.summary, variant.detail, variant.evidence or ""):
            named |= {m.group(2) for m in PLACEHOLDER.finditer(text) if m.group(1) == "policy"}
    return [key for key, entry in policy.entries.items() if key in named or rule.id in entry.rules]


def valueset_ids(rule: RuleFile, known: Mapping[str, object]) -> list[str]:
    return sorted({s for s in _condition_strings(rule) if s in known})


def policy_display(value: PolicyValue, unit: str | None) -> str:
    return f"{show_value(value)} {unit}" if unit else show_value(value)
