"""GET /cds-services, /healthz, /readyz, /metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from api_fakes import RULESET, FakeAudit
from fastapi.testclient import TestClient

SERVICES = {
    "kap-order-select": "order-select",
    "kap-order-sign": "order-sign",
    "kap-appointment-book": "appointment-book",
    "kap-encounter-start": "encounter-start",
    "kap-encounter-discharge": "encounter-discharge",
    "kap-patient-view": "patient-view",
}


def test_discovery_lists_exactly_the_six_services(client: TestClient) -> None:
    response = client.get("/cds-services")

    assert response.status_code == 200
    services: list[dict[str, Any]] = response.json()["services"]
    assert {s["id"]: s["hook"] for s in services} == SERVICES
    for entry in services:
        assert entry["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        assert entry["prefetch"]["conditions"] == "Condition?patient={{context.patientId}}"
        assert entry["description"] and entry["title"]
        assert entry["extension"] == {"org.kapcds.ruleset": RULESET}
        has_encounter = entry["hook"].startswith("encounter-")
        assert ("encounter" in entry["prefetch"]) is has_encounter


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_rules_audit_and_open_mode(client: TestClient, audit: FakeAudit) -> None:
    audit.is_healthy = False

    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["rules"] == RULESET
    assert body["auth"] == "open"
    assert body["warning"].startswith("running OPEN: no JWT authentication")
    assert body["audit"].startswith("degraded")


def test_readyz_is_503_without_rules(client: TestClient, evaluator: Any) -> None:
    evaluator.ruleset_info = {"digest": "", "version": "0", "rules": 0}

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["issue"][0]["details"]["text"] == "no rules loaded"


def test_metrics_count_calls_per_service_without_patient_data(
    client: TestClient, order_sign_request: dict[str, Any]
) -> None:
    client.post("/cds-services/kap-order-sign", json=order_sign_request)
    client.post(
        "/cds-services/kap-order-sign",
        content=b"{",
        headers={"Content-Type": "application/json"},
    )

    text = client.get("/metrics").text

    counter = "kap_cds_service_requests_total"
    ok = '{outcome="evaluated",service="kap-order-sign",status="200"} 1.0'
    bad = '{outcome="error",service="kap-order-sign",status="400"} 1.0'
    assert counter + ok in text
    assert counter + bad in text
    assert 'kap_cds_service_latency_seconds_count{service="kap-order-sign"} 2.0' in text
    assert "kap-example-patient" not in text


def test_openapi_documents_the_request_models(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    assert "CdsRequest" in schema["components"]["schemas"]
    assert "FhirAuthorization" in schema["components"]["schemas"]
    body = schema["paths"]["/cds-services/{service_id}"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CdsRequest"
    }
    assert client.get("/docs").status_code == 200


def test_readyz_says_tryout_mode(client: TestClient) -> None:
    client.app.state.runtime.settings.open_tryout = True  # type: ignore[attr-defined]

    body = client.get("/readyz").json()

    assert body["auth"] == "open"
    assert body["tryout"].startswith("TRY-OUT MODE (KAP_CDS_OPEN_TRYOUT=true)")


def test_discovery_publishes_narrow_templates_unless_broad_is_set(
    client: TestClient, evaluator: Any
) -> None:
    narrow = "Consent?patient={{context.patientId}}&status=active"
    evaluator.prefetch_templates = {"consents": narrow}
    services = client.get("/cds-services").json()["services"]
    assert {s["prefetch"]["consents"] for s in services} == {narrow}
    assert services[0]["prefetch"]["patient"] == "Patient/{{context.patientId}}"

    client.app.state.runtime.settings.prefetch_templates = "broad"  # type: ignore[attr-defined]
    services = client.get("/cds-services").json()["services"]
    assert {s["prefetch"]["consents"] for s in services} == {
        "Consent?patient={{context.patientId}}"
    }
