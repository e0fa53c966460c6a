"""Fired rules -> CDS Hooks cards.

Per rule one card (one per drug class, not one per prescription): when several variants of a
rule fired, the most severe wins; every fact it matched is listed in the detail. Suppressions
from the catalog (``suppressed_by``) are applied here, after all rules have run, so they do not
depend on the order the engine fired them in. Rules on the readiness checklist
(``rules/readiness.yaml``) do not get cards of their own: ``cds.cards.checklist`` shows them all
as the lines of one card.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from cds.cards.actions import ACTIONS, ActionContext
from cds.cards.wording import reflow, whole_days
from cds.engine.durable import Match
from cds.hooks.cards import (
    EVIDENCE_EXTENSION,
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
from cds.ruleset.model import RuleFile, SuggestionSpec, Variant
from cds.ruleset.templates import SUMMARY_LIMIT, render

_DOWNGRADE = {
    Indicator.critical: Indicator.warning,
    Indicator.warning: Indicator.info,
    Indicator.info: Indicator.info,
}
Facts = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class CardContext:
    """What the cards of one request are shown against: who, which dose, and when."""

    actions: ActionContext
    drug: str | None  # ketamine / esketamine / None: links are shown for the drug at hand
    now: datetime
    tz: ZoneInfo
    near: bool  # the dose is close: readiness gaps are urgent (rules/readiness.yaml)


@dataclass(frozen=True)
class Firing:
    rule: RuleFile
    variant: Variant
    matches: list[Facts]


@dataclass(frozen=True)
class Rendered:
    """One fired rule in words: the pieces a card (or a checklist line) is made of."""

    summary: str
    detail: str  # reflowed Markdown, without the evidence lines
    evidence: list[str]
    refs: list[str]  # source resources ("Observation/12"): machine-readable only
    indicator: Indicator
    possible: bool


def build_cards(
    matches: list[Match], ruleset: LoadedRuleSet, ctx: CardContext
) -> tuple[list[Card], list[FiredRule]]:
    # Imported here: the checklist module builds on this one.
    from cds.cards.checklist import checklist_card

    firings = _select(matches, ruleset)
    shown = {
        rule_id: firing
        for rule_id, firing in firings.items()
        if not any(other in firings for other in firing.rule.suppressed_by)
    }
    checklist = ruleset.checklist
    listed = {r: f for r, f in shown.items() if checklist and checklist.line(r)}
    cards: list[tuple[tuple[int, str], Card, list[FiredRule]]] = []
    for rule_id in sorted(set(shown) - set(listed)):
        card, fired = _card(shown[rule_id], ruleset, ctx)
        cards.append(((-card.indicator.rank, rule_id), card, [fired]))
    if checklist and listed:
        card, fired_list = checklist_card(checklist, listed, ruleset, ctx)
        # After the contraindications of the same severity: those are the reasons not to dose.
        cards.append(((-card.indicator.rank, "~"), card, fired_list))
    cards.sort(key=lambda item: item[0])
    return [c for _, c, _ in cards], [f for _, _, fired in cards for f in fired]


def _select(matches: list[Match], ruleset: LoadedRuleSet) -> dict[str, Firing]:
    by_variant: dict[tuple[str, str], list[Facts]] = defaultdict(list)
    for match in matches:
        rule_id, _, variant = match.key.partition("#")
        by_variant[(rule_id, variant)].append(match.facts)
    chosen: dict[str, Firing] = {}
    for (rule_id, variant_name), facts in by_variant.items():
        rule = ruleset.rules[rule_id].rule
        fired_variant = next(v for v in rule.variants if v.name == variant_name)
        current = chosen.get(rule_id)
        if current is None or _outranks(fired_variant, current.variant, rule):
            chosen[rule_id] = Firing(rule, fired_variant, sorted(facts, key=_match_key))
    return chosen


def _outranks(candidate: Variant, current: Variant, rule: RuleFile) -> bool:
    if candidate.indicator.rank != current.indicator.rank:
        return candidate.indicator.rank > current.indicator.rank
    return rule.variants.index(candidate) < rule.variants.index(current)


def _match_key(facts: Facts) -> str:
    return "|".join(f"{alias}={sorted(f.items(), key=str)}" for alias, f in sorted(facts.items()))


def _only_possible(matches: list[Facts]) -> bool:
    """True when every match rests on an unconfirmed (possible) diagnosis."""
    conditions = [f for m in matches for f in m.values() if f.get("t") == "condition"]
    return bool(conditions) and all(f.get("possible") for f in conditions)


def words(firing: Firing, ruleset: LoadedRuleSet) -> Rendered:
    """The rule's texts filled from the facts it matched, in clinician words."""
    variant = firing.variant
    first = firing.matches[0]
    summary = whole_days(render(variant.summary, first, ruleset.policy))
    detail = reflow(whole_days(render(variant.detail, first, ruleset.policy)))
    indicator = variant.indicator
    possible = _only_possible(firing.matches)
    if possible:
        indicator = _DOWNGRADE[indicator]
        summary = _prefix_possible(summary)
        detail += (
            "\n\nThe diagnosis is recorded as unconfirmed (provisional, differential or "
            "unconfirmed), so this card is one level less severe than for a confirmed one."
        )
    evidence = (
        list(
            dict.fromkeys(
                whole_days(render(variant.evidence, m, ruleset.policy)) for m in firing.matches
            )
        )
        if variant.evidence
        else []
    )
    return Rendered(_fit(summary), detail, evidence, source_refs(firing), indicator, possible)


def source_refs(firing: Firing) -> list[str]:
    refs = (str(f["ref"]) for m in firing.matches for f in m.values() if f.get("ref"))
    return list(dict.fromkeys(refs))


def rule_entry(firing: Firing, ruleset: LoadedRuleSet) -> dict[str, str]:
    rule = firing.rule
    return {
        "id": rule.id,
        "version": rule.version,
        "family": rule.family,
        "ruleset": ruleset.digest,
    }


def fired_rule(firing: Firing, indicator: Indicator, card_uuid: str) -> FiredRule:
    rule = firing.rule
    facts = [f for m in firing.matches for f in m.values()]
    return FiredRule(
        rule.id, rule.version, rule.family, indicator.value, card_uuid, facts, firing.variant.name
    )


def _card(firing: Firing, ruleset: LoadedRuleSet, ctx: CardContext) -> tuple[Card, FiredRule]:
    rule, variant = firing.rule, firing.variant
    text = words(firing, ruleset)
    detail = text.detail + evidence_block(text.evidence)
    action_ctx = _with_text(ctx.actions, text.summary)
    suggestions = suggestions_for(variant, action_ctx)
    card = Card(
        uuid=str(uuid.uuid4()),
        summary=text.summary,
        detail=detail,
        indicator=text.indicator,
        source=Source(
            label=SOURCE_LABEL,
            topic=Coding(system=RULE_TOPIC_SYSTEM, code=rule.id, display=rule.title),
        ),
        suggestions=suggestions or None,
        selectionBehavior="at-most-one" if suggestions else None,
        overrideReasons=override_reasons(rule_reason_codes(rule, variant), ruleset) or None,
        links=links_for([rule], ctx) or None,
        extension={
            RULE_EXTENSION: {**rule_entry(firing, ruleset), "variant": variant.name},
            EVIDENCE_EXTENSION: [{"rule": rule.id, "refs": text.refs}],
        },
    )
    return card, fired_rule(firing, card.indicator, card.uuid)


def _with_text(ctx: ActionContext, summary: str) -> ActionContext:
    return ActionContext(ctx.patient_id, ctx.t0, ctx.order_ref, ctx.encounter_id, summary)


def _prefix_possible(summary: str) -> str:
    for prefix in ("Possible (unconfirmed diagnosis): ", "Possible: "):
        if len(prefix) + len(summary) <= SUMMARY_LIMIT:
            return prefix + summary
    return summary


def _fit(summary: str) -> str:
    return summary if len(summary) <= SUMMARY_LIMIT else summary[: SUMMARY_LIMIT - 1] + "…"


def evidence_block(lines: list[str]) -> str:
    if not lines:
        return ""
    return "\n\n**Patient data behind this card:**\n" + "\n".join(f"- {line}" for line in lines)


def suggestions_for(variant: Variant, ctx: ActionContext) -> list[Suggestion]:
    return [s for s in (suggestion_for(spec, ctx) for spec in variant.suggestions) if s]


def suggestion_for(spec: SuggestionSpec, ctx: ActionContext) -> Suggestion | None:
    """None when the action does not apply (e.g. no draft order to remove)."""
    actions = ACTIONS[spec.action](ctx, spec.params)
    if actions is None:
        return None
    return Suggestion(
        label=spec.label,
        uuid=str(uuid.uuid4()),
        isRecommended=spec.recommended or None,
        actions=actions,
    )


def rule_reason_codes(rule: RuleFile, variant: Variant) -> list[str]:
    return (
        variant.override_reasons if variant.override_reasons is not None else rule.override_reasons
    )


def override_reasons(codes: list[str], ruleset: LoadedRuleSet) -> list[OverrideReason]:
    return [
        OverrideReason(system=OVERRIDE_SYSTEM, code=c, display=ruleset.override_reasons[c])
        for c in dict.fromkeys(codes)
    ]


def links_for(rules: list[RuleFile], ctx: CardContext) -> list[Link]:
    """The rules' links that fit the drug at hand (no SPRAVATO REMS page for IV ketamine)."""
    seen: dict[str, Link] = {}
    for rule in rules:
        for link in rule.links:
            if link.for_drug is None or link.for_drug == ctx.drug:
                seen.setdefault(link.url, Link(label=link.label, url=link.url, type="absolute"))
    return list(seen.values())
