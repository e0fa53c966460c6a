"""Condition facts are built before their resource is validated (no rule negates them): only
the Conditions a rule matched are validated, and an invalid one stops its rule and is named on
the data card exactly as if it had been validated first."""

from __future__ import annotations

import copy
from typing import Any
from unittest import mock

import orjson
import pytest
from test_sanitize import REQUEST, data_gap_keys, evaluate

from cds import evaluator as evaluator_module
from cds.evaluator import RuleEvaluator
from cds.facts import index as index_module
from cds.ruleset.loader import LoadedRuleSet

Json = dict[str, Any]
SNOMED = "http://snomed.info/sct"
SCHIZOPHRENIA = "58214004"  # VS-PSYCHOSIS: KAP-CI-005 fires on it
ESSENTIAL_HYPERTENSION = "59621000"  # VS-HTN: no rule fires on a plain, controlled diagnosis


@pytest.fixture(scope="module")
def evaluator(ruleset: LoadedRuleSet) -> RuleEvaluator:
    return RuleEvaluator(ruleset)


def condition(cid: str, code: str, **extra: Any) -> Json:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": "Patient/pt-eligible"},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        **extra,
    }


def request_with(*conditions: Json) -> Json:
    request: Json = copy.deepcopy(orjson.loads(REQUEST.read_bytes()))
    bundle = request["prefetch"]["conditions"]
    bundle["entry"] = [*bundle.get("entry", []), *({"resource": c} for c in conditions)]
    return request


def run(evaluator: RuleEvaluator, request: Json) -> tuple[Any, int]:
    """The evaluation and how many Conditions it validated."""
    with mock.patch.object(index_module, "validate_r4b", wraps=index_module.validate_r4b) as v:
        evaluation = evaluate(evaluator, request)
    validated = [c.args[0] for c in v.call_args_list]
    return evaluation, sum(1 for r in validated if r.get("resourceType") == "Condition")


def fired(evaluation: Any) -> set[str]:
    return {f.rule_id for f in evaluation.fired}


def test_diagnoses_no_rule_matches_are_never_validated(evaluator: RuleEvaluator) -> None:
    # Thirty copies, the last one invalid: no rule reads them, so none costs a validation and
    # the invalid one is not on the data card either.
    charted = [condition(f"htn-{i}", ESSENTIAL_HYPERTENSION) for i in range(30)]
    charted[-1]["note"] = "not a list of annotations"
    evaluation, validations = run(evaluator, request_with(*charted))
    assert validations == 0
    assert "KAP-DATA-001" not in fired(evaluation)


def test_the_matched_diagnosis_is_validated_and_its_rule_fires(evaluator: RuleEvaluator) -> None:
    evaluation, validations = run(evaluator, request_with(condition("ps", SCHIZOPHRENIA)))
    assert "KAP-CI-005" in fired(evaluation)
    assert validations == 1


def test_an_invalid_matched_diagnosis_stops_its_rule_and_is_named(
    evaluator: RuleEvaluator,
) -> None:
    invalid = condition("ps", SCHIZOPHRENIA, note="not a list of annotations")
    evaluation, _validations = run(evaluator, request_with(invalid))
    assert "KAP-CI-005" not in fired(evaluation)
    assert "Condition/ps" in data_gap_keys(evaluation)


def test_a_valid_copy_still_fires_when_the_matched_one_is_invalid(
    evaluator: RuleEvaluator,
) -> None:
    # The rule matched the invalid copy first; evaluated again without it, the valid one fires.
    invalid = condition("ps-1", SCHIZOPHRENIA, note="not a list of annotations")
    evaluation, _validations = run(
        evaluator, request_with(invalid, condition("ps-2", SCHIZOPHRENIA))
    )
    assert "KAP-CI-005" in fired(evaluation)
    assert "Condition/ps-1" in data_gap_keys(evaluation)
    refs = {f.get("ref") for r in evaluation.fired if r.rule_id == "KAP-CI-005" for f in r.facts}
    assert "Condition/ps-1" not in refs


def test_deferred_and_eager_validation_fire_the_same_rules(evaluator: RuleEvaluator) -> None:
    charted = [
        condition("ps-1", SCHIZOPHRENIA, note="not a list of annotations"),
        condition("ps-2", SCHIZOPHRENIA),
        *(condition(f"htn-{i}", ESSENTIAL_HYPERTENSION, note="x") for i in range(3)),
    ]
    deferred, validations = run(evaluator, request_with(*charted))
    with mock.patch.object(evaluator_module, "DEFERRABLE_FACTS", frozenset()):
        eager, eager_validations = run(evaluator, request_with(*charted))
    assert validations < eager_validations  # the hypertension copies cost nothing deferred
    assert fired(deferred) == fired(eager)
    assert data_gap_keys(deferred) == {"Condition/ps-1"}


def test_resources_without_an_id_are_each_validated_when_one_matches(
    evaluator: RuleEvaluator,
) -> None:
    # Both read as "Condition/?": the fact cannot say which one it came from.
    invalid = condition("x", SCHIZOPHRENIA, note="not a list of annotations")
    valid = condition("y", SCHIZOPHRENIA)
    del invalid["id"], valid["id"]
    evaluation, validations = run(evaluator, request_with(invalid, valid))
    assert validations >= 2
    assert "KAP-CI-005" in fired(evaluation)  # from the valid one
    assert "Condition/?" in data_gap_keys(evaluation)
