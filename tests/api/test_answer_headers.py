"""Hardening headers on every answer, and /docs and /metrics exposure settings (issue 14 item 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from api_fakes import FIXED_NOW, FakeAudit, FakeEvaluator
from fastapi.testclient import TestClient

from cds.app import create_app
from cds.config import Settings


def _client(tmp_path: Path, **values: Any) -> TestClient:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path / 'audit.sqlite3'}",
        spool_dir=tmp_path / "spool",
        **values,
    )
    app = create_app(
        settings, evaluator=FakeEvaluator(), audit=FakeAudit(), clock=lambda: FIXED_NOW
    )
    return TestClient(app)


def _assert_hardened(headers: Any) -> None:
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"


def test_every_kind_of_answer_is_hardened(
    tmp_path: Path, order_sign_request: dict[str, Any]
) -> None:
    with _client(tmp_path) as client:
        answers = [
            client.post("/cds-services/kap-order-sign", json=order_sign_request),  # cards
            client.post("/cds-services/kap-order-sign", json={"hook": 1}),  # 400
            client.post("/cds-services/kap-order-sign", content=b"{}"),  # 415
            client.get("/cds-services"),
            client.get("/nowhere"),  # 404
            client.get("/healthz"),
            client.get("/docs"),
        ]
        for response in answers:
            _assert_hardened(response.headers)
        cards = answers[0]
        assert cards.status_code == 200 and cards.json()["cards"]
        assert (
            cards.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        )
        assert "Content-Security-Policy" not in answers[-1].headers  # Swagger UI loads its assets


def test_post_with_another_content_type_is_415(
    tmp_path: Path, order_sign_request: dict[str, Any]
) -> None:
    with _client(tmp_path) as client:
        for path in ("/cds-services/kap-order-sign", "/cds-services/kap-order-sign/feedback"):
            response = client.post(
                path, content=b'{"hook": "order-sign"}', headers={"Content-Type": "text/plain"}
            )
            assert response.status_code == 415
            assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "CDS-1415"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_docs_can_be_switched_off(tmp_path: Path, path: str) -> None:
    with _client(tmp_path) as client:
        assert client.get(path).status_code == 200
    with _client(tmp_path, expose_docs=False) as client:
        assert client.get(path).status_code == 404


def test_metrics_can_be_switched_off(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        assert client.get("/metrics").status_code == 200
    with _client(tmp_path, expose_metrics=False) as client:
        response = client.get("/metrics")
        assert response.status_code == 404
        assert "kap_cds" not in response.text
