"""Shadow rules: evaluated and audited as "would have fired", never shown to the EHR."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from fastapi.testclient import TestClient
from replay_support import EXAMPLES, RulesFactory, put_in_shadow

from cds.app import create_app
from cds.audit.queries import rule_summary, shadow_summary
from cds.config import Settings
from cds.evaluator import RuleEvaluator
from cds.fhir.gather import gather_sync
from cds.hooks.models import CdsRequest
from cds.ruleset.cases import CASE_TIME
from cds.ruleset.loader import load_ruleset

HIGH_BP = EXAMPLES / "requests" / "uncontrolled-bp.json"  # BP 186/112: the hard stop fires


def _evaluate(rules_dir: Path, request_path: Path) -> tuple[set[str], set[str]]:
    evaluator = RuleEvaluator(load_ruleset(rules_dir))
    raw = json.loads(request_path.read_text(encoding="utf-8"))
    request = CdsRequest.model_validate(raw)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    evaluation = evaluator.evaluate(
        service_id="kap-order-sign",
        context=dict(request.context),
        data=gather_sync(request, settings),
        now=datetime.fromisoformat(CASE_TIME),  # the examples' planned dose time
    )
    shown = {f.rule_id for f in evaluation.fired}
    return shown, {f.rule_id for f in evaluation.shadow}


def test_a_shadow_rule_is_evaluated_but_its_card_is_not_shown(rules_copy: RulesFactory) -> None:
    live = rules_copy("live")
    shown, shadow = _evaluate(live, HIGH_BP)
    assert "KAP-CI-011" in shown and not shadow

    trial = rules_copy("trial")
    put_in_shadow(trial, "KAP-CI-011")
    shown, shadow = _evaluate(trial, HIGH_BP)
    assert "KAP-CI-011" not in shown
    assert shadow == {"KAP-CI-011"}


def test_a_shadow_rule_never_suppresses_a_live_card(rules_copy: RulesFactory) -> None:
    """KAP-CI-011 (hard stop) suppresses KAP-CI-010 (warning) when live; in shadow it must not,
    or trialling a rule would silently remove a card the EHR shows today."""
    trial = rules_copy("trial")
    put_in_shadow(trial, "KAP-CI-011")
    live = load_ruleset(trial)
    assert "KAP-CI-011" in live.rules["KAP-CI-010"].rule.suppressed_by
    shown, _ = _evaluate(trial, HIGH_BP)
    assert "KAP-CI-010" in shown


def test_shadow_firings_reach_the_audit_trail_not_the_ehr(
    rules_copy: RulesFactory, tmp_path: Path
) -> None:
    trial = rules_copy("trial")
    put_in_shadow(trial, "KAP-CI-011")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        rules_dir=trial,
        database_url=f"sqlite:///{tmp_path / 'audit.sqlite3'}",
        spool_dir=tmp_path / "spool",
    )
    app = create_app(settings)
    with TestClient(app) as client:
        body = client.post(
            "/cds-services/kap-order-sign",
            content=HIGH_BP.read_bytes(),
            headers={"Content-Type": "application/json"},
        ).json()
        discovery = client.get("/cds-services").json()
        store = app.state.runtime.audit
        assert store.flush(10)
        governance = client.get("/governance").text
        assert store.flush(10)
        topics = json.dumps(body)
        assert "KAP-CI-011" not in topics
        [counts] = shadow_summary(store)
        fired = {s.rule_id for s in rule_summary(store)}
    assert (counts.rule_id, counts.would_fire, dict(counts.by_service)) == (
        "KAP-CI-011",
        1,
        {"kap-order-sign": 1},
    )
    assert "KAP-CI-011" not in fired
    # Governance lists it with the shadow rules, with its would-fire count per service.
    shadow_part = governance.split("Shadow rules (evaluated, never shown to the EHR)")[1]
    assert '<a href="/governance/rules/KAP-CI-011">KAP-CI-011</a></td><td>1</td>' in shadow_part
    assert "kap-order-sign 1" in shadow_part
    assert "1 in shadow (evaluated, not shown)" in governance
    ruleset_info = discovery["services"][0]["extension"]["org.kapcds.ruleset"]
    assert ruleset_info["shadow"] == 1
