"""The per-issuer rate limit: one count for every process (engine), 429 with Retry-After and an
OperationOutcome past the limit, a 429 counter in /metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from security_helpers import BASE, ISS, Minter, SigningKey, bearer, make_settings
from sqlalchemy import Engine

from cds.app import create_app
from cds.audit.db import create_audit_engine
from cds.config import TrustedIssuer
from cds.security.ratelimit import SqlRateLimiter


class Clock:
    now = 1_000_040.0  # 20 s into a 60 s window (windows start at multiples of 60)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engines(db_url: str) -> Iterator[list[Engine]]:
    made = [create_audit_engine(db_url) for _ in range(2)]
    yield made
    for engine in made:
        engine.dispose()


def test_the_limit_holds_across_processes(engines: list[Engine]) -> None:
    clock = Clock()
    a, b = (SqlRateLimiter(e, limit=3, window_seconds=60, clock=clock) for e in engines)
    assert [a.hit(ISS).allowed, b.hit(ISS).allowed, a.hit(ISS).allowed] == [True] * 3
    refused = b.hit(ISS)
    assert not refused.allowed
    assert refused.retry_after == 40  # until the window ends
    assert a.hit("https://other-ehr.example.org").allowed  # each issuer has its own count
    clock.now += 40  # the next window
    assert a.hit(ISS).allowed


def test_429_with_retry_after_and_counter(es384: SigningKey) -> None:
    settings = make_settings(
        trusted_issuers=[TrustedIssuer(iss=ISS, jwks={"keys": [es384.jwk()]})],
        rate_limit_requests=2,
    )
    minter = Minter(es384)
    app = create_app(settings)  # the real rule set and audit store (a private SQLite file)
    with TestClient(app, base_url=BASE) as client:
        statuses = [
            client.get("/cds-services", headers=bearer(minter.token(aud=f"{BASE}/cds-services")))
            for _ in range(3)
        ]
        metrics = client.get("/metrics").text
    assert [r.status_code for r in statuses] == [200, 200, 429]
    limited = statuses[2]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    body = limited.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "throttled"
    assert body["issue"][0]["details"]["coding"][0]["code"] == "CDS-1429"
    assert f'kap_cds_rate_limited_total{{issuer="{ISS}"}} 1.0' in metrics
