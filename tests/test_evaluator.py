"""The whole domain pipeline: results do not depend on the order resources arrive in."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.config import Settings
from cds.evaluator import RuleEvaluator, build_evaluator
from cds.fhir.gather import gather_sync
from cds.hooks.models import CdsRequest
from cds.ruleset.cases import LoadedCase, build_request, case_now, load_cases

EXAMPLES = Path(__file__).resolve().parent.parent / "fhir_examples"
CASES = [c for c in load_cases(EXAMPLES) if c.case.expect]
SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def evaluator() -> RuleEvaluator:
    return build_evaluator(SETTINGS)


def shuffled(request: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    for value in (request.get("prefetch") or {}).values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            rng.shuffle(value.get("entry") or [])
    return request


def fired(evaluator: RuleEvaluator, loaded: LoadedCase, request: dict[str, Any]) -> set[Any]:
    call = CdsRequest.model_validate(request)
    data = gather_sync(call, SETTINGS)
    evaluation = evaluator.evaluate(
        service_id=loaded.case.service,
        context=dict(call.context),
        data=data,
        now=case_now(loaded.case),
    )
    return {
        (c.source.topic.code if c.source.topic else "", c.indicator.value, c.summary)
        for c in evaluation.cards
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(index=st.integers(min_value=0), seed=st.integers(0, 2**32 - 1))
def test_resource_order_does_not_change_the_cards(
    evaluator: RuleEvaluator, index: int, seed: int
) -> None:
    loaded = CASES[index % len(CASES)]
    baseline = fired(evaluator, loaded, build_request(loaded.case, EXAMPLES))
    mixed = shuffled(build_request(loaded.case, EXAMPLES), random.Random(seed))
    assert fired(evaluator, loaded, mixed) == baseline


def test_not_a_kap_patient_view_gives_no_cards(evaluator: RuleEvaluator) -> None:
    request = build_request(
        load_cases(EXAMPLES)[0].case.model_copy(
            update={"service": "kap-patient-view", "order": None}
        ),
        EXAMPLES,
    )
    call = CdsRequest.model_validate(request)
    evaluation = evaluator.evaluate(
        service_id="kap-patient-view",
        context=dict(call.context),
        data=gather_sync(call, SETTINGS),
        now=case_now(load_cases(EXAMPLES)[0].case),
    )
    assert not evaluation.kap and evaluation.cards == []
