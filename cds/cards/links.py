"""``source.url``: every card links to the governance page section of the rule (or checklist)
that made it, so a clinician can read why it fired and who signed it off."""

from __future__ import annotations

from cds.hooks.cards import Card


def governance_anchor(card: Card) -> str | None:
    topic = card.source.topic
    return topic.code if topic else None


def with_source_urls(cards: list[Card], base_url: str) -> list[Card]:
    """The cards with ``source.url`` = ``<base>/governance#<rule id or checklist id>``."""
    base = base_url.rstrip("/")
    linked = []
    for card in cards:
        anchor = governance_anchor(card)
        if anchor is None:
            linked.append(card)
            continue
        source = card.source.model_copy(update={"url": f"{base}/governance#{anchor}"})
        linked.append(card.model_copy(update={"source": source}))
    return linked
