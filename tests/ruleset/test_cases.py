"""Every rule fixture under fhir_examples/cases/ passes, in process (data gathering included)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.config import Settings
from cds.evaluator import RuleEvaluator, build_evaluator
from cds.ruleset.cases import LoadedCase, load_cases, run_case

EXAMPLES = Path(__file__).resolve().parents[2] / "fhir_examples"
CASES = load_cases(EXAMPLES)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def evaluator(settings: Settings) -> RuleEvaluator:
    return build_evaluator(settings)


@pytest.mark.parametrize("loaded", CASES, ids=[f"{c.rule_id}/{c.name}" for c in CASES])
def test_case(loaded: LoadedCase, evaluator: RuleEvaluator, settings: Settings) -> None:
    outcome = run_case(loaded, evaluator, settings, EXAMPLES)
    assert outcome.passed, f"{loaded.path.name}: {outcome.problems}; fired {outcome.fired}"


def test_every_active_rule_has_firing_and_quiet_cases(evaluator: RuleEvaluator) -> None:
    by_rule: dict[str, set[str]] = {}
    for case in CASES:
        by_rule.setdefault(case.rule_id, set()).add(case.name.split("-", 1)[0])
    missing = [
        rule.id
        for rule in evaluator.ruleset.active_rules
        if not {"fires", "quiet"} <= by_rule.get(rule.id, set())
    ]
    assert not missing, f"rules without both fires-* and quiet-* cases: {missing}"


def test_cases_name_known_rules(evaluator: RuleEvaluator) -> None:
    unknown = {c.rule_id for c in CASES} - set(evaluator.ruleset.rules)
    assert not unknown
    for case in CASES:
        named = set(case.case.expect) | set(case.case.absent)
        assert named <= set(evaluator.ruleset.rules), f"{case.path}: unknown rule ids"


@pytest.mark.parametrize("loaded", CASES, ids=[f"{c.rule_id}/{c.name}" for c in CASES])
def test_case_with_narrow_prefetch(
    loaded: LoadedCase, evaluator: RuleEvaluator, settings: Settings
) -> None:
    """The same result when the EHR sends only what discovery's narrow templates ask for."""
    outcome = run_case(loaded, evaluator, settings, EXAMPLES, narrow=evaluator.prefetch_templates)
    assert outcome.passed, f"{loaded.path.name}: {outcome.problems}; fired {outcome.fired}"
