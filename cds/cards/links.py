"""``source.url``: every card links to the governance page of the rule (or the checklist
section) that made it, so a clinician can read why it fired and who signed it off."""

from __future__ import annotations

from cds.hooks.cards import CHECKLIST_TOPIC_SYSTEM, RULE_TOPIC_SYSTEM, Card


def governance_path(card: Card) -> str | None:
    """``/governance/rules/<rule id>``, or ``/governance#<checklist id>`` for a checklist card."""
    topic = card.source.topic
    if topic is None:
        return None
    if topic.system == RULE_TOPIC_SYSTEM:
        return f"/governance/rules/{topic.code}"
    if topic.system == CHECKLIST_TOPIC_SYSTEM:
        return f"/governance#{topic.code}"
    return None


def with_source_urls(cards: list[Card], base_url: str) -> list[Card]:
    """The cards with ``source.url`` on the service's own governance pages."""
    base = base_url.rstrip("/")
    linked = []
    for card in cards:
        path = governance_path(card)
        if path is None:
            linked.append(card)
            continue
        source = card.source.model_copy(update={"url": f"{base}{path}"})
        linked.append(card.model_copy(update={"source": source}))
    return linked
