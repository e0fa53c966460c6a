"""Refused tokens are seen by an operator: a WARNING line saying why (never the token), throttled
per reason, and counted by reason in /metrics (issue 14 item 6, issue 16 item 4)."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from security_helpers import SERVICE, Minter, SigningKey, bearer, new_es384

from cds.security.refusals import REASON_CODES, RefusalLog, classify


def _refusal_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("JWT refused")]


def _post(client: TestClient, token: str) -> int:
    response = client.post(
        "/cds-services/kap-order-sign", json={"hook": "order-sign"}, headers=bearer(token)
    )
    return response.status_code


def test_first_wrong_audience_call_leaves_a_warning_that_says_why(
    client: TestClient, minter: Minter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cds.security")
    token = minter.token("https://another-service.example.org/cds-services/kap-order-sign")
    assert _post(client, token) == 401
    (line,) = _refusal_lines(caplog)
    assert line.levelno == logging.WARNING
    assert "wrong audience" in line.getMessage()
    assert "code=wrong_audience" in line.getMessage()
    assert token not in caplog.text and token.split(".")[2] not in caplog.text


def test_first_wrong_key_call_leaves_a_warning_that_says_why(
    client: TestClient, es384: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cds.security")
    impostor = new_es384(kid=es384.kid)  # the issuer's kid, someone else's private key
    assert _post(client, Minter(impostor).token(SERVICE)) == 401
    stranger = new_es384(kid="not-in-the-key-set")
    assert _post(client, Minter(stranger).token(SERVICE)) == 401
    first, second = (r.getMessage() for r in _refusal_lines(caplog))
    assert "bad signature" in first and f"kid='{es384.kid}'" in first
    assert "unknown kid" in second and "kid='not-in-the-key-set'" in second


def test_expired_and_missing_tokens_are_warnings_too(
    client: TestClient, minter: Minter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cds.security")
    assert _post(client, minter.token(SERVICE, iat=1_000, exp=1_300)) == 401
    assert client.post("/cds-services/kap-order-sign", json={}).status_code == 401
    messages = [r.getMessage() for r in _refusal_lines(caplog)]
    assert "code=expired" in messages[0]
    assert "code=no_token" in messages[1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_is_throttled_per_reason_and_the_held_back_lines_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="cds.security")
    clock = FakeClock()
    counted: list[str] = []
    log = RefusalLog(burst=3, per_minute=6, clock=clock, on_refusal=counted.append)
    for _ in range(1000):
        log.refused("unknown kid", iss="https://ehr", kid="k1", path="/cds-services")
    log.refused("replayed jti", iss="https://ehr", kid="k1", path="/cds-services")
    lines = [r.getMessage() for r in _refusal_lines(caplog)]
    assert len(lines) == 4  # 3 of the flood, and the first of another reason
    assert "code=replay" in lines[-1]
    assert len(counted) == 1001  # every refusal is counted, logged or not
    clock.now = 10.0  # one line per 10 s comes back
    log.refused("unknown kid", iss="https://ehr", kid="k1", path="/cds-services")
    last = _refusal_lines(caplog)[-1].getMessage()
    assert "997 more refusals of this kind not logged" in last


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("ExpiredSignatureError: Signature has expired", "expired"),
        ("InvalidAudienceError: Audience doesn't match", "wrong_audience"),
        ("ImmatureSignatureError: The token is not yet valid (iat)", "not_yet_valid"),
        ("unknown kid", "unknown_kid"),
        ("bad signature", "bad_signature"),
        ("replayed jti", "replay"),
        ("alg differs from the key's alg", "alg_mismatch"),
        ("alg 'none' not allowed", "alg_not_allowed"),
        ("something new", "other"),
    ],
)
def test_reasons_map_to_a_closed_set_of_codes(reason: str, code: str) -> None:
    assert classify(reason)[0] == code
    assert code in REASON_CODES
