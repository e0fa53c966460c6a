"""Properties: whatever FHIR data a valid KAP request carries, the service answers a 200 with
well-formed cards or a clean 400/412/413 OperationOutcome; never a 500, never a hang.

Two layers: the domain (gather + evaluate, in process, many examples) and HTTP (the whole app).
The ``*_fuzz_long`` variants run under ``make fuzz`` (``-m slow -k fuzz``).
"""

from __future__ import annotations

import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir_strategies import BASES, SERVICE_OF_HOOK, mutated_requests
from hypothesis import HealthCheck, given, settings
from robust_support import (
    FUZZ_EXAMPLES,
    cards_problems,
    fuzz_examples,
    isolated_settings,
    response_problems,
)

from cds.errors import CdsError
from cds.evaluator import RuleEvaluator
from cds.fhir.gather import gather_sync
from cds.hooks.cards import CardsResponse
from cds.hooks.models import parse_call
from cds.ruleset.cases import Case, case_now

EXAMPLE_SECONDS = 5.0  # one example, generously bounded (a hang fails instead of blocking)
NOW = case_now(Case(description="now"))
# Data gathering never touches the audit store, so the directory is never written.
DOMAIN_SETTINGS = isolated_settings(Path(tempfile.gettempdir()))
PROPERTY_SETTINGS: dict[str, Any] = {  # spread into settings(), typed loosely
    "deadline": None,
    # The normal run is reproducible (the same examples every run); `make fuzz` explores.
    "derandomize": not FUZZ_EXAMPLES,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
}


def domain_outcome(evaluator: RuleEvaluator, service_id: str, request: dict[str, Any]) -> list[str]:
    """Run parse, gather and evaluate in process; a CdsError (a 4xx) is a clean answer."""
    try:
        call = parse_call(json.dumps(request), request["hook"])
        data = gather_sync(call.request, DOMAIN_SETTINGS)
    except CdsError as exc:
        assert exc.http_status in (400, 412, 413), f"{type(exc).__name__} -> {exc.http_status}"
        return []
    evaluation = evaluator.evaluate(service_id=service_id, context=call.context, data=data, now=NOW)
    return cards_problems(CardsResponse(cards=evaluation.cards).to_json())


def check_domain(evaluator: RuleEvaluator, service_and_request: tuple[str, dict[str, Any]]) -> None:
    service_id, request = service_and_request
    started = time.perf_counter()
    problems = domain_outcome(evaluator, service_id, request)
    elapsed = time.perf_counter() - started
    assert not problems, problems
    assert elapsed < EXAMPLE_SECONDS, f"{service_id} took {elapsed:.1f}s"


def test_every_base_request_is_valid_and_kap(
    client: TestClient, real_evaluator: RuleEvaluator
) -> None:
    """The fuzzers mutate from valid KAP requests: each is answered, and evaluated as KAP."""
    for name, request in BASES.items():
        service_id = SERVICE_OF_HOOK[request["hook"]]
        response = client.post(f"/cds-services/{service_id}", json=request)
        assert response.status_code == 200, f"{name}: {response.text}"
        assert not cards_problems(response.json()), name
        call = parse_call(json.dumps(request), request["hook"])
        data = gather_sync(call.request, DOMAIN_SETTINGS)
        evaluation = real_evaluator.evaluate(
            service_id=service_id, context=call.context, data=data, now=NOW
        )
        assert evaluation.kap, f"{name}: not recognised as a KAP request"


@settings(max_examples=fuzz_examples(60), **PROPERTY_SETTINGS)
@given(mutated_requests())
def test_domain_survives_mutated_fhir(
    real_evaluator: RuleEvaluator, service_and_request: tuple[str, dict[str, Any]]
) -> None:
    check_domain(real_evaluator, service_and_request)


@pytest.mark.slow
@settings(max_examples=fuzz_examples(1000), **PROPERTY_SETTINGS)
@given(mutated_requests(max_mutations=10))
def test_domain_fuzz_long(
    real_evaluator: RuleEvaluator, service_and_request: tuple[str, dict[str, Any]]
) -> None:
    check_domain(real_evaluator, service_and_request)


def post_bounded(client: TestClient, service_id: str, body: bytes) -> tuple[int, bytes, float]:
    """POST in a worker thread so that a hang fails the example after EXAMPLE_SECONDS."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(
            client.post,
            f"/cds-services/{service_id}",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        response = future.result(timeout=EXAMPLE_SECONDS)
    return response.status_code, response.content, time.perf_counter() - started


def check_http(client: TestClient, service_and_request: tuple[str, dict[str, Any]]) -> None:
    service_id, request = service_and_request
    status, content, elapsed = post_bounded(client, service_id, json.dumps(request).encode())
    problems = response_problems(status, content)
    assert not problems, f"{service_id}: {problems}"
    assert elapsed < EXAMPLE_SECONDS


@settings(max_examples=fuzz_examples(30), **PROPERTY_SETTINGS)
@given(mutated_requests())
def test_http_survives_mutated_fhir(
    client: TestClient, service_and_request: tuple[str, dict[str, Any]]
) -> None:
    check_http(client, service_and_request)


@pytest.mark.slow
@settings(max_examples=fuzz_examples(500), **PROPERTY_SETTINGS)
@given(mutated_requests(max_mutations=10))
def test_http_fuzz_long(
    client: TestClient, service_and_request: tuple[str, dict[str, Any]]
) -> None:
    check_http(client, service_and_request)
