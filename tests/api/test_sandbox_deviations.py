"""What the CDS Hooks sandbox sends, with the real evaluator: an http ``fhirServer`` and a draft
order whose ``category`` is one object. The prefetch is evaluated as sent; the server is never
contacted; deviations that stop a check are named in plain words."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cds.app import create_app
from cds.config import Settings
from cds.hooks.cards import listed_rules

REQUESTS = Path(__file__).resolve().parents[2] / "fhir_examples" / "requests"
HTTP_SERVER = "http://127.0.0.1:9/fhir"  # never contacted: nothing listens on the discard port
CATEGORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
            "code": "outpatient",
        }
    ]
}
# Words a clinician must never see on a card: validator codes and FHIR plumbing.
JARGON = re.compile(r"list_type|_type\b|_parsing|prefetch|fhirServer|OperationOutcome|\w+/\w+-\d")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    state = tmp_path_factory.mktemp("sandbox-deviations")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{state / 'audit.sqlite3'}",
        spool_dir=state / "spool",
    )
    return create_app(settings, clock=lambda: datetime(2026, 11, 20, 9, tzinfo=UTC))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def contacted(app: FastAPI, client: TestClient) -> list[httpx.Request]:
    """Requests the service sends to any FHIR server (there must be none)."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500)

    app.state.runtime.http_client = httpx.AsyncClient(transport=httpx.MockTransport(record))
    return seen


def example(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((REQUESTS / f"{name}.json").read_text(encoding="utf-8"))
    return copy.deepcopy(body)


def with_http_server(body: dict[str, Any]) -> dict[str, Any]:
    body["fhirServer"] = HTTP_SERVER
    body["fhirAuthorization"] = {
        "access_token": "secret-token-value",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "kap-cds",
    }
    return body


def cards(client: TestClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(f"/cds-services/kap-{body['hook']}", json=body)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["cards"]
    return found


def rule_of(card: dict[str, Any]) -> str:
    return str(card["source"]["topic"]["code"])


def cards_by_rule(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """rule id -> the card that shows it (the readiness checklist card for its lines)."""
    return {rule_id: card for card in found for rule_id, _ in listed_rules(card)}


def line_indicator(card: dict[str, Any], rule_id: str) -> str:
    return dict(listed_rules(card))[rule_id]


def rule_text(card: dict[str, Any], rule_id: str) -> str:
    """What the card says for one rule: on the readiness card, that rule's numbered line."""
    rules = [r for r, _ in listed_rules(card)]
    if len(rules) == 1:
        return f"{card['summary']}\n{card['detail']}"
    lines = re.split(r"\n\n(?=\d+\. \*\*)", card["detail"])[1:]
    return lines[rules.index(rule_id)]


def test_bp_186_112_prefetched_with_an_http_fhir_server_is_the_hard_stop(
    client: TestClient, contacted: list[httpx.Request]
) -> None:
    found = cards(client, with_http_server(example("uncontrolled-bp")))
    assert {rule_of(c): c["indicator"] for c in found} == {
        "KAP-CI-011": "critical",
        "KAP-FAST-001": "info",
    }
    assert contacted == []


def test_keys_left_out_with_an_http_fhir_server_are_named_not_fetched(
    client: TestClient, contacted: list[httpx.Request]
) -> None:
    body = with_http_server(example("uncontrolled-bp"))
    del body["prefetch"]["observations"], body["prefetch"]["consents"]
    found = cards(client, body)
    by_rule = cards_by_rule(found)
    assert contacted == []  # the token never travels over plain http
    assert "KAP-CI-011" not in by_rule  # the BP was not sent, so it cannot fire...
    data_card = by_rule["KAP-DATA-001"]  # ...and the data card (a readiness line) says so
    assert line_indicator(data_card, "KAP-DATA-001") == "warning"
    detail = rule_text(data_card, "KAP-DATA-001")
    assert "Observations (vital signs, labs, scores)" in detail
    assert "Consents" in detail
    assert "not secure (http, not https)" in detail
    assert "blood pressure" in detail
    assert not JARGON.search(detail), detail


def test_sandbox_draft_order_with_one_category_object_is_read(client: TestClient) -> None:
    body = example("eligible-patient-ketamine-iv")
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    order["category"] = copy.deepcopy(CATEGORY)
    found = cards(client, body)
    assert {rule_of(c): c["indicator"] for c in found} == {"KAP-FAST-001": "info"}


def test_an_unrepairable_element_is_named_in_plain_words(client: TestClient) -> None:
    body = example("uncontrolled-bp")
    for entry in body["prefetch"]["observations"]["entry"]:
        resource = entry["resource"]
        if resource["code"]["coding"][0]["code"] == "85354-9":  # the BP panel: two codes
            resource["code"] = [resource["code"], {"text": "Blood pressure"}]
    found = cards(client, body)
    by_rule = cards_by_rule(found)
    assert "KAP-CI-011" not in by_rule
    detail = rule_text(by_rule["KAP-DATA-001"], "KAP-DATA-001")
    assert (
        "An observation (vital sign, lab or score): its code element is not in the shape "
        "FHIR R4 requires" in detail
    ), detail
    # Its line's summary does not claim the blood pressure is missing: it is there, misshapen.
    assert "blood pressure" not in detail.split("\n")[0].lower()
    assert not JARGON.search(detail), detail
