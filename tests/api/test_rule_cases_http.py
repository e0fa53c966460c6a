"""Every rule fixture again, through the real HTTP service (TestClient) and the audit store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cds.app import create_app
from cds.config import Settings
from cds.hooks.cards import fired_by_rule, fired_variants
from cds.ruleset.cases import LoadedCase, build_request, case_now, check_result, load_cases

EXAMPLES = Path(__file__).resolve().parents[2] / "fhir_examples"
CASES = load_cases(EXAMPLES)


Clients = dict[str, TestClient]


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Clients, dict[str, str]]]:
    """One service per facility zone a case names (most cases: UTC), started when first used."""
    now_box = {"now": "2026-11-20T15:00:00+00:00"}
    started: Clients = {}
    yield started, now_box
    for test_client in started.values():
        test_client.__exit__(None, None, None)


def _client(started: Clients, zone: str, now_box: dict[str, str], state: Path) -> TestClient:
    if zone not in started:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=f"sqlite:///{state / 'audit.sqlite3'}",
            spool_dir=state / "spool",
            facility_timezone=zone,
        )
        # The service's clock is the case's "now" (patient-view and discharge use arrival time).
        app = create_app(settings, clock=lambda: datetime.fromisoformat(now_box["now"]))
        started[zone] = TestClient(app).__enter__()
    return started[zone]


@pytest.mark.parametrize("loaded", CASES, ids=[f"{c.rule_id}/{c.name}" for c in CASES])
def test_case_over_http(
    loaded: LoadedCase,
    clients: tuple[Clients, dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    started, now_box = clients
    zone = loaded.case.timezone or "UTC"
    state = tmp_path_factory.getbasetemp() / f"state-{zone.replace('/', '-')}"
    state.mkdir(exist_ok=True)
    test_client = _client(started, zone, now_box, state)
    now_box["now"] = case_now(loaded.case).isoformat()
    body = build_request(
        loaded.case, EXAMPLES, hook_instance=f"http-{loaded.rule_id}-{loaded.name}"
    )
    response = test_client.post(f"/cds-services/{loaded.case.service}", json=body)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    fired = fired_by_rule(cards)
    assert not check_result(loaded.case, fired, fired_variants(cards))
    for card in cards:
        assert len(card["summary"]) < 140
        # source.url: the governance page of the rule, or the checklist section, behind the card
        code = card["source"]["topic"]["code"]
        page = "governance#readiness" if code == "readiness" else f"governance/rules/{code}"
        assert card["source"]["url"] == f"http://testserver/{page}"
        if "org.kapcds.rule" in card["extension"]:
            rule = card["extension"]["org.kapcds.rule"]
            assert rule["id"] == card["source"]["topic"]["code"] and rule["version"]
        if card["indicator"] != "info":
            assert all(r["display"] for r in card["overrideReasons"])
