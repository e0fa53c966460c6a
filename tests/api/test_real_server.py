"""A real uvicorn process (run_server, the factory, the real evaluator and audit store) and a
real HTTP round trip; plus the refusal to run open on a non-loopback address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import live_server

from cds.api.server import check_bind, is_loopback
from cds.config import Settings, TrustedIssuer


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    with live_server(tmp_path) as server:
        yield server.url
    assert "running OPEN" in server.log  # the loud start-up warning


def test_real_round_trip(server_url: str, order_sign_request: dict[str, Any]) -> None:
    discovery = httpx.get(f"{server_url}/cds-services", timeout=5)
    assert discovery.status_code == 200
    services = discovery.json()["services"]
    assert len(services) == 6
    assert services[0]["extension"]["org.kapcds.ruleset"]["rules"] > 0

    response = httpx.post(
        f"{server_url}/cds-services/kap-order-sign", json=order_sign_request, timeout=10
    )

    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert cards, "the example IV ketamine order should produce at least one card"
    assert all(card["source"]["label"] == "KAP Safety Rules" for card in cards)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("cds.example.org", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_open_service_refuses_a_public_address(settings: Settings) -> None:
    with pytest.raises(SystemExit, match="refusing to bind to 0.0.0.0: kap-cds is running OPEN"):
        check_bind(settings, "0.0.0.0")
    check_bind(settings, "127.0.0.1")  # allowed

    settings.trusted_issuers = [TrustedIssuer(iss="https://ehr.example.org", jwks={"keys": []})]
    check_bind(settings, "0.0.0.0")  # with JWT authentication any address is fine
