"""A real uvicorn process (run_server, the factory, the real evaluator and audit store) and a
real HTTP round trip; plus the refusal to run open on a non-loopback address."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import live_server

from cds.api.server import cap_malloc_arenas, check_bind, is_loopback
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


def test_tryout_switch_allows_open_on_every_interface(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.open_tryout = True
    check_bind(settings, "0.0.0.0")  # the documented laptop try-out of the image
    assert "TRY-OUT MODE" in caplog.text


def test_serve_with_a_bad_rule_set_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "policy.yaml").write_text("not: [valid", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAP_CDS_")}
    env |= {"KAP_CDS_STATE_DIR": str(tmp_path / "state"), "KAP_CDS_RULES_DIR": str(rules)}
    done = subprocess.run(
        [sys.executable, "-m", "cds", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("kap-cds: rule set rejected: ")
    assert "policy.yaml" in line


def test_workers_start_with_few_malloc_arenas_unless_the_site_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    cap_malloc_arenas()
    assert os.environ["MALLOC_ARENA_MAX"] == "2"  # what spawned workers inherit
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    cap_malloc_arenas()
    assert os.environ["MALLOC_ARENA_MAX"] == "4"
