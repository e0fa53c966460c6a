"""Faults of the EHR's FHIR server (a real loopback server in a thread): timeouts, slow answers,
401/404/500, invalid JSON, an endless ``next`` link, a huge response, a redirect to another host.

Every request ends in bounded time (generous bound: 3x the configured timeout) with a 412 when the
patient cannot be read, or a 200 whose KAP-DATA-001 card names the keys that could not be read;
and the service answers the next normal request.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from conftest import ClientFactory
from fastapi.testclient import TestClient
from fhir_strategies import BASES
from robust_support import (
    Reply,
    fhir_json,
    fhir_server,
    fired_rules,
    resources_route,
    response_problems,
    searchset,
)

TIMEOUT = 0.5
BOUND = 3 * TIMEOUT + 1.0  # generous: 3x the timeout, plus the in-process evaluation
LIMITS = {
    "allow_insecure_fhir_server": True,
    "fhir_timeout_seconds": TIMEOUT,
    "fhir_max_pages": 3,
    "fhir_max_response_bytes": 200_000,
}
BASE = BASES["order-sign-eligible"]
PATIENT = BASE["prefetch"]["patient"]
PATIENT_ID = PATIENT["id"]
DATA_RULE = "KAP-DATA-001"


def _huge_stream() -> Iterator[bytes]:
    yield b'{"resourceType":"Bundle","type":"searchset","entry":['
    for _ in range(400):  # 400 x 1 KB, twice the cap
        yield b'{"resource":{"resourceType":"Observation","id":"' + b"x" * 1000 + b'"}},'
    yield b"{}]}"


def _endless(path: str, query: dict[str, list[str]]) -> Reply:
    page = int(query.get("_page", ["0"])[0])
    resource_type = path.partition("/")[0]
    next_url = f"{resource_type}?patient={PATIENT_ID}&_page={page + 1}"
    return fhir_json(searchset([], next_url))


Fault = Callable[[str, dict[str, list[str]]], Reply]
FAULTS: dict[str, Fault] = {
    "timeout": lambda p, q: Reply(delay=30.0),
    "401": lambda p, q: fhir_json({"resourceType": "OperationOutcome", "issue": []}, 401),
    "404": lambda p, q: Reply(404, b"not here"),
    "500": lambda p, q: Reply(500, b"<html>Internal Server Error</html>"),
    "invalid-json": lambda p, q: Reply(
        200, b'{"resourceType": "Bundle", "entry": [', {"Content-Type": "application/fhir+json"}
    ),
    "not-a-resource": lambda p, q: Reply(200, b"[1, 2, 3]"),
    "endless-next": _endless,
    "huge-streamed": lambda p, q: Reply(200, stream=_huge_stream),
    "huge-declared": lambda p, q: Reply(200, b"{" + b" " * 300_000 + b"}"),
    "redirect": lambda p, q: Reply(302, headers={"Location": "http://198.51.100.7/fhir/" + p}),
}


def fallback_request(url: str, keep_patient: bool) -> dict[str, Any]:
    """The eligible adult's order-sign call with prefetch left to the FHIR server."""
    request = copy.deepcopy(BASE)
    request["prefetch"] = {"patient": PATIENT} if keep_patient else {}
    request["fhirServer"] = url
    request["fhirAuthorization"] = {
        "access_token": "fault-token",
        "token_type": "Bearer",
        "expires_in": 60,
        "scope": "patient/*.read",
        "subject": "kap-cds",
    }
    return request


def post(client: TestClient, request: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
    started = time.perf_counter()
    response = client.post(
        "/cds-services/kap-order-sign",
        content=orjson.dumps(request),
        headers={"Content-Type": "application/json"},
    )
    elapsed = time.perf_counter() - started
    problems = response_problems(response.status_code, response.content)
    assert not problems, problems
    return response.status_code, response.json(), elapsed


def data_card_detail(body: dict[str, Any]) -> str:
    """The text of the card that names the data gap: its own, or the readiness checklist that
    lists it among the preparation gaps."""
    cards = [c for c in body["cards"] if DATA_RULE in fired_rules({"cards": [c]})]
    assert cards, f"no {DATA_RULE} card; fired: {sorted(fired_rules(body))}"
    return " ".join(str(c.get("detail", "")) + c["summary"] for c in cards)


@pytest.fixture
def limited_client(make_client: ClientFactory) -> Iterator[TestClient]:
    with make_client(**LIMITS) as client:
        yield client


def assert_still_healthy(client: TestClient) -> None:
    status, body, _ = post(client, BASE)
    assert status == 200 and body["cards"], "a normal request after the fault failed"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_on_every_key_gives_412(limited_client: TestClient, fault: str) -> None:
    with fhir_server(FAULTS[fault]) as server:
        status, body, elapsed = post(limited_client, fallback_request(server.url, False))
    assert elapsed < BOUND, f"{fault}: took {elapsed:.2f}s (bound {BOUND}s)"
    assert status == 412, f"{fault}: the patient could not be read, yet HTTP {status}: {body}"
    assert "prefetch.patient" in body["issue"][0].get("expression", []), body
    assert_still_healthy(limited_client)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_on_optional_keys_gives_a_data_card(limited_client: TestClient, fault: str) -> None:
    with fhir_server(FAULTS[fault]) as server:
        status, body, elapsed = post(limited_client, fallback_request(server.url, True))
    assert elapsed < BOUND, f"{fault}: took {elapsed:.2f}s (bound {BOUND}s)"
    assert status == 200, f"{fault}: HTTP {status}: {body}"
    detail = data_card_detail(body)
    # Named as the chart calls them (prefetch keys conditions, observations, medicationRequests).
    for record in ("Diagnoses (problem list)", "Observations (vital signs", "Medication orders"):
        assert record in detail, f"{fault}: the data card does not name {record}: {detail[:300]}"
    assert_still_healthy(limited_client)


def test_slow_but_in_time_server_gives_full_data(limited_client: TestClient) -> None:
    resources = [
        e["resource"]
        for key, value in BASE["prefetch"].items()
        if key != "patient" and isinstance(value, dict)
        for e in value.get("entry", [])
    ]
    fast = resources_route([PATIENT, *resources], PATIENT_ID, max_pages=3)

    def slow(path: str, query: dict[str, list[str]]) -> Reply:
        reply = fast(path, query)
        reply.delay = TIMEOUT / 3
        return reply

    with fhir_server(slow) as server:
        status, body, elapsed = post(limited_client, fallback_request(server.url, False))
    assert status == 200, body
    assert DATA_RULE not in fired_rules(body), "a slow but timely server lost data"
    assert elapsed < BOUND


def test_search_404_is_reported(limited_client: TestClient) -> None:
    """A search (not a read) answering 404 is a failed read, not "no data"."""
    with fhir_server(FAULTS["404"]) as server:
        _, body, _ = post(limited_client, fallback_request(server.url, True))
    assert "Diagnoses (problem list)" in data_card_detail(body)
