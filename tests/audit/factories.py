"""Fake pipeline outputs for the audit tests (built from the real dataclasses and card model).

Self-contained (imports only ``cds``) so that ``recorder_main.py`` can use it in a child process.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

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

DIGEST = "sha256:" + "ab" * 32
T0 = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
FACTS = [{"fact": "systolic_bp", "value": 182, "unit": "mm[Hg]", "sources": ["Observation/bp1"]}]
REASON = OverrideReason(system=OVERRIDE_SYSTEM, code="clinician-reviewed", display="Reviewed")


def card(rule_id: str, indicator: str = "warning", version: str = "1.2.0") -> Card:
    level = Indicator(indicator)
    return Card(
        uuid=str(uuid.uuid4()),
        summary=f"{rule_id} fired",
        indicator=level,
        source=Source(label=SOURCE_LABEL),
        overrideReasons=None if level is Indicator.info else [REASON],
        extension={
            RULE_EXTENSION: {
                "id": rule_id,
                "version": version,
                "family": "contraindication",
                "ruleset": DIGEST,
            }
        },
    )


def fired_for(c: Card, facts: list[dict[str, Any]] | None = None) -> FiredRule:
    ext = (c.extension or {})[RULE_EXTENSION]
    return FiredRule(
        rule_id=ext["id"],
        version=ext["version"],
        family=ext["family"],
        indicator=c.indicator.value,
        card_uuid=c.uuid,
        facts=facts
        if facts is not None
        else [
            {"fact": "systolic_bp", "value": 182, "unit": "mm[Hg]", "sources": ["Observation/bp1"]}
        ],
    )


def evaluation(*rule_ids: str, kap: bool = True) -> Evaluation:
    cards = [card(r) for r in rule_ids]
    return Evaluation(
        cards=cards,
        fired=[fired_for(c) for c in cards],
        t0=T0,
        kap=kap,
        ruleset_digest=DIGEST,
    )


def patient_data() -> PatientData:
    return PatientData(
        resources={"Patient": [{"resourceType": "Patient", "id": "p1"}]},
        outcomes={
            "patient": KeyOutcome.prefetched,
            "conditions": KeyOutcome.empty,
            "bp": KeyOutcome.failed,
        },
    )


def feedback_item(
    card_uuid: str, outcome: str = "overridden", *, code: str = "clinician-reviewed"
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "card": card_uuid,
        "outcome": outcome,
        "outcomeTimestamp": "2025-03-04T09:31:00Z",
    }
    if outcome == "accepted":
        item["acceptedSuggestions"] = [{"id": "sugg-1"}]
    else:
        item["overrideReason"] = {
            "reason": {"system": OVERRIDE_SYSTEM, "code": code, "display": code.title()},
            "userComment": "=discussed with patient",
        }
    return item


def record(store: Any, ev: Evaluation, *, patient_id: str = "p1", service: str = "kap-order-sign"):
    store.record_evaluation(
        service_id=service,
        hook="order-sign",
        hook_instance=str(uuid.uuid4()),
        patient_id=patient_id,
        data=patient_data(),
        evaluation=ev,
        latency_ms=3.5,
    )
