"""Which rules a card stood for, so feedback can be counted per rule in /metrics.

Feedback names only the card's uuid. Cards this process answered with are remembered (bounded);
a card answered by another replica or before a restart is looked up in the audit store, which
every replica shares. A card found in neither is counted under ``unknown``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from cds.audit.schema import cards
from cds.pipeline_types import Evaluation

logger = logging.getLogger(__name__)

UNKNOWN_RULE = "unknown"


class CardRules:
    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._rules: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, evaluation: Evaluation) -> None:
        by_card: dict[str, list[str]] = {}
        for fired in evaluation.fired:
            by_card.setdefault(fired.card_uuid, []).append(fired.rule_id)
        with self._lock:
            for uuid, rule_ids in by_card.items():
                self._rules[uuid] = tuple(rule_ids)
            while len(self._rules) > self._capacity:
                self._rules.popitem(last=False)

    def rules_for(self, uuids: Iterable[str], store: Engine | None) -> dict[str, tuple[str, ...]]:
        """Rule ids per card uuid; blocking (database) work, so call it off the event loop."""
        wanted = list(dict.fromkeys(uuids))
        with self._lock:
            found = {u: self._rules[u] for u in wanted if u in self._rules}
        missing = [u for u in wanted if u not in found]
        if missing and store is not None:
            found |= _from_store(store, missing)
        return {u: found.get(u, (UNKNOWN_RULE,)) for u in wanted}


def _from_store(store: Engine, uuids: list[str]) -> dict[str, tuple[str, ...]]:
    by_card: dict[str, list[str]] = {}
    try:
        with store.connect() as conn:
            rows = conn.execute(
                select(cards.c.card_uuid, cards.c.rule_id).where(cards.c.card_uuid.in_(uuids))
            )
            for uuid, rule_id in rows:
                by_card.setdefault(uuid, []).append(rule_id)
    except SQLAlchemyError as exc:
        # The store being down must not fail feedback: the counts just say "unknown".
        logger.warning("card lookup for feedback metrics failed: %s", type(exc).__name__)
    return {u: tuple(r) for u, r in by_card.items()}
