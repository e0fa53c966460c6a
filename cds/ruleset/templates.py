"""Card text templates: ``{alias.field}`` placeholders filled from the facts a rule matched.

``{policy.key}`` inserts a site policy value, so a card always states the threshold in force.
Templates are checked at load: every placeholder must name a pattern of the variant and a field
of that fact type, and the summary, filled with the longest plausible values, must stay under
the CDS Hooks limit of 140 characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cds.facts.schema import FACT_TYPES
from cds.ruleset.model import PLACEHOLDER, Variant
from cds.ruleset.policy import Policy

SUMMARY_LIMIT = 139
NOT_RECORDED = "not recorded"
# No clinical value reaches a million (mg, kg, mmHg, days): beyond it a number is an entry
# error, shown short ("1e+16") so the card stays readable and under the summary limit.
_IMPLAUSIBLY_LARGE = 1e6
# Machine identifiers: they belong in the card's extension (org.kapcds.evidence), never in text
# a clinician reads.
ID_FIELDS = frozenset({"ref", "order_ref", "key", "vs"})
_INTERNAL_IDS = re.compile(r"\b(KAP-(CI|DRV|FAST|INT|DOSE|QUAL|DATA)-\d{3}|VS-[A-Z0-9-]+)\b")


class TemplateError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and abs(value) >= _IMPLAUSIBLY_LARGE:
        return f"{value:.3g}"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def render(template: str, facts: Mapping[str, Mapping[str, Any]], policy: Policy) -> str:
    def fill(match: Any) -> str:
        alias, field = match.group(1), match.group(2)
        if alias == "policy":
            return format_value(policy.values.get(field, NOT_RECORDED))
        value = facts.get(alias, {}).get(field)
        return NOT_RECORDED if value is None else format_value(value)

    return PLACEHOLDER.sub(fill, template)


def check_variant_templates(variant: Variant, policy: Policy) -> None:
    aliases = {p.name: p.fact for p in variant.condition.all}
    for name in ("summary", "detail", "evidence"):
        text = getattr(variant, name)
        if text:
            _check_placeholders(text, aliases, policy, name)
    samples = {
        alias: {f: spec.sample for f, spec in FACT_TYPES[fact].fields.items()}
        for alias, fact in aliases.items()
        if fact in FACT_TYPES
    }
    longest = render(variant.summary, samples, policy)
    if len(longest) > SUMMARY_LIMIT:
        raise TemplateError(
            "summary",
            f"{len(longest)} characters with the longest plausible values "
            f"(limit {SUMMARY_LIMIT}): {longest!r}",
        )


def _check_placeholders(text: str, aliases: dict[str, str], policy: Policy, where: str) -> None:
    internal = _INTERNAL_IDS.search(text)
    if internal:
        raise TemplateError(where, f"names {internal.group(0)}: say it in clinical words")
    for alias, field in PLACEHOLDER.findall(text):
        if alias != "policy" and field in ID_FIELDS:
            raise TemplateError(
                where, f"{{{alias}.{field}}} is an identifier: it goes in the card's evidence"
            )
        if alias == "policy":
            if field not in policy.values:
                raise TemplateError(where, f"unknown policy key {field!r}")
            continue
        fact = aliases.get(alias)
        if fact is None:
            raise TemplateError(where, f"{{{alias}.{field}}} names no pattern of this variant")
        if fact in FACT_TYPES and field not in FACT_TYPES[fact].fields:
            raise TemplateError(where, f"fact {fact!r} has no field {field!r}")
