"""The whole-patient example requests the README points to give the cards it promises."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cds.app import create_app
from cds.config import Settings
from cds.hooks.cards import fired_by_rule

REQUESTS = Path(__file__).resolve().parents[2] / "fhir_examples" / "requests"
# example -> {rule id: indicator} of the cards it must produce, and nothing more.
EXPECTED = {
    "eligible-patient-ketamine-iv": {"KAP-FAST-001": "info"},
    "pregnant-patient": {"KAP-CI-022": "critical", "KAP-FAST-001": "info"},
    "uncontrolled-bp": {"KAP-CI-011": "critical", "KAP-FAST-001": "info"},
    "esketamine-course": {},
    "too-soon-booster": {"KAP-INT-004": "info"},
    # A bare chart, dose in the past of the clock (near): the gaps are critical, on one card.
    "order-sign-ketamine-iv": {
        **dict.fromkeys(
            ("KAP-QUAL-001", "KAP-CI-023", "KAP-QUAL-004", "KAP-QUAL-006", "KAP-INT-006"),
            "critical",
        ),
        "KAP-FAST-001": "info",
    },
    # The same chart, dose a week after the call: the same kind of gaps, a to-do list (warning).
    "bare-chart-week-ahead": {
        **dict.fromkeys(
            (
                "KAP-QUAL-001",
                "KAP-CI-023",
                "KAP-CI-012",
                "KAP-DOSE-001",
                "KAP-QUAL-004",
                "KAP-QUAL-006",
                "KAP-INT-006",
            ),
            "warning",
        ),
        "KAP-FAST-001": "info",
    },
}
# The readiness checklist puts the preparation gaps on one card.
CARD_COUNT = {"order-sign-ketamine-iv": 2, "bare-chart-week-ahead": 2}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    state = tmp_path_factory.mktemp("examples")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{state / 'audit.sqlite3'}",
        spool_dir=state / "spool",
    )
    app = create_app(settings, clock=lambda: datetime(2026, 11, 20, 9, tzinfo=UTC))
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_request(client: TestClient, name: str) -> None:
    body = json.loads((REQUESTS / f"{name}.json").read_text(encoding="utf-8"))
    response = client.post(f"/cds-services/kap-{body['hook']}", json=body)
    assert response.status_code == 200, response.text
    fired = fired_by_rule(response.json()["cards"])
    assert fired == EXPECTED[name]
    if name in CARD_COUNT:
        assert len(response.json()["cards"]) == CARD_COUNT[name]
