"""Export (jsonl, csv) and the per-rule summary, read back from a real store."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from cds.audit import AuditStore, export, rule_summary
from cds.audit.queries import ReasonCount
from cds.pipeline_types import Evaluation

from . import factories as f

SERVICE = "kap-order-sign"


def _seed(store: AuditStore) -> tuple[Evaluation, Evaluation]:
    """Two KAP evaluations (3 cards), one non-KAP, feedback history, and unknown-card feedback."""
    first = f.evaluation("KAP-CI-010", "KAP-DR-001")
    second = Evaluation(
        cards=[f.card("KAP-CI-010", version="1.3.0")],
        fired=[],
        t0=f.T0,
        kap=True,
        ruleset_digest=f.DIGEST,
    )
    second = Evaluation(
        second.cards, [f.fired_for(second.cards[0])], second.t0, True, second.ruleset_digest
    )
    f.record(store, first)
    f.record(store, f.evaluation(kap=False))
    f.record(store, second)
    ci_first, dr_first = (c.uuid for c in first.cards)
    store.record_feedback(service_id=SERVICE, items=[f.feedback_item(ci_first, code="benefit")])
    assert store.flush(10)  # received_at order: the override first, then the acceptance
    time.sleep(0.002)
    store.record_feedback(
        service_id=SERVICE,
        items=[
            f.feedback_item(ci_first, "accepted"),
            f.feedback_item(second.cards[0].uuid, code="benefit"),
            f.feedback_item(dr_first, code="escort-arranged"),
            f.feedback_item("unknown-card", "accepted"),
        ],
    )
    assert store.flush(10)
    return first, second


def test_jsonl_export_has_one_line_per_card_with_feedback_history(store: AuditStore) -> None:
    first, _ = _seed(store)
    out = io.StringIO()
    written = export(store, None, "jsonl", out)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert written == len(lines) == 5
    kinds = [line["record"] for line in lines]
    assert kinds.count("card") == 3
    assert kinds.count("evaluation") == 1
    assert kinds.count("unknown_card_feedback") == 1

    by_card = {line["card_uuid"]: line for line in lines if line["record"] == "card"}
    ci = by_card[first.cards[0].uuid]
    assert ci["rule_id"] == "KAP-CI-010"
    assert ci["facts"] == f.FACTS
    assert ci["data_outcomes"]["bp"] == "failed"
    assert [fb["outcome"] for fb in ci["feedback"]] == ["overridden", "accepted"]
    assert ci["feedback"][0]["override_code"] == "benefit"
    [no_cards] = [line for line in lines if line["record"] == "evaluation"]
    assert no_cards["kap"] is False


def test_csv_export_has_one_row_per_card_and_defuses_formulas(store: AuditStore) -> None:
    first, _ = _seed(store)
    out = io.StringIO()
    assert export(store, None, "csv", out) == 3
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(table) == 3
    row = next(r for r in table if r["card_uuid"] == first.cards[0].uuid)
    assert row["feedback_count"] == "2"
    assert row["last_outcome"] == "accepted"
    assert orjson.loads(row["facts"]) == f.FACTS
    overridden = next(r for r in table if r["card_uuid"] == first.cards[1].uuid)
    assert overridden["last_user_comment"] == "'=discussed with patient"


def test_export_since_leaves_out_older_evaluations(store: AuditStore) -> None:
    _seed(store)
    cut = datetime.now(UTC)
    time.sleep(0.002)
    late = f.evaluation("KAP-FA-001")
    f.record(store, late)
    assert store.flush(10)
    out = io.StringIO()
    export(store, cut, "jsonl", out)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [line["card_uuid"] for line in lines] == [late.cards[0].uuid]


def test_rule_summary_counts_fired_outcomes_and_reasons(store: AuditStore) -> None:
    _seed(store)
    stats = {s.rule_id: s for s in rule_summary(store)}
    assert set(stats) == {"KAP-CI-010", "KAP-DR-001"}

    ci = stats["KAP-CI-010"]
    assert ci.versions == ("1.2.0", "1.3.0")
    assert ci.fired == 2
    # card 1: overridden, then accepted (both count, in that order); card 2: overridden
    assert (ci.answered, ci.accepted, ci.overridden, ci.both) == (2, 1, 2, 1)
    assert dict(ci.sequences) == {"overridden → accepted": 1, "overridden": 1}
    assert ci.override_reasons == (ReasonCount("benefit", "Benefit", 2),)
    assert ci.last_fired is not None and ci.last_fired.tzinfo is not None

    dr = stats["KAP-DR-001"]
    assert (dr.fired, dr.accepted, dr.overridden, dr.both) == (1, 0, 1, 0)
    assert dr.override_reasons == (ReasonCount("escort-arranged", "Escort-Arranged", 1),)
    assert dr.to_json()["override_reasons"] == [
        {"code": "escort-arranged", "display": "Escort-Arranged", "count": 1, "offered": None}
    ]


def test_rule_summary_flags_reasons_the_card_did_not_offer(store: AuditStore) -> None:
    _seed(store)
    offered = {"KAP-CI-010": frozenset({"benefit"}), "KAP-DR-001": frozenset({"OR-OTHER"})}
    stats = {s.rule_id: s for s in rule_summary(store, offered=offered)}
    assert stats["KAP-CI-010"].unoffered_reasons == ()
    assert stats["KAP-CI-010"].override_reasons[0].offered is True
    [odd] = stats["KAP-DR-001"].unoffered_reasons
    assert (odd.code, odd.offered) == ("escort-arranged", False)


def test_rule_summary_window(store: AuditStore) -> None:
    _seed(store)
    now = datetime.now(UTC)
    assert rule_summary(store, since=now + timedelta(seconds=1)) == []
    assert rule_summary(store, until=now - timedelta(days=1)) == []
    assert len(rule_summary(store, since=now - timedelta(days=1), until=now + timedelta(1))) == 2


def test_export_rejects_unknown_format(store: AuditStore) -> None:
    with pytest.raises(ValueError, match="format"):
        export(store, None, "xml", io.StringIO())  # type: ignore[arg-type]
