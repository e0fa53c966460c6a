"""The readiness checklist card (rules/readiness.yaml): one card for the preparation gaps, lines
in checklist order, severity by time to the dose, each rule listed and traced."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from cds.cards.actions import ActionContext
from cds.cards.render import CardContext, build_cards
from cds.engine.durable import Match
from cds.errors import RuleLoadError
from cds.ruleset.loader import LoadedRuleSet, load_ruleset

RULES = Path(__file__).resolve().parents[2] / "rules"
T0 = datetime(2026, 11, 27, 15, tzinfo=UTC)
PLAN = {"t": "plan", "phase": "order", "drug": "ketamine", "at_display": "27 Nov 2026 15:00 UTC"}
HISTORY = {"t": "history", "new_course": True, "course_sessions": 0}


def context(near: bool, now: datetime = T0 - timedelta(days=7)) -> CardContext:
    actions = ActionContext(patient_id="p1", t0=T0, order_ref="MedicationRequest/ket")
    return CardContext(actions=actions, drug="ketamine", now=now, tz=ZoneInfo("UTC"), near=near)


@pytest.fixture(scope="module")
def ruleset() -> LoadedRuleSet:
    return load_ruleset(RULES)


def gaps() -> list[Match]:
    """Four gaps of a bare chart (engine order on purpose not the checklist order) and one
    contraindication."""
    return [
        Match("KAP-QUAL-006#no-baseline", {"plan": PLAN, "history": HISTORY}),
        Match("KAP-CI-012#order-missing", {"plan": PLAN}),
        Match("KAP-QUAL-001#missing", {"plan": PLAN}),
        Match("KAP-QUAL-004#no-preparation", {"plan": PLAN, "history": HISTORY}),
        Match(
            "KAP-CI-001#allergy",
            {
                "plan": PLAN,
                "allergy": {"t": "allergy", "display": "ketamine", "ref": "AllergyIntolerance/a"},
            },
        ),
    ]


def test_gaps_share_one_card_in_checklist_order_and_contraindications_keep_theirs(
    ruleset: LoadedRuleSet,
) -> None:
    cards, fired = build_cards(gaps(), ruleset, context(near=False))
    assert len(cards) == 2
    allergy, checklist = cards
    assert allergy.source.topic and allergy.source.topic.code == "KAP-CI-001"
    assert checklist.source.topic and checklist.source.topic.code == "readiness"
    assert checklist.source.topic.system == "urn:kap-cds:checklist"
    entries = (checklist.extension or {})["org.kapcds.rules"]
    assert [e["id"] for e in entries] == [
        "KAP-QUAL-001",
        "KAP-CI-012",
        "KAP-QUAL-004",
        "KAP-QUAL-006",
    ]
    assert {e["ruleset"] for e in entries} == {ruleset.digest}
    assert entries[1]["variant"] == "order-missing"
    # Every listed rule is traced against the one card (for the audit trail).
    assert [f.rule_id for f in fired if f.card_uuid == checklist.uuid] == [e["id"] for e in entries]
    assert "4 items" in checklist.summary and "consent" in checklist.summary
    assert checklist.detail and checklist.detail.index("consent") < checklist.detail.index(
        "blood pressure"
    )
    assert "in 7 days, on 27 Nov 2026 15:00 UTC" in checklist.detail


def test_severity_by_time_to_the_dose(ruleset: LoadedRuleSet) -> None:
    later, _ = build_cards(gaps(), ruleset, context(near=False))
    near, _ = build_cards(gaps(), ruleset, context(near=True))
    assert {e["indicator"] for e in (later[1].extension or {})["org.kapcds.rules"]} == {"warning"}
    assert later[1].indicator.value == "warning"
    assert {e["indicator"] for e in (near[1].extension or {})["org.kapcds.rules"]} == {"critical"}
    assert near[1].indicator.value == "critical"
    assert near[1].overrideReasons  # a critical checklist always offers override reasons


def test_a_line_can_keep_a_milder_severity(ruleset: LoadedRuleSet) -> None:
    """Fasting not recorded is a check-in reminder: warning even at encounter-start, and the
    card's indicator is the highest line, not the checklist's default."""
    session = {**PLAN, "phase": "session"}
    matches = [Match("KAP-FAST-004#session", {"plan": session, "intake": {"t": "intake"}})]
    [card], _ = build_cards(matches, ruleset, context(near=True, now=T0))
    assert card.indicator.value == "warning"
    matches.append(Match("KAP-CI-012#session-missing", {"plan": session}))
    [card], _ = build_cards(matches, ruleset, context(near=True, now=T0))
    indicators = [e["indicator"] for e in (card.extension or {})["org.kapcds.rules"]]
    assert indicators == ["critical", "warning"] and card.indicator.value == "critical"


def test_suggestions_once_per_action_and_any_may_be_chosen(ruleset: LoadedRuleSet) -> None:
    matches = [
        Match("KAP-CI-012#order-missing", {"plan": PLAN}),
        Match("KAP-INT-006#no-recent-bp", {"plan": PLAN, "history": HISTORY}),
    ]
    [card], _ = build_cards(matches, ruleset, context(near=False))
    labels = [s.label for s in card.suggestions or []]
    assert len(labels) == len(set(labels))
    bp_orders = [
        s
        for s in card.suggestions or []
        if s.actions and "Blood pressure" in s.actions[0].description
    ]
    assert len(bp_orders) == 1
    assert card.selectionBehavior == "any"


def test_one_gap_keeps_its_own_summary(ruleset: LoadedRuleSet) -> None:
    [card], _ = build_cards(
        [Match("KAP-QUAL-001#missing", {"plan": PLAN})], ruleset, context(False)
    )
    assert card.summary.startswith("No active KAP informed consent")


def write_checklist(tmp_path: Path, body: dict[str, Any]) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    (target / "readiness.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    return target


def test_checklist_errors_are_refused_at_load(tmp_path: Path) -> None:
    good = yaml.safe_load((RULES / "readiness.yaml").read_text(encoding="utf-8"))
    unknown = {**good, "lines": [*good["lines"], {"rule": "KAP-CI-999", "label": "nothing"}]}
    with pytest.raises(RuleLoadError, match="unknown rule"):
        load_ruleset(write_checklist(tmp_path / "a", unknown))
    twice = {**good, "lines": [*good["lines"], good["lines"][0]]}
    with pytest.raises(RuleLoadError, match="listed twice"):
        load_ruleset(write_checklist(tmp_path / "b", twice))
    milder = {**good, "severity": {"near": "info", "later": "warning"}}
    with pytest.raises(RuleLoadError, match="milder"):
        load_ruleset(write_checklist(tmp_path / "c", milder))


def test_without_a_checklist_every_rule_has_its_own_card(tmp_path: Path) -> None:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    (target / "readiness.yaml").unlink()
    ruleset = load_ruleset(target)
    cards, _ = build_cards(gaps(), ruleset, context(near=False))
    assert len(cards) == 5
    assert ruleset.digest != load_ruleset(RULES).digest  # the checklist is part of the digest
