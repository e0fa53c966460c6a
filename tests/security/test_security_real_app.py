"""The security stack as the real app factory installs it (cds.app.create_app)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from security_helpers import (
    BASE,
    DISCOVERY,
    FEEDBACK,
    ISS,
    Minter,
    SigningKey,
    bearer,
    make_settings,
)

from cds.config import TrustedIssuer

app_module = pytest.importorskip("cds.app")


class FakeEvaluator:
    ruleset_info: dict[str, Any] = {"digest": "sha256:test", "rules": 1, "version": "0"}
    prefetch_templates: dict[str, str] = {}


class FakeAudit:
    def __init__(self) -> None:
        self.feedback: list[dict[str, Any]] = []

    def record_evaluation(self, **kwargs: Any) -> None:
        pass

    def record_feedback(self, *, service_id: str, items: list[dict[str, Any]], **who: Any) -> None:
        self.feedback.extend(items)

    def healthy(self) -> bool:
        return True

    def accepting(self) -> bool:
        return True

    def stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass


@pytest.fixture
def audit() -> FakeAudit:
    return FakeAudit()


@pytest.fixture
def real_client(es384: SigningKey, audit: FakeAudit) -> Iterator[TestClient]:
    settings = make_settings(  # a private SQLite store for the replay guard and rate limit
        trusted_issuers=[TrustedIssuer(iss=ISS, jwks={"keys": [es384.jwk()]})], max_json_depth=16
    )
    app = app_module.create_app(settings, evaluator=FakeEvaluator(), audit=audit)
    with TestClient(app, base_url=BASE) as client:
        yield client


def test_real_app_requires_a_token(
    real_client: TestClient, es384: SigningKey, audit: FakeAudit
) -> None:
    m = Minter(es384)
    assert real_client.get("/cds-services").status_code == 401
    discovery = real_client.get("/cds-services", headers=bearer(m.token(DISCOVERY)))
    assert discovery.status_code == 200
    assert discovery.json()["services"]

    feedback = {
        "feedback": [
            {
                "card": "0b2b6c1e-1f7e-4a55-9d7a-6b1e0e1f2a3b",
                "outcome": "overridden",
                "outcomeTimestamp": "2025-01-01T10:05:31Z",
            }
        ]
    }
    url = "/cds-services/kap-order-sign/feedback"
    assert real_client.post(url, json=feedback).status_code == 401
    response = real_client.post(url, json=feedback, headers=bearer(m.token(FEEDBACK)))
    assert response.status_code == 200, response.text
    assert len(audit.feedback) == 1


def test_real_app_probes_stay_open(real_client: TestClient) -> None:
    assert real_client.get("/healthz").status_code == 200
    assert real_client.get("/openapi.json").status_code == 200


def test_real_app_depth_limit(real_client: TestClient, es384: SigningKey) -> None:
    token = Minter(es384).token(f"{BASE}/cds-services/kap-order-sign")
    response = real_client.post(
        "/cds-services/kap-order-sign",
        content=b"[" * 17 + b"]" * 17,
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["issue"][0]["details"]["text"] == "JSON nesting deeper than 16"


def test_refusals_are_counted_by_reason_in_metrics(
    real_client: TestClient, es384: SigningKey
) -> None:
    m = Minter(es384)
    wrong_aud = m.token("https://elsewhere.example.org/cds-services")
    assert real_client.get("/cds-services", headers=bearer(wrong_aud)).status_code == 401
    assert real_client.get("/cds-services").status_code == 401
    text = real_client.get("/metrics").text
    assert 'kap_cds_auth_refusals_total{reason="wrong_audience"} 1.0' in text
    assert 'kap_cds_auth_refusals_total{reason="no_token"} 1.0' in text
