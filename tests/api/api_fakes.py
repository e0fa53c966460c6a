"""Fakes for the domain: an evaluator and an audit sink that remember their calls."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cds.facts.drugs import KapDrugs
from cds.facts.triage import Triage, triage
from cds.hooks.cards import Card, Indicator, Source
from cds.pipeline_types import Evaluation, PatientData
from cds.ruleset.valuesets import ValueSet

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
FIXED_NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
RULESET = {"digest": "sha256:" + "ab" * 32, "version": "0.1.0", "rules": 3}


def _value_set(vs_id: str, code: str, name: str) -> ValueSet:
    return ValueSet(
        vs_id,
        name,
        frozenset({(RXNORM, code)}),
        (),
        frozenset(),
        (),
        re.compile(rf"\b{name}\b", re.IGNORECASE),
    )


@dataclass
class FakeEvaluator:
    """Returns one info card; remembers every call. ``error`` makes evaluate raise it."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    error: Exception | None = None
    ruleset_info: dict[str, Any] = field(default_factory=lambda: dict(RULESET))
    prefetch_templates: dict[str, str] = field(default_factory=dict)
    drugs: KapDrugs = field(
        default_factory=lambda: KapDrugs(
            ketamine=_value_set("VS-KETAMINE", "6130", "ketamine"),
            esketamine=_value_set("VS-ESKETAMINE", "1000000", "esketamine"),
        )
    )

    def triage(self, hook: str, context: dict[str, Any]) -> Triage:
        return triage(hook, context, self.drugs)

    def evaluate(
        self, *, service_id: str, context: dict[str, Any], data: PatientData, now: datetime
    ) -> Evaluation:
        self.calls.append({"service_id": service_id, "context": context, "data": data, "now": now})
        if self.error is not None:
            raise self.error
        card = Card(
            uuid="5b0b6a76-3d3b-4b83-9a2e-1f4c2f0c9d11",
            summary="Fake rule fired",
            indicator=Indicator.info,
            source=Source(label="KAP Safety Rules"),
        )
        return Evaluation(
            cards=[card], fired=[], t0=now, kap=True, ruleset_digest=self.ruleset_info["digest"]
        )


@dataclass
class FakeAudit:
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    is_healthy: bool = True
    is_accepting: bool = True
    closed: bool = False

    def record_evaluation(self, **record: Any) -> None:
        self.evaluations.append(record)

    def record_feedback(self, *, service_id: str, items: list[dict[str, Any]], **who: Any) -> None:
        self.feedback.append({"service_id": service_id, "items": items, **who})

    def accepting(self) -> bool:
        return self.is_accepting

    def stats(self) -> dict[str, int]:
        return {"pending_bytes": 0, "quarantined": 0}

    def healthy(self) -> bool:
        return self.is_healthy

    def close(self) -> None:
        self.closed = True
