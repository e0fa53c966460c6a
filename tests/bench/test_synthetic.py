"""The benchmark's synthetic data is valid FHIR R4 and shaped as an EHR would send it, and its
load generator works end to end against the floor app (a cheap server: no rules to load).

The full ``bench/run.py --quick`` starts kap-cds itself (rule loading) and takes ~15-25 s on this
machine, above the 20 s a test may cost here, so it is left to ``make bench``.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `bench` is a top-level folder, not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from bench import synthetic  # noqa: E402
from bench.loadgen import Body, percentile  # noqa: E402
from cds.facts.fhir import validate_r4b  # noqa: E402
from cds.hooks.models import parse_call  # noqa: E402

SAMPLE = 400


@pytest.fixture(scope="module")
def resources() -> list[dict[str, Any]]:
    return synthetic.patient_resources(SAMPLE, seed=7)


def test_exact_count_and_a_synthea_like_mix(resources: list[dict[str, Any]]) -> None:
    kinds = Counter(r["resourceType"] for r in resources)
    assert len(resources) == SAMPLE
    assert kinds["Patient"] == 1
    assert kinds["Observation"] > SAMPLE // 3  # observations dominate, as in Synthea
    for kind in (
        "Condition",
        "MedicationRequest",
        "MedicationStatement",
        "Encounter",
        "Procedure",
        "AllergyIntolerance",
        "MedicationAdministration",
    ):
        assert kinds[kind] > 0, kind
    assert len({(r["resourceType"], r["id"]) for r in resources}) == SAMPLE


def test_every_resource_is_valid_fhir_r4(resources: list[dict[str, Any]]) -> None:
    problems = {f"{r['resourceType']}/{r['id']}": validate_r4b(r) for r in resources}
    assert {ref: p for ref, p in problems.items() if p} == {}
    assert validate_r4b(synthetic.ketamine_order()) is None
    assert validate_r4b(synthetic.amoxicillin_order()) is None


def test_kap_resources_are_present(resources: list[dict[str, Any]]) -> None:
    codes = {
        c["code"]
        for r in resources
        if r["resourceType"] == "Observation"
        for c in r["code"]["coding"]
    }
    assert {"85354-9", "29463-7", "2106-3"} <= codes  # BP panel, weight, pregnancy test
    ketamine = [
        r
        for r in resources
        if r["resourceType"] == "MedicationAdministration"
        and r["medicationCodeableConcept"]["coding"][0]["code"] == "6130"
    ]
    assert len(ketamine) == len(synthetic.KETAMINE_SESSIONS_DAYS_AGO)


def test_deterministic_per_seed() -> None:
    assert synthetic.patient_resources(60, seed=3) == synthetic.patient_resources(60, seed=3)
    assert synthetic.patient_resources(60, seed=3) != synthetic.patient_resources(60, seed=4)


def test_request_is_a_valid_order_sign_call_with_searchset_keys() -> None:
    request = synthetic.kap_request(200)
    call = parse_call(orjson.dumps(request), "order-sign")
    prefetch = call.request.prefetch or {}
    assert synthetic.resource_count(request) == 200
    patient = prefetch["patient"]
    assert patient is not None and patient["resourceType"] == "Patient"
    bundles = [v for k, v in prefetch.items() if k != "patient"]
    assert bundles and all(b and b["type"] == "searchset" for b in bundles)
    observations = prefetch["observations"]
    assert observations is not None
    assert {e["resource"]["resourceType"] for e in observations["entry"]} == {"Observation"}


def test_fast_path_request_is_amoxicillin() -> None:
    request = synthetic.fast_path_request()
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    assert order["medicationCodeableConcept"]["coding"][0]["code"] == "308182"
    assert "prefetch" not in request


def test_body_gets_a_fresh_hook_instance_each_time() -> None:
    body = Body(synthetic.fast_path_request())
    first, second = orjson.loads(body.next()), orjson.loads(body.next())
    assert first["hookInstance"] != second["hookInstance"]
    assert first["context"] == second["context"]


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0


def test_load_generator_against_the_floor(tmp_path: Path) -> None:
    from bench.scenarios import Phase, Scenario, run_scenarios
    from bench.servers import start_server

    server = start_server("floor", 1, tmp_path, timeout=30)
    try:
        scenario = Scenario(
            "kap-50",
            synthetic.kap_request(50),
            50,
            Phase(3, 2, 5.0),
            Phase(10, 1, 5.0),
            Phase(10, 2, 5.0),
        )
        result = run_scenarios(server, [scenario])["kap-50"]
        memory = server.memory_mb()
    finally:
        server.stop()
    assert result["latency"]["requests"] == 10 and result["latency"]["errors"] == 0
    assert result["throughput"]["rps"] > 0
    assert server.startup_s > 0
    assert memory and all(m["peak_rss_mb"] for m in memory.values())


def test_cold_requests_are_new_patients_with_their_own_ids_and_values() -> None:
    first, second = synthetic.cold_kap_request(60, 0), synthetic.cold_kap_request(60, 1)
    assert first == synthetic.cold_kap_request(60, 0)  # deterministic per index
    assert first["context"]["patientId"] != second["context"]["patientId"]
    ids = [
        {
            e["resource"]["id"]
            for b in r["prefetch"].values()
            if b and "entry" in b
            for e in b["entry"]
        }
        for r in (first, second)
    ]
    assert ids[0] and not ids[0] & ids[1]  # no resource id in common

    def weight(request: dict[str, Any]) -> float:
        return next(
            e["resource"]["valueQuantity"]["value"]
            for e in request["prefetch"]["observations"]["entry"]
            if e["resource"]["code"]["coding"][0]["code"] == "29463-7"
        )

    values = {weight(synthetic.cold_kap_request(60, i)) for i in range(6)}
    assert len(values) > 1  # values of each patient's own, not one weight for all


def test_body_pool_hands_out_each_body_once_then_counts_reuse() -> None:
    from bench.loadgen import BodyPool

    pool = BodyPool([synthetic.cold_kap_request(20, i) for i in range(3)])
    patients = [orjson.loads(pool.next())["context"]["patientId"] for _ in range(3)]
    assert len(set(patients)) == 3 and pool.reused == 0
    pool.next()
    assert pool.reused == 1
