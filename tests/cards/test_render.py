"""From engine matches to cards: one card per rule, most severe variant, suppression, 'possible'."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from cds.cards.actions import ActionContext
from cds.cards.render import CardContext, build_cards
from cds.engine.durable import Match
from cds.ruleset.loader import LoadedRuleSet, load_ruleset

RULES = Path(__file__).resolve().parents[2] / "rules"
T0 = datetime(2026, 11, 20, 15, tzinfo=UTC)
CTX = CardContext(
    actions=ActionContext(patient_id="p1", t0=T0),
    drug="ketamine",
    now=T0,
    tz=ZoneInfo("UTC"),
    near=True,
)


def rule(rule_id: str, variants: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "title": f"Rule {rule_id}",
        "family": "contraindication",
        "version": "1.2.3",
        "status": "active",
        "owner": "test",
        "effective_date": "2026-11-22",
        "hooks": ["order-sign"],
        "when": "w",
        "then": "t",
        "evidence": [{"id": "REF-01", "text": "e"}],
        "override_reasons": ["OR-BENEFIT"],
        "variants": variants,
        **extra,
    }


def variant(name: str, indicator: str) -> dict[str, Any]:
    return {
        "name": name,
        "indicator": indicator,
        "condition": {"all": [{"fact": "condition", "where": {"vs": "VS-BIPOLAR"}}]},
        "summary": f"{indicator}: {{condition.display}}",
        "detail": "Detail.",
        "evidence": "{condition.display}",
    }


@pytest.fixture()
def ruleset(tmp_path: Path) -> LoadedRuleSet:
    target = tmp_path / "rules"
    shutil.copytree(RULES / "valuesets", target / "valuesets")
    for name in ("policy.yaml", "override-reasons.yaml"):
        shutil.copy(RULES / name, target / name)
    (target / "contraindication").mkdir()
    rules = [
        rule("KAP-CI-101", [variant("low", "warning"), variant("high", "critical")]),
        rule("KAP-CI-102", [variant("only", "warning")], suppressed_by=["KAP-CI-101"]),
        rule("KAP-CI-103", [variant("only", "critical")]),
    ]
    for body in rules:
        (target / "contraindication" / f"{body['id']}.yaml").write_text(yaml.safe_dump(body))
    return load_ruleset(target)


def condition(ref: str, possible: bool = False) -> dict[str, Any]:
    return {
        "t": "condition",
        "vs": "VS-BIPOLAR",
        "display": f"Bipolar {ref}",
        "ref": f"Condition/{ref}",
        "possible": possible,
    }


def test_most_severe_variant_wins_and_lists_every_match(ruleset: LoadedRuleSet) -> None:
    matches = [
        Match("KAP-CI-101#low", {"condition": condition("a")}),
        Match("KAP-CI-101#high", {"condition": condition("a")}),
        Match("KAP-CI-101#high", {"condition": condition("b")}),
    ]
    cards, fired = build_cards(matches, ruleset, CTX)
    assert [c.indicator.value for c in cards] == ["critical"]
    assert cards[0].detail and "Bipolar a" in cards[0].detail and "Bipolar b" in cards[0].detail
    assert "Condition/" not in cards[0].detail  # resource ids: machine-readable only
    assert fired[0].rule_id == "KAP-CI-101" and fired[0].version == "1.2.3"
    assert fired[0].variant == "high"
    assert cards[0].extension == {
        "org.kapcds.rule": {
            "id": "KAP-CI-101",
            "version": "1.2.3",
            "family": "contraindication",
            "ruleset": ruleset.digest,
            "variant": "high",
        },
        "org.kapcds.evidence": [{"rule": "KAP-CI-101", "refs": ["Condition/a", "Condition/b"]}],
    }
    assert cards[0].overrideReasons and cards[0].overrideReasons[0].display


def test_suppressed_rule_is_not_shown(ruleset: LoadedRuleSet) -> None:
    both = [
        Match("KAP-CI-101#low", {"condition": condition("a")}),
        Match("KAP-CI-102#only", {"condition": condition("a")}),
    ]
    assert [f.rule_id for f in build_cards(both, ruleset, CTX)[1]] == ["KAP-CI-101"]
    alone = [Match("KAP-CI-102#only", {"condition": condition("a")})]
    assert [f.rule_id for f in build_cards(alone, ruleset, CTX)[1]] == ["KAP-CI-102"]


def test_only_possible_diagnoses_downgrade_one_level(ruleset: LoadedRuleSet) -> None:
    possible = [Match("KAP-CI-103#only", {"condition": condition("a", possible=True)})]
    cards, _ = build_cards(possible, ruleset, CTX)
    assert cards[0].indicator.value == "warning"
    assert cards[0].summary.startswith("Possible")
    mixed = possible + [Match("KAP-CI-103#only", {"condition": condition("b")})]
    assert build_cards(mixed, ruleset, CTX)[0][0].indicator.value == "critical"


def test_cards_sorted_by_severity_then_id_and_uuids_unique(ruleset: LoadedRuleSet) -> None:
    matches = [
        Match("KAP-CI-102#only", {"condition": condition("a")}),
        Match("KAP-CI-103#only", {"condition": condition("a")}),
    ]
    cards, _ = build_cards(matches, ruleset, CTX)
    assert [c.source.topic.code for c in cards if c.source.topic] == ["KAP-CI-103", "KAP-CI-102"]
    assert len({c.uuid for c in cards}) == 2
