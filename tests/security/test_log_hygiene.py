"""No log line, at any level, carries the client JWT or the FHIR access token."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from security_helpers import (
    BASE,
    DISCOVERY,
    ISS,
    SERVICE,
    JwksServer,
    Minter,
    SigningKey,
    bearer,
    build_app,
    make_settings,
)

from cds.config import TrustedIssuer

FHIR_ACCESS_TOKEN = "fhir-access-token-5b1f0c3e9a7d4e21"


def test_tokens_never_reach_the_logs(
    caplog: pytest.LogCaptureFixture, jwks_server: JwksServer, es384: SigningKey
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(trusted_issuers=[TrustedIssuer(iss=ISS, jwks_url=jwks_server.url)])
    m = Minter(es384)
    good, wrong_aud, expired = m.token(), m.token(DISCOVERY + "/x"), m.token(exp=1, iat=0)
    tampered = good[:-6] + "AAAAAA"
    request = {
        "hook": "order-sign",
        "fhirServer": "https://ehr.example.org/fhir",
        "fhirAuthorization": {
            "access_token": FHIR_ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "kap",
        },
    }
    with TestClient(build_app(settings), base_url=BASE) as client:
        for token in (good, good, wrong_aud, expired, tampered):  # good twice: a replay
            client.post("/cds-services/kap-order-sign", json=request, headers=bearer(token))
        client.post("/cds-services/kap-order-sign", json=request)
        client.post(
            "/cds-services/kap-order-sign", content=b"[" * 100, headers=bearer(m.token(SERVICE))
        )

    assert any("JWT refused" in record.getMessage() for record in caplog.records)
    secrets = [FHIR_ACCESS_TOKEN]
    for token in (good, wrong_aud, expired, tampered):
        secrets += [token, *token.split(".")[1:]]  # payload and signature segments too
    logged = "\n".join(_full_text(record) for record in caplog.records)
    for secret in secrets:
        assert secret not in logged


def _full_text(record: logging.LogRecord) -> str:
    return " ".join(
        [record.getMessage(), repr(record.args), record.exc_text or "", str(record.__dict__)]
    )
