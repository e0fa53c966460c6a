"""/governance needs a JWT when authentication is on, unless KAP_CDS_GOVERNANCE_OPEN is set."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient
from security_helpers import BASE, ISS, SigningKey, make_settings

from cds.config import TrustedIssuer
from cds.security.web import install


def governance_app(es384: SigningKey, governance_open: bool) -> FastAPI:
    settings = make_settings(  # a private SQLite store for the replay guard and rate limit
        trusted_issuers=[TrustedIssuer(iss=ISS, jwks={"keys": [es384.jwk()]})],
        governance_open=governance_open,
    )
    app = FastAPI()

    @app.get("/governance", response_class=HTMLResponse)
    def governance() -> str:
        return "<h1>KAP rule governance</h1>"

    @app.get("/cds-services")
    def discovery() -> dict[str, list[str]]:
        return {"services": []}

    install(app, settings)
    return app


def test_governance_is_protected_by_default(es384: SigningKey) -> None:
    with TestClient(governance_app(es384, governance_open=False), base_url=BASE) as client:
        assert client.get("/governance").status_code == 401


def test_governance_open_setting_opens_only_that_page(es384: SigningKey) -> None:
    with TestClient(governance_app(es384, governance_open=True), base_url=BASE) as client:
        assert client.get("/governance").status_code == 200
        assert client.get("/cds-services").status_code == 401


def proxy_login_app(es384: SigningKey) -> FastAPI:
    settings = make_settings(
        trusted_issuers=[TrustedIssuer(iss=ISS, jwks={"keys": [es384.jwk()]})],
        governance_user_header="X-Forwarded-User",
        governance_trusted_proxies=["10.0.0.0/24"],
    )
    app = FastAPI()

    @app.get("/governance", response_class=HTMLResponse)
    def governance() -> str:
        return "<h1>KAP rule governance</h1>"

    @app.get("/cds-services")
    def discovery() -> dict[str, list[str]]:
        return {"services": []}

    install(app, settings)
    return app


def test_person_signed_in_at_the_trusted_proxy_sees_governance(es384: SigningKey) -> None:
    app = proxy_login_app(es384)
    with TestClient(app, base_url=BASE, client=("10.0.0.7", 40000)) as proxy:
        user = {"X-Forwarded-User": "c.officer@hospital.example"}
        assert proxy.get("/governance", headers=user).status_code == 200
        assert proxy.get("/governance").status_code == 401  # the proxy did not sign anyone in
        assert proxy.get("/cds-services", headers=user).status_code == 401  # never a service
        bad = {"X-Forwarded-User": "<script>"}
        assert proxy.get("/governance", headers=bad).status_code == 401


def test_user_header_from_anywhere_else_is_ignored(
    es384: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    app = proxy_login_app(es384)
    with TestClient(app, base_url=BASE, client=("192.0.2.9", 40000)) as direct:
        response = direct.get("/governance", headers={"X-Forwarded-User": "c.officer"})
    assert response.status_code == 401
    assert "untrusted address" in caplog.text
