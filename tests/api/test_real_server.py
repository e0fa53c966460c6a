"""A real uvicorn process (run_server, the factory, the real evaluator and audit store) and a
real HTTP round trip; plus the refusal to run open on a non-loopback address."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds.api.server import check_bind, is_loopback
from cds.config import Settings, TrustedIssuer

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "KAP_CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.sqlite3'}",
        "KAP_CDS_SPOOL_DIR": str(tmp_path / "spool"),
    }
    env.pop("KAP_CDS_TRUSTED_ISSUERS", None)
    code = (
        "from cds.api.server import run_server; from cds.config import Settings; "
        f"run_server(Settings(), host='127.0.0.1', port={port}, workers=1)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        yield url
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
        log = output.decode(errors="replace")
        # uvicorn exits 0 on SIGTERM; anything else (a crash in the engine, say) fails loudly.
        assert process.returncode in (0, -signal.SIGTERM), f"server died:\n{log}"
        assert "running OPEN" in log  # the loud start-up warning


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"server exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("server did not start in time")


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
