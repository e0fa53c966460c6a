"""/governance needs a JWT when authentication is on, unless KAP_CDS_GOVERNANCE_OPEN is set."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient
from security_helpers import BASE, ISS, SigningKey, make_settings

from cds.config import TrustedIssuer
from cds.security.web import install


def governance_app(es384: SigningKey, governance_open: bool) -> FastAPI:
    settings = make_settings(
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
