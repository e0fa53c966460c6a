"""POST /cds-services/{id}: the whole call through the app, with a fake evaluator and audit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from api_fakes import FIXED_NOW, FakeAudit, FakeEvaluator
from fastapi.testclient import TestClient

from cds.pipeline_types import KeyOutcome

URL = "/cds-services/kap-order-sign"
TOKEN = "tok-9f8e7d6c5b4a-never-log-me"


def issue(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert len(body["issue"]) == 1
    found: dict[str, Any] = body["issue"][0]
    return found


def error_code(response: httpx.Response) -> str:
    code: str = issue(response)["details"]["coding"][0]["code"]
    return code


def test_order_sign_returns_the_evaluators_cards(
    client: TestClient,
    order_sign_request: dict[str, Any],
    evaluator: FakeEvaluator,
    audit: FakeAudit,
) -> None:
    response = client.post(URL, json=order_sign_request)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "cards": [
            {
                "uuid": "5b0b6a76-3d3b-4b83-9a2e-1f4c2f0c9d11",
                "summary": "Fake rule fired",
                "indicator": "info",
                "source": {"label": "KAP Safety Rules"},
            }
        ]
    }
    (call,) = evaluator.calls
    assert call["service_id"] == "kap-order-sign"
    assert call["now"] == FIXED_NOW
    assert call["context"]["patientId"] == "kap-example-patient"
    data = call["data"]
    assert [r["id"] for r in data.of_type("MedicationRequest")] == ["kap-example-order"]
    assert len(data.of_type("Observation")) == 2
    assert set(data.outcomes.values()) == {KeyOutcome.prefetched}
    (record,) = audit.evaluations
    assert record["hook_instance"] == order_sign_request["hookInstance"]
    assert record["patient_id"] == "kap-example-patient"
    assert record["service_id"] == "kap-order-sign" and record["hook"] == "order-sign"
    assert record["latency_ms"] > 0


def test_non_kap_order_answers_no_cards_without_gathering_or_evaluating(
    client: TestClient,
    order_sign_request: dict[str, Any],
    evaluator: FakeEvaluator,
    audit: FakeAudit,
    fhir_server: Callable[..., list[httpx.Request]],
) -> None:
    fhir_requests = fhir_server(lambda r: httpx.Response(500))
    order = order_sign_request["context"]["draftOrders"]["entry"][0]["resource"]
    order["medicationCodeableConcept"] = {
        "coding": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "723",
                "display": "amoxicillin",
            }
        ],
        "text": "amoxicillin",
    }  # noqa: E501
    order_sign_request["prefetch"] = {}  # nothing prefetched: gathering would have to fetch
    order_sign_request["fhirServer"] = "https://ehr.example.org/fhir"

    response = client.post(URL, json=order_sign_request)

    assert response.status_code == 200
    assert response.json() == {"cards": []}
    assert evaluator.calls == []
    assert fhir_requests == []
    assert audit.evaluations == []


def test_null_optional_prefetch_is_empty_not_missing(
    client: TestClient, order_sign_request: dict[str, Any], evaluator: FakeEvaluator
) -> None:
    order_sign_request["prefetch"]["conditions"] = None

    response = client.post(URL, json=order_sign_request)

    assert response.status_code == 200
    assert evaluator.calls[0]["data"].outcomes["conditions"] is KeyOutcome.empty


def test_operation_outcome_for_optional_key_is_failed_but_answered(
    client: TestClient, order_sign_request: dict[str, Any], evaluator: FakeEvaluator
) -> None:
    order_sign_request["prefetch"]["allergies"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }

    response = client.post(URL, json=order_sign_request)

    assert response.status_code == 200
    data = evaluator.calls[0]["data"]
    assert data.outcomes["allergies"] is KeyOutcome.failed
    assert data.unavailable_keys == ("allergies",)


def test_operation_outcome_for_patient_is_412_naming_the_key(
    client: TestClient, order_sign_request: dict[str, Any], evaluator: FakeEvaluator
) -> None:
    order_sign_request["prefetch"]["patient"] = {"resourceType": "OperationOutcome", "issue": []}

    response = client.post(URL, json=order_sign_request)

    assert response.status_code == 412
    assert error_code(response) == "CDS-1412"
    assert issue(response)["expression"] == ["prefetch.patient"]
    assert "OperationOutcome" in issue(response)["details"]["text"]
    assert evaluator.calls == []


def test_missing_patient_without_fhir_server_is_412(
    client: TestClient, order_sign_request: dict[str, Any]
) -> None:
    del order_sign_request["prefetch"]["patient"]

    response = client.post(URL, json=order_sign_request)

    assert response.status_code == 412
    assert issue(response)["expression"] == ["prefetch.patient"]
    assert "no fhirServer" in issue(response)["details"]["text"]


def test_missing_keys_are_fetched_from_fhir_server_with_the_bearer_token(
    client: TestClient,
    order_sign_request: dict[str, Any],
    evaluator: FakeEvaluator,
    fhir_server: Callable[..., list[httpx.Request]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    def ehr(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Patient/kap-example-patient"):
            return httpx.Response(
                200, json={"resourceType": "Patient", "id": "kap-example-patient"}
            )
        if request.url.path.endswith("/Condition"):
            return httpx.Response(503)  # the optional key fails: answered, marked failed
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset"})

    seen = fhir_server(ehr)
    order_sign_request["prefetch"] = {}
    order_sign_request["fhirServer"] = "https://ehr.example.org/fhir"
    order_sign_request["fhirAuthorization"] = {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "kap-cds",
    }

    response = client.post(URL, json=order_sign_request)

    assert response.status_code == 200, response.text
    assert len(seen) == 11  # every template of the service
    assert {r.headers["authorization"] for r in seen} == {f"Bearer {TOKEN}"}
    outcomes = evaluator.calls[0]["data"].outcomes
    assert outcomes["patient"] is KeyOutcome.fetched
    assert outcomes["conditions"] is KeyOutcome.failed
    assert outcomes["observations"] is KeyOutcome.fetched
    assert TOKEN not in caplog.text
    assert "prefetch key conditions could not be read" in caplog.text


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post(
        URL, content=b'{"hook": "order-sign",', headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert error_code(response) == "CDS-1400"
    assert issue(response)["details"]["text"].startswith("request body is not valid JSON")
    assert issue(response)["expression"] == ["$"]


def test_json_that_is_not_an_object_is_400(client: TestClient) -> None:
    response = client.post(URL, json=["order-sign"])

    assert response.status_code == 400
    assert issue(response)["details"]["text"] == "request body must be a JSON object"


def test_invalid_context_names_the_field_without_echoing_values(
    client: TestClient, order_sign_request: dict[str, Any]
) -> None:
    del order_sign_request["context"]["userId"]
    order_sign_request["context"]["patientId"] = "Jane Doe 1970-01-01"

    response = client.post(URL, json=order_sign_request)

    assert response.status_code == 400
    assert issue(response)["expression"] == ["context.userId", "context.patientId"]
    detail = issue(response)["details"]["text"]
    assert "context.userId: Field required" in detail
    assert "context.patientId: String should match pattern" in detail
    assert "Jane Doe" not in response.text


def test_hook_that_does_not_match_the_service_is_400(
    client: TestClient, order_sign_request: dict[str, Any]
) -> None:
    order_sign_request["hook"] = "patient-view"

    response = client.post(URL, json=order_sign_request)

    assert response.status_code == 400
    assert issue(response)["expression"] == ["hook"]
    assert "'patient-view' does not match this service" in issue(response)["details"]["text"]


def test_unknown_service_is_404(client: TestClient, order_sign_request: dict[str, Any]) -> None:
    response = client.post("/cds-services/kap-nonexistent", json=order_sign_request)

    assert response.status_code == 404
    assert error_code(response) == "CDS-1404"
    assert issue(response)["details"]["text"] == "no CDS service with id 'kap-nonexistent'"


def test_unexpected_error_is_500_with_an_error_id_only(
    client: TestClient,
    order_sign_request: dict[str, Any],
    evaluator: FakeEvaluator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    evaluator.error = KeyError("kap-example-patient")

    response = client.post(URL, json=order_sign_request)

    assert response.status_code == 500
    text = issue(response)["details"]["text"]
    assert text.startswith("Internal error; quote error id ")
    error_id = text.rsplit(" ", 1)[-1]
    assert "Traceback" not in response.text and "kap-example-patient" not in response.text
    # The log says where it failed (type and frames), never what the exception said.
    assert error_id in caplog.text and "KeyError at api_fakes.py" in caplog.text
    assert "kap-example-patient" not in caplog.text


def test_unknown_path_and_wrong_method_are_operation_outcomes(client: TestClient) -> None:
    not_found = client.get("/nowhere")
    wrong_method = client.get(URL)

    assert not_found.status_code == 404 and error_code(not_found) == "CDS-1404"
    assert wrong_method.status_code == 405 and error_code(wrong_method) == "CDS-1405"
    assert wrong_method.headers["allow"] == "POST"
