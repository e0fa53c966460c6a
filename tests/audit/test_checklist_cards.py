"""A consolidated (readiness checklist) card: one audit row per rule it lists, each counted as
fired, and feedback on the card counted for each of them (DESIGN.md "consolidated card")."""

from __future__ import annotations

import io
import uuid

import orjson

from cds.audit import AuditStore, export, rule_summary
from cds.hooks.cards import RULES_EXTENSION, SOURCE_LABEL, Card, Indicator, Source
from cds.pipeline_types import Evaluation, FiredRule

from . import factories as f

SERVICE = "kap-order-sign"
LISTED = (("KAP-QUAL-001", "missing", "critical"), ("KAP-CI-012", "order-missing", "warning"))


def checklist_evaluation() -> Evaluation:
    card_uuid = str(uuid.uuid4())
    card = Card(
        uuid=card_uuid,
        summary="Before this KAP dose: 2 items to complete — consent, blood pressure",
        indicator=Indicator.critical,
        source=Source(label=SOURCE_LABEL),
        overrideReasons=[f.REASON],
        extension={
            RULES_EXTENSION: [
                {"id": r, "version": "1.0.0", "family": "quality", "variant": v, "indicator": i}
                for r, v, i in LISTED
            ]
        },
    )
    fired = [
        FiredRule(r, "1.0.0", "quality", i, card_uuid, [{"t": "plan"}], v) for r, v, i in LISTED
    ]
    single = f.card("KAP-CI-020", "critical")
    return Evaluation([single, card], [f.fired_for(single), *fired], f.T0, True, f.DIGEST)


def test_each_listed_rule_is_a_fired_row_and_shares_the_feedback(store: AuditStore) -> None:
    evaluation = checklist_evaluation()
    f.record(store, evaluation)
    checklist = evaluation.cards[1]
    store.record_feedback(service_id=SERVICE, items=[f.feedback_item(checklist.uuid)])
    assert store.flush(10)

    stats = {s.rule_id: s for s in rule_summary(store)}
    assert {r: (s.fired, s.overridden) for r, s in stats.items()} == {
        "KAP-CI-020": (1, 0),
        "KAP-QUAL-001": (1, 1),
        "KAP-CI-012": (1, 1),
    }

    out = io.StringIO()
    export(store, None, "jsonl", out)
    rows = [orjson.loads(line) for line in out.getvalue().splitlines()]
    listed = [r for r in rows if r.get("card_uuid") == checklist.uuid]
    assert [(r["rule_id"], r["variant"], r["indicator"]) for r in listed] == list(LISTED)
    assert {r["position"] for r in listed} == {1}  # the card's place in the response
    assert all(len(r["feedback"]) == 1 for r in listed)
