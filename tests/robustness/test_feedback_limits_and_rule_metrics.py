"""Feedback is capped per call (400 naming the field), and /metrics counts cards fired, accepted
and overridden per rule id, on the real pipeline (issue 14 items 5 and 6)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from robust_support import EXAMPLES, load_json

BP = load_json(EXAMPLES / "requests" / "uncontrolled-bp.json")
SERVICE = "/cds-services/kap-order-sign"


def _overridden(card_uuid: str) -> dict[str, Any]:
    return {
        "card": card_uuid,
        "outcome": "overridden",
        "overrideReason": {"reason": {"system": "urn:kap-cds:override", "code": "other"}},
        "outcomeTimestamp": "2026-11-20T15:01:00+00:00",
    }


def _metric(text: str, rule: str, event: str) -> float:
    prefix = f'kap_cds_rule_cards_total{{event="{event}",rule="{rule}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


def test_cards_are_counted_per_rule_fired_and_overridden(client: TestClient) -> None:
    cards = client.post(SERVICE, json=BP).json()["cards"]
    hard_stop = next(c for c in cards if c["source"]["topic"]["code"] == "KAP-CI-011")
    feedback = client.post(
        f"{SERVICE}/feedback", json={"feedback": [_overridden(hard_stop["uuid"])]}
    )
    assert feedback.status_code == 200, feedback.text
    text = client.get("/metrics").text
    assert _metric(text, "KAP-CI-011", "fired") == 1
    assert _metric(text, "KAP-CI-011", "overridden") == 1
    assert _metric(text, "KAP-CI-011", "accepted") == 0


def test_feedback_for_a_card_nobody_issued_counts_as_unknown(client: TestClient) -> None:
    response = client.post(f"{SERVICE}/feedback", json={"feedback": [_overridden("no-such-card")]})
    assert response.status_code == 200
    assert _metric(client.get("/metrics").text, "unknown", "overridden") == 1


def test_more_feedback_items_than_allowed_is_a_400_naming_the_field(
    make_client: Any,
) -> None:
    with make_client(max_feedback_items=5) as client:
        items = [_overridden(f"card-{i}") for i in range(6)]
        response = client.post(f"{SERVICE}/feedback", json={"feedback": items})
        assert response.status_code == 400
        issue = response.json()["issue"][0]
        assert issue["expression"] == ["feedback"]
        assert "at most 5 items" in issue["details"]["text"]
        assert client.post(f"{SERVICE}/feedback", json={"feedback": items[:5]}).status_code == 200
