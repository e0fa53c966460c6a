"""Record evaluations and feedback in a real (SQLite) audit store, for behaviour figures."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from cds.audit import AuditStore
from cds.hooks.cards import (
    OVERRIDE_SYSTEM,
    RULE_EXTENSION,
    SOURCE_LABEL,
    Card,
    Indicator,
    OverrideReason,
    Source,
)
from cds.pipeline_types import Evaluation, FiredRule, KeyOutcome, PatientData

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
REASON = OverrideReason(system=OVERRIDE_SYSTEM, code="OR-BENEFIT", display="Benefit")


def _card(rule_id: str) -> Card:
    return Card(
        uuid=str(uuid.uuid4()),
        summary=f"{rule_id} fired",
        indicator=Indicator.warning,
        source=Source(label=SOURCE_LABEL),
        overrideReasons=[REASON],
        extension={
            RULE_EXTENSION: {
                "id": rule_id,
                "version": "1.0.0",
                "family": "contraindication",
                "ruleset": "sha256:x",
            }
        },
    )


def fire(store: AuditStore, rule_id: str) -> str:
    """One evaluation where ``rule_id`` fired; returns the card uuid."""
    card = _card(rule_id)
    fired = FiredRule(rule_id, "1.0.0", "contraindication", "warning", card.uuid, [])
    store.record_evaluation(
        service_id="kap-order-sign",
        hook="order-sign",
        hook_instance=str(uuid.uuid4()),
        patient_id="p1",
        data=PatientData(
            {"Patient": [{"resourceType": "Patient", "id": "p1"}]},
            {"patient": KeyOutcome.prefetched},
        ),
        evaluation=Evaluation([card], [fired], T0, True, "sha256:x"),
        latency_ms=2.0,
    )
    return card.uuid


def answer(store: AuditStore, card_uuid: str, outcome: str, code: str = "OR-BENEFIT") -> None:
    item: dict[str, Any] = {
        "card": card_uuid,
        "outcome": outcome,
        "outcomeTimestamp": "2026-11-20T15:01:00Z",
    }
    if outcome == "overridden":
        item["overrideReason"] = {
            "reason": {"system": OVERRIDE_SYSTEM, "code": code, "display": code.title()}
        }
    else:
        item["acceptedSuggestions"] = [{"id": "s1"}]
    store.record_feedback(service_id="kap-order-sign", items=[item])


def seed(store: AuditStore) -> None:
    """KAP-CI-901 fired 5 times, 4 overridden (alert fatigue), 1 accepted; KAP-CI-001 fired once,
    accepted; nothing else fired."""
    for index in range(5):
        uid = fire(store, "KAP-CI-901")
        answer(
            store,
            uid,
            "accepted" if index == 0 else "overridden",
            "OR-DATA-WRONG" if index == 4 else "OR-BENEFIT",
        )
    answer(store, fire(store, "KAP-CI-001"), "accepted")
    assert store.flush(10)


def fire_with_shadow(store: AuditStore, rule_id: str, shadow_rule: str, service: str) -> str:
    """An evaluation where ``rule_id`` fired and ``shadow_rule`` would have (shadow)."""
    card = _card(rule_id)
    fired = FiredRule(rule_id, "1.0.0", "contraindication", "warning", card.uuid, [])
    ghost = FiredRule(shadow_rule, "1.1.0", "contraindication", "critical", str(uuid.uuid4()), [])
    store.record_evaluation(
        service_id=service,
        hook=service.removeprefix("kap-"),
        hook_instance=str(uuid.uuid4()),
        patient_id="p1",
        data=PatientData({}, {"patient": KeyOutcome.prefetched}),
        evaluation=Evaluation([card], [fired], T0, True, "sha256:x", [ghost]),
        latency_ms=2.0,
    )
    return card.uuid


def seed_analytics(store: AuditStore) -> None:
    """``seed`` plus what the charts show: a card accepted then overridden, a reason the card
    did not offer, a second service, and a shadow rule that would have fired."""
    seed(store)
    first = fire_with_shadow(store, "KAP-CI-001", "KAP-CI-010", "kap-order-select")
    answer(store, first, "accepted")
    assert store.flush(10)  # received in order: accepted first
    answer(store, first, "overridden", "OR-NOT-ON-THE-CARD")
    fire_with_shadow(store, "KAP-CI-001", "KAP-CI-010", "kap-order-sign")
    assert store.flush(10)
