"""POST /cds-services/{id}/feedback."""

from __future__ import annotations

from typing import Any

import pytest
from api_fakes import FakeAudit
from fastapi.testclient import TestClient

URL = "/cds-services/kap-order-sign/feedback"


def item(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "card": "5b0b6a76-3d3b-4b83-9a2e-1f4c2f0c9d11",
        "outcome": "overridden",
        "overrideReason": {
            "reason": {
                "system": "urn:kap-cds:override",
                "code": "benefit-outweighs-risk",
                "display": "Benefit outweighs risk",
            },
            "userComment": "discussed with patient",
        },
        "outcomeTimestamp": "2026-03-10T14:05:31Z",
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def test_valid_feedback_goes_to_the_audit(client: TestClient, audit: FakeAudit) -> None:
    accepted = item(outcome="accepted", overrideReason=None, acceptedSuggestions=[{"id": "s-1"}])

    response = client.post(URL, json={"feedback": [item(), accepted]})

    assert response.status_code == 200
    assert response.json() == {}
    (record,) = audit.feedback
    assert record["service_id"] == "kap-order-sign"
    assert [i["outcome"] for i in record["items"]] == ["overridden", "accepted"]
    assert record["items"][0]["outcomeTimestamp"] == "2026-03-10T14:05:31Z"
    assert record["items"][1]["acceptedSuggestions"] == [{"id": "s-1"}]
    assert "acceptedSuggestions" not in record["items"][0]


@pytest.mark.parametrize(
    ("feedback", "expression", "message"),
    [
        (item(outcome="accepted"), "feedback[0]", "acceptedSuggestions is required"),
        (item(outcome="ignored"), "feedback[0].outcome", "Input should be 'accepted' or"),
        (item(outcomeTimestamp="2026-03-10T14:05:31"), "feedback[0].outcomeTimestamp", "timezone"),
        (item(card=None), "feedback[0].card", "Field required"),
    ],
)
def test_invalid_feedback_is_400_naming_the_field(
    client: TestClient,
    audit: FakeAudit,
    feedback: dict[str, Any],
    expression: str,
    message: str,
) -> None:
    response = client.post(URL, json={"feedback": [feedback]})

    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["expression"] == [expression]
    assert message in issue["details"]["text"]
    assert audit.feedback == []


def test_empty_feedback_list_is_400(client: TestClient) -> None:
    response = client.post(URL, json={"feedback": []})

    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["feedback"]


def test_feedback_for_unknown_service_is_404(client: TestClient) -> None:
    response = client.post("/cds-services/nope/feedback", json={"feedback": [item()]})

    assert response.status_code == 404
