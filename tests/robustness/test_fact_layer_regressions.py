"""Crashes the mutation fuzzers once found: one wrong-typed FHIR field in an otherwise valid KAP
request made the fact layer raise (HTTP 500). Now a malformed hook resource is a 400 naming it,
and malformed patient data is set aside and named on the data card (cds/facts/sanitize.py).
Each case is the smallest mutation that reproduced its crash.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from fhir_strategies import BASES, SERVICE_OF_HOOK
from robust_support import response_problems

CASES: list[tuple[str, tuple[Any, ...], Any, str]] = [
    (
        "order-sign-eligible",
        ("prefetch", "conditions", "entry", 0, "resource", "code", "coding", 0, "code"),
        ["x"],
        "valuesets._norm_code: list has no .replace",
    ),
    (
        "order-sign-eligible",
        ("prefetch", "conditions", "entry", 0, "resource", "code", "coding", 0, "display"),
        ["x"],
        "context.matching_valuesets: join of a list",
    ),
    ("order-sign-eligible", ("prefetch", "patient", "birthDate"), 12345, "patient.py: len(float)"),
    (
        "order-sign-eligible",
        ("prefetch", "observations", "entry", 0, "resource", "status"),
        ["final"],
        "labs.py: unhashable list status",
    ),
    (
        "order-sign-eligible",
        ("prefetch", "medicationStatements", "entry", 0, "resource", "effectivePeriod"),
        ["x"],
        "clinical._medication_state: list.get",
    ),
    (
        "order-sign-eligible",
        ("context", "draftOrders", "entry", 0, "resource", "dosageInstruction"),
        {"x": 1},
        "plan.planned_time: dosageInstruction[0] of a dict",
    ),
    (
        "order-sign-eligible",
        ("context", "draftOrders", "entry", 0, "resource", "dosageInstruction", 0, "timing"),
        ["x"],
        "plan.planned_time: timing is a list",
    ),
    (
        "appointment-book",
        ("context", "appointments", "entry", 0, "resource", "serviceType"),
        7,
        "triage.is_kap_appointment: *serviceType of a number (fails before any data is read)",
    ),
    (
        "encounter-start",
        ("prefetch", "encounters", "entry", 0, "resource", "period"),
        ["x"],
        "plan._encounter_plan: period is a list",
    ),
    (
        "patient-view",
        ("prefetch", "encounters", "entry", 0, "resource", "type"),
        7,
        "quality.py: *type of a number",
    ),
]


def mutated(base: str, path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    request = copy.deepcopy(BASES[base])
    node = request
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return request


@pytest.mark.parametrize(
    ("base", "path", "value"),
    [
        pytest.param(
            b,
            p,
            v,
            id=f"{b}:{'.'.join(map(str, p[-3:]))}",
        )
        for b, p, v, why in CASES
    ],
)
def test_wrong_typed_field_is_not_a_500(
    client: TestClient, base: str, path: tuple[Any, ...], value: Any
) -> None:
    request = mutated(base, path, value)
    service_id = SERVICE_OF_HOOK[request["hook"]]
    response = client.post(
        f"/cds-services/{service_id}",
        content=orjson.dumps(request),
        headers={"Content-Type": "application/json"},
    )
    assert not response_problems(response.status_code, response.content), response.text[:300]
