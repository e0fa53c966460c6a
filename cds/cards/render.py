"""Fired rules -> CDS Hooks cards.

Per rule one card (one per drug class, not one per prescription): when several variants of a
rule fired, the most severe wins; every fact it matched is listed in the detail. Suppressions
from the catalog (``suppressed_by``) are applied here, after all rules have run, so they do not
depend on the order the engine fired them in.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from cds.cards.actions import ACTIONS, ActionContext
from cds.engine.durable import Match
from cds.hooks.cards import (
    OVERRIDE_SYSTEM,
    RULE_EXTENSION,
    RULE_TOPIC_SYSTEM,
    SOURCE_LABEL,
    Card,
    Coding,
    Indicator,
    Link,
    OverrideReason,
    Source,
    Suggestion,
)
from cds.pipeline_types import FiredRule
from cds.ruleset.loader import LoadedRuleSet
from cds.ruleset.model import RuleFile, Variant
from cds.ruleset.templates import SUMMARY_LIMIT, render

_DOWNGRADE = {
    Indicator.critical: Indicator.warning,
    Indicator.warning: Indicator.info,
    Indicator.info: Indicator.info,
}


@dataclass(frozen=True)
class _Firing:
    rule: RuleFile
    variant: Variant
    matches: list[dict[str, dict[str, Any]]]


def build_cards(
    matches: list[Match], ruleset: LoadedRuleSet, ctx: ActionContext
) -> tuple[list[Card], list[FiredRule]]:
    firings = _select(matches, ruleset)
    fired_ids = set(firings)
    cards: list[Card] = []
    trace: list[FiredRule] = []
    for rule_id in sorted(firings):
        firing = firings[rule_id]
        if any(other in fired_ids for other in firing.rule.suppressed_by):
            continue
        card = _card(firing, ruleset, ctx)
        cards.append(card)
        trace.append(
            FiredRule(
                rule_id,
                firing.rule.version,
                firing.rule.family,
                card.indicator.value,
                card.uuid,
                [f for m in firing.matches for f in m.values()],
            )
        )
    order = sorted(range(len(cards)), key=lambda i: (-cards[i].indicator.rank, trace[i].rule_id))
    return [cards[i] for i in order], [trace[i] for i in order]


def _select(matches: list[Match], ruleset: LoadedRuleSet) -> dict[str, _Firing]:
    by_variant: dict[tuple[str, str], list[dict[str, dict[str, Any]]]] = defaultdict(list)
    for match in matches:
        rule_id, _, variant = match.key.partition("#")
        by_variant[(rule_id, variant)].append(match.facts)
    chosen: dict[str, _Firing] = {}
    for (rule_id, variant_name), facts in by_variant.items():
        rule = ruleset.rules[rule_id].rule
        fired_variant = next(v for v in rule.variants if v.name == variant_name)
        current = chosen.get(rule_id)
        if current is None or _outranks(fired_variant, current.variant, rule):
            chosen[rule_id] = _Firing(rule, fired_variant, sorted(facts, key=_match_key))
    return chosen


def _outranks(candidate: Variant, current: Variant, rule: RuleFile) -> bool:
    if candidate.indicator.rank != current.indicator.rank:
        return candidate.indicator.rank > current.indicator.rank
    return rule.variants.index(candidate) < rule.variants.index(current)


def _match_key(facts: dict[str, dict[str, Any]]) -> str:
    return "|".join(f"{alias}={sorted(f.items(), key=str)}" for alias, f in sorted(facts.items()))


def _only_possible(matches: list[dict[str, dict[str, Any]]]) -> bool:
    """True when every match rests on an unconfirmed (possible) diagnosis."""
    conditions = [f for m in matches for f in m.values() if f.get("t") == "condition"]
    return bool(conditions) and all(f.get("possible") for f in conditions)


def _card(firing: _Firing, ruleset: LoadedRuleSet, ctx: ActionContext) -> Card:
    rule, variant = firing.rule, firing.variant
    first = firing.matches[0]
    indicator = variant.indicator
    summary = render(variant.summary, first, ruleset.policy)
    detail = render(variant.detail, first, ruleset.policy).strip()
    if _only_possible(firing.matches):
        indicator = _DOWNGRADE[indicator]
        summary = _prefix_possible(summary)
        detail += (
            "\n\nThe diagnosis is recorded as unconfirmed (provisional, differential or "
            "unconfirmed), so this card is one level less severe than for a confirmed one."
        )
    detail += _evidence(variant, firing.matches, ruleset)
    detail += f"\n\n_Rule {rule.id} v{rule.version} — {rule.title}._"
    action_ctx = ActionContext(ctx.patient_id, ctx.t0, ctx.order_ref, ctx.encounter_id, summary)
    suggestions = _suggestions(variant, action_ctx)
    return Card(
        uuid=str(uuid.uuid4()),
        summary=_fit(summary),
        detail=detail,
        indicator=indicator,
        source=Source(
            label=SOURCE_LABEL,
            topic=Coding(system=RULE_TOPIC_SYSTEM, code=rule.id, display=rule.title),
        ),
        suggestions=suggestions or None,
        selectionBehavior="at-most-one" if suggestions else None,
        overrideReasons=_override_reasons(rule, variant, ruleset) or None,
        links=[Link(label=link.label, url=link.url, type="absolute") for link in rule.links]
        or None,
        extension={
            RULE_EXTENSION: {
                "id": rule.id,
                "version": rule.version,
                "family": rule.family,
                "ruleset": ruleset.digest,
            }
        },
    )


def _prefix_possible(summary: str) -> str:
    for prefix in ("Possible (unconfirmed diagnosis): ", "Possible: "):
        if len(prefix) + len(summary) <= SUMMARY_LIMIT:
            return prefix + summary
    return summary


def _fit(summary: str) -> str:
    return summary if len(summary) <= SUMMARY_LIMIT else summary[: SUMMARY_LIMIT - 1] + "…"


def _evidence(
    variant: Variant, matches: list[dict[str, dict[str, Any]]], ruleset: LoadedRuleSet
) -> str:
    if not variant.evidence:
        return ""
    lines = list(dict.fromkeys(render(variant.evidence, m, ruleset.policy) for m in matches))
    return "\n\n**Patient data behind this card:**\n" + "\n".join(f"- {line}" for line in lines)


def _suggestions(variant: Variant, ctx: ActionContext) -> list[Suggestion]:
    result = []
    for spec in variant.suggestions:
        actions = ACTIONS[spec.action](ctx, spec.params)
        if actions is not None:
            result.append(
                Suggestion(
                    label=spec.label,
                    uuid=str(uuid.uuid4()),
                    isRecommended=spec.recommended or None,
                    actions=actions,
                )
            )
    return result


def _override_reasons(
    rule: RuleFile, variant: Variant, ruleset: LoadedRuleSet
) -> list[OverrideReason]:
    codes = (
        variant.override_reasons if variant.override_reasons is not None else rule.override_reasons
    )
    return [
        OverrideReason(system=OVERRIDE_SYSTEM, code=c, display=ruleset.override_reasons[c])
        for c in codes
    ]
