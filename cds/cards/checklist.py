"""The readiness checklist card: every fired rule of ``rules/readiness.yaml`` as one line.

A clinician gets one card saying what is still to be done before the dose, instead of five
cards that each say "this patient has not been prepared yet". Each rule keeps its identity: the
card lists every rule in ``extension["org.kapcds.rules"]`` (DESIGN.md "consolidated card"), each
is audited as fired against this card, and the card's indicator is the highest of its lines.
How urgent a line is depends on the time to the dose (the checklist's ``severity``).
"""

from __future__ import annotations

import uuid
from typing import Any

from cds.cards.actions import ActionContext
from cds.cards.render import (
    CardContext,
    Firing,
    Rendered,
    fired_rule,
    links_for,
    override_reasons,
    rule_entry,
    rule_reason_codes,
    source_refs,
    suggestion_for,
    words,
)
from cds.cards.wording import when_phrase
from cds.hooks.cards import (
    CHECKLIST_TOPIC_SYSTEM,
    EVIDENCE_EXTENSION,
    RULES_EXTENSION,
    SOURCE_LABEL,
    Card,
    Coding,
    OverrideReason,
    Source,
    Suggestion,
)
from cds.pipeline_types import FiredRule
from cds.ruleset.checklist import Checklist
from cds.ruleset.loader import LoadedRuleSet
from cds.ruleset.templates import SUMMARY_LIMIT


def checklist_card(
    checklist: Checklist, fired: dict[str, Firing], ruleset: LoadedRuleSet, ctx: CardContext
) -> tuple[Card, list[FiredRule]]:
    ordered = sorted(fired.values(), key=lambda f: checklist.position(f.rule.id))
    texts = [words(f, ruleset) for f in ordered]
    levels = [checklist.indicator(f.rule.id, ctx.near) for f in ordered]
    indicator = max(levels, key=lambda i: i.rank)
    card_uuid = str(uuid.uuid4())
    labels = [_label(checklist, f) for f in ordered]
    card = Card(
        uuid=card_uuid,
        summary=_summary(checklist, labels, texts),
        detail=_detail(texts, ctx),
        indicator=indicator,
        source=Source(
            label=SOURCE_LABEL,
            topic=Coding(system=CHECKLIST_TOPIC_SYSTEM, code=checklist.id, display=checklist.title),
        ),
        **_suggestions(ordered, ctx.actions),
        overrideReasons=_reasons(checklist, ordered, ruleset) or None,
        links=links_for([f.rule for f in ordered], ctx) or None,
        extension={
            RULES_EXTENSION: [
                {**rule_entry(f, ruleset), "variant": f.variant.name, "indicator": level.value}
                for f, level in zip(ordered, levels, strict=True)
            ],
            EVIDENCE_EXTENSION: [{"rule": f.rule.id, "refs": source_refs(f)} for f in ordered],
        },
    )
    return card, [fired_rule(f, lvl, card_uuid) for f, lvl in zip(ordered, levels, strict=True)]


def _label(checklist: Checklist, firing: Firing) -> str:
    line = checklist.line(firing.rule.id)
    return line.label if line else firing.rule.title


def _summary(checklist: Checklist, labels: list[str], texts: list[Rendered]) -> str:
    """One gap: its own summary (it says what to do). Several: the gaps by name."""
    if len(texts) == 1:
        return texts[0].summary
    head = f"{checklist.title}: {len(labels)} items to complete — "
    for shown in range(len(labels), 0, -1):
        rest = len(labels) - shown
        text = head + ", ".join(labels[:shown]) + (f" (+{rest} more)" if rest else "")
        if len(text) <= SUMMARY_LIMIT:
            return text
    return head.rstrip(" —")


def _detail(texts: list[Rendered], ctx: CardContext) -> str:
    when = when_phrase(ctx.actions.t0, ctx.now, ctx.tz)
    urgency = (
        "Complete each item before dosing."
        if ctx.near
        else "There is time to complete these before the dose."
    )
    parts = [f"**To complete before the dose {when}.** {urgency}"]
    for number, text in enumerate(texts, start=1):
        body = text.detail.replace("\n", "\n   ")  # Markdown: continuation of the list item
        data = f"\n\n   _Patient data:_ {'; '.join(text.evidence)}." if text.evidence else ""
        parts.append(f"{number}. **{text.summary}**\n\n   {body}{data}")
    return "\n\n".join(parts)


def _suggestions(ordered: list[Firing], actions: ActionContext) -> dict[str, Any]:
    """Each line's suggestions, once per action (one blood pressure order, not two)."""
    seen: dict[str, Suggestion] = {}
    for firing in ordered:
        for spec in firing.variant.suggestions:
            if spec.action not in seen and (suggestion := suggestion_for(spec, actions)):
                seen[spec.action] = suggestion
    if not seen:
        return {}
    return {"suggestions": list(seen.values()), "selectionBehavior": "any"}


def _reasons(
    checklist: Checklist, ordered: list[Firing], ruleset: LoadedRuleSet
) -> list[OverrideReason]:
    codes = [c for f in ordered for c in rule_reason_codes(f.rule, f.variant)]
    return override_reasons([*codes, *checklist.override_reasons], ruleset)
