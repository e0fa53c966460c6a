"""A real `kap-cds serve` process with a 50,000-resource prefetch in flight: /healthz still
answers, and a call past its deadline gets a 503 OperationOutcome (issue 14 item 5)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from live_server import LiveServer, live_server

REPO_ROOT = Path(__file__).resolve().parents[2]
ELIGIBLE = orjson.loads(
    (REPO_ROOT / "fhir_examples" / "requests" / "eligible-patient-ketamine-iv.json").read_bytes()
)
RESOURCES = 50_000
URL_PATH = "/cds-services/kap-order-sign"


def big_request() -> bytes:
    """The eligible patient's request plus 50,000 heart-rate observations (about 11 MB)."""
    request: dict[str, Any] = copy.deepcopy(ELIGIBLE)
    entries = request["prefetch"]["observations"]["entry"]
    for i in range(RESOURCES):
        entries.append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": f"hr-{i}",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": "Patient/pat-eligible"},
                    "effectiveDateTime": "2026-11-17T10:00:00+00:00",
                    "valueQuantity": {"value": 70, "unit": "/min"},
                }
            }
        )
    return orjson.dumps(request)


@pytest.fixture(scope="module")
def body() -> bytes:
    return big_request()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path, env={"KAP_CDS_MAX_BODY_BYTES": "40000000"}) as running:
        yield running


def _post(url: str, body: bytes) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    return httpx.post(url + URL_PATH, content=body, headers=headers, timeout=120)


def _in_progress(url: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith("kap_cds_calls_in_progress "):
            return float(line.split()[1])
    raise AssertionError("no kap_cds_calls_in_progress gauge")


def _healthz_while_in_progress(url: str, call: Future[httpx.Response]) -> int:
    """How many times /healthz answered 200 between two /metrics answers that both show the
    big call in progress, before the big call was answered."""
    proofs = 0
    while not call.done():
        if _in_progress(url) < 1:
            continue
        healthy = httpx.get(url + "/healthz", timeout=30).status_code == 200
        if healthy and _in_progress(url) >= 1 and not call.done():
            proofs += 1
        threading.Event().wait(0.05)
    return proofs


def test_healthz_answers_while_a_50k_resource_prefetch_is_evaluated(
    server: LiveServer, body: bytes
) -> None:
    with ThreadPoolExecutor(1) as background:
        call = background.submit(_post, server.url, body)
        proofs = _healthz_while_in_progress(server.url, call)
        response = call.result()
    assert proofs >= 1
    # Evaluated, or past the deadline on a loaded machine: an answer either way, never a hang.
    assert response.status_code in (200, 503), response.text[:500]
    if response.status_code == 503:
        assert response.headers["Retry-After"]
        assert response.json()["resourceType"] == "OperationOutcome"


def test_a_call_past_its_deadline_gets_503_and_the_server_carries_on(
    tmp_path: Path, body: bytes
) -> None:
    env = {"KAP_CDS_MAX_BODY_BYTES": "40000000", "KAP_CDS_REQUEST_TIMEOUT_SECONDS": "0.05"}
    with live_server(tmp_path, env=env) as running:
        response = _post(running.url, body)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "2"
        issue = response.json()["issue"][0]
        assert issue["details"]["coding"][0]["code"] == "CDS-1503"
        assert httpx.get(running.url + "/healthz", timeout=30).status_code == 200
