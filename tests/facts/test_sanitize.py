"""Malformed patient data that trips a fact builder: what the builder was reading is set aside
and named on the data card, without validating the whole chart; only when that does not clear
it is every resource validated."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest

from cds.config import Settings
from cds.evaluator import RuleEvaluator
from cds.facts import sanitize
from cds.fhir.gather import gather_sync
from cds.hooks.models import parse_call
from cds.pipeline_types import PatientData
from cds.ruleset.loader import LoadedRuleSet

REQUEST = (
    Path(__file__).resolve().parents[2] / "fhir_examples/requests/eligible-patient-ketamine-iv.json"
)
NOW = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
FILLER = 300
Json = dict[str, Any]


def heart_rate(index: int) -> Json:
    return {
        "resourceType": "Observation",
        "id": f"hr-{index}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/pt-eligible"},
        "effectiveDateTime": f"2026-0{1 + index % 9}-1{index % 10}T10:00:00Z",
        "valueQuantity": {"value": 60 + index % 30, "unit": "/min"},
    }


def request_with_bad_weight() -> tuple[Json, str]:
    request: Json = orjson.loads(REQUEST.read_bytes())
    entries = request["prefetch"]["observations"]["entry"]
    weight = next(
        e["resource"] for e in entries if e["resource"]["code"]["coding"][0]["code"] == "29463-7"
    )
    weight["status"] = {"x": 1}  # an object where FHIR has a code: trips the status filter
    entries += [{"resource": heart_rate(i)} for i in range(FILLER)]
    return request, f"Observation/{weight['id']}"


def evaluate(evaluator: RuleEvaluator, request: Json) -> Any:
    call = parse_call(orjson.dumps(request), request["hook"])
    data = gather_sync(call.request, Settings(_env_file=None))
    return evaluator.evaluate(service_id="kap-order-sign", context=call.context, data=data, now=NOW)


@pytest.fixture(scope="module")
def evaluator(ruleset: LoadedRuleSet) -> RuleEvaluator:
    return RuleEvaluator(ruleset)


def data_gap_keys(evaluation: Any) -> set[str]:
    return {
        fact.get("key")
        for fired in evaluation.fired
        for fact in fired.facts
        if fact.get("t") == "data_gap"
    }


def test_the_resource_that_tripped_a_builder_is_named_without_validating_the_chart(
    evaluator: RuleEvaluator,
) -> None:
    request, bad_ref = request_with_bad_weight()
    with mock.patch.object(sanitize, "validate_r4b", wraps=sanitize.validate_r4b) as validated:
        evaluation = evaluate(evaluator, request)
    assert bad_ref in data_gap_keys(evaluation)
    assert validated.call_count < 20  # not the 300+ resources of the chart


def test_everything_is_validated_when_the_frames_do_not_tell() -> None:
    good = heart_rate(1)
    bad = copy.deepcopy(heart_rate(2))
    bad["status"] = ["final"]
    data = PatientData({"Observation": [good, bad]})
    calls: list[PatientData] = []

    def run(clean: PatientData, removed: list[tuple[str, str]]) -> str:
        calls.append(clean)
        return ",".join(r for r, _problem in removed)

    try:
        raise TypeError("raised outside the fact builders: no frame holds a resource")
    except TypeError as exc:
        removed = sanitize.retry_without_malformed(run, data, exc)
    assert removed == "Observation/hr-2"
    assert calls[0].of_type("Observation") == [good]


def test_a_second_malformed_resource_is_found_in_the_next_round(evaluator: RuleEvaluator) -> None:
    request, bad_ref = request_with_bad_weight()
    entries = request["prefetch"]["observations"]["entry"]
    bp = next(
        e["resource"] for e in entries if e["resource"]["code"]["coding"][0]["code"] == "85354-9"
    )
    bp["status"] = {"x": 1}
    evaluation = evaluate(evaluator, request)
    assert {bad_ref, f"Observation/{bp['id']}"} <= data_gap_keys(evaluation)
