"""CORS for browser EHR clients (the CDS Hooks sandbox): an allowlist of origins, never '*'."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from security_helpers import BASE, ISS, SigningKey, build_app, make_settings

from cds.config import TrustedIssuer

SANDBOX = "https://sandbox.cds-hooks.org"


@pytest.fixture
def cors_client(es384: SigningKey) -> Iterator[TestClient]:
    settings = make_settings(
        trusted_issuers=[TrustedIssuer(iss=ISS, jwks={"keys": [es384.jwk()]})],
        cors_origins=[SANDBOX],
    )
    with TestClient(build_app(settings), base_url=BASE) as client:
        yield client


def preflight(client: TestClient, origin: str) -> dict[str, str]:
    response = client.options(
        "/cds-services/kap-order-sign",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    return {"status": str(response.status_code), **response.headers}


def test_preflight_allowed_for_a_configured_origin(cors_client: TestClient) -> None:
    """Preflights carry no Authorization header, so CORS must answer them before auth runs."""
    headers = preflight(cors_client, SANDBOX)
    assert headers["status"] == "200"
    assert headers["access-control-allow-origin"] == SANDBOX
    allowed = headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "POST" in headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in headers


def test_preflight_refused_for_other_origins(cors_client: TestClient) -> None:
    headers = preflight(cors_client, "https://evil.example.org")
    assert headers["status"] == "400"
    assert "access-control-allow-origin" not in headers


def test_errors_carry_cors_headers_so_the_browser_can_read_them(cors_client: TestClient) -> None:
    response = cors_client.get("/cds-services", headers={"Origin": SANDBOX})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == SANDBOX


def test_cors_off_when_no_origins_configured(client: TestClient) -> None:
    response = client.get("/healthz", headers={"Origin": SANDBOX})
    assert "access-control-allow-origin" not in response.headers
