"""The README's feedback example is a request the service accepts (kept in step with the docs)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from api_fakes import FakeAudit
from fastapi.testclient import TestClient

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_feedback_body() -> dict[str, object]:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"kap-order-sign/feedback.*?--data '(\{.*?\})'\n", text, re.S)
    assert match, "the README has no feedback example"
    body: dict[str, object] = json.loads(match.group(1))
    return body


def test_readme_feedback_example_is_accepted_and_recorded(
    client: TestClient, audit: FakeAudit
) -> None:
    response = client.post("/cds-services/kap-order-sign/feedback", json=readme_feedback_body())
    assert response.status_code == 200, response.text
    assert response.json() == {}
    recorded = [item for call in audit.feedback for item in call["items"]]
    assert [item["outcome"] for item in recorded] == ["accepted", "overridden"]
    assert recorded[1]["overrideReason"]["reason"]["code"] == "OR-BENEFIT"
