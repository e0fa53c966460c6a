"""Issuer keys fetched from a JWKS URL: rotation, rate-limited refresh, jku allowlist, outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from security_helpers import (
    BASE,
    ISS,
    SERVICE,
    JwksServer,
    Minter,
    SigningKey,
    bearer,
    build_app,
    make_settings,
    new_es384,
    serve_jwks,
)

from cds.config import TrustedIssuer
from cds.security.jwks import RemoteJwks, parse_jwks
from cds.security.tokens import TokenVerifier


@pytest.fixture
def remote_app(jwks_server: JwksServer) -> FastAPI:
    settings = make_settings(trusted_issuers=[TrustedIssuer(iss=ISS, jwks_url=jwks_server.url)])
    return build_app(settings)


@pytest.fixture
def remote_client(remote_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(remote_app, base_url=BASE) as client:
        yield client


def remote_source(app: FastAPI) -> RemoteJwks:
    verifier: TokenVerifier = app.state.token_verifier
    (source,) = verifier.key_sources()
    assert isinstance(source, RemoteJwks)
    return source


def call(client: TestClient, token: str) -> int:
    response = client.post("/cds-services/kap-order-sign", json={}, headers=bearer(token))
    return response.status_code


def test_key_rotation_is_picked_up_on_the_next_request(
    remote_app: FastAPI, remote_client: TestClient, jwks_server: JwksServer, es384: SigningKey
) -> None:
    remote_source(remote_app).min_refresh_seconds = 0  # no rate limit for this test
    assert call(remote_client, Minter(es384).token()) == 200
    assert jwks_server.hits == 1

    rotated = new_es384("es384-2")
    jwks_server.publish(rotated)  # the issuer rotates: new kid in, old kid out
    assert call(remote_client, Minter(rotated).token()) == 200
    assert jwks_server.hits == 2
    assert call(remote_client, Minter(rotated).token()) == 200
    assert jwks_server.hits == 2  # known kid: served from the cache
    assert call(remote_client, Minter(es384).token()) == 401  # retired key no longer accepted


def test_unknown_kids_cannot_force_fetch_storms(
    remote_app: FastAPI, remote_client: TestClient, jwks_server: JwksServer, es384: SigningKey
) -> None:
    assert call(remote_client, Minter(es384).token()) == 200
    for n in range(20):
        assert call(remote_client, Minter(new_es384(f"made-up-{n}")).token()) == 401
    assert jwks_server.hits == 1  # within the minimum interval: no refetch

    rotated = new_es384("es384-2")
    jwks_server.publish(es384, rotated)
    assert call(remote_client, Minter(rotated).token()) == 401  # still rate-limited
    remote_source(remote_app).min_refresh_seconds = 0  # as if the interval had passed
    assert call(remote_client, Minter(rotated).token()) == 200
    assert jwks_server.hits == 2


def test_concurrent_unknown_kids_share_one_fetch(jwks_server: JwksServer) -> None:
    source = RemoteJwks(jwks_server.url, min_refresh_seconds=60)

    async def many() -> list[object]:
        return await asyncio.gather(*(source.get(f"unknown-{n}") for n in range(25)))

    assert asyncio.run(many()) == [None] * 25
    assert jwks_server.hits == 1


def test_jku_equal_to_the_configured_url_is_accepted(
    remote_client: TestClient, jwks_server: JwksServer, es384: SigningKey
) -> None:
    token = Minter(es384).token(headers={"jku": jwks_server.url})
    assert call(remote_client, token) == 200


def test_foreign_jku_is_never_fetched(remote_client: TestClient, es384: SigningKey) -> None:
    attacker = new_es384("attacker")
    with serve_jwks(attacker) as evil:
        token = Minter(attacker).token(headers={"jku": evil.url, "kid": "attacker"})
        assert call(remote_client, token) == 401
        assert evil.hits == 0


def test_jku_refused_for_an_issuer_with_inline_keys(client: TestClient, minter: Minter) -> None:
    assert call(client, minter.token(headers={"jku": "https://ehr.example.org/jwks"})) == 401


def test_issuer_outage_keeps_the_keys_we_have(
    remote_app: FastAPI, remote_client: TestClient, jwks_server: JwksServer, es384: SigningKey
) -> None:
    assert call(remote_client, Minter(es384).token()) == 200
    source = remote_source(remote_app)
    source.min_refresh_seconds = 0
    source.max_age_seconds = 0  # force a refresh on every request
    jwks_server.status = 503
    assert call(remote_client, Minter(es384).token()) == 200
    assert jwks_server.hits >= 2


def test_unreachable_jwks_is_a_401_not_a_500(es384: SigningKey) -> None:
    with serve_jwks(es384) as gone:
        url = gone.url
    settings = make_settings(trusted_issuers=[TrustedIssuer(iss=ISS, jwks_url=url)])
    with TestClient(build_app(settings), base_url=BASE) as client:
        assert call(client, Minter(es384).token(SERVICE)) == 401


def test_slow_jwks_fetch_is_bounded(jwks_server: JwksServer) -> None:
    jwks_server.delay_seconds = 2.0
    source = RemoteJwks(jwks_server.url, timeout_seconds=0.2)
    started = time.monotonic()
    assert asyncio.run(source.get("es384-1")) is None
    assert time.monotonic() - started < 1.5


def test_parse_jwks_keeps_only_public_signature_keys(es384: SigningKey, rs384: SigningKey) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    members = [
        es384.jwk(),
        rs384.jwk(),
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {**es384.jwk(), "kid": "enc", "use": "enc"},
        {**es384.jwk(), "kid": None},
        {**es384.jwk(), "kid": "private", "d": "AAAA"},
        {**SigningKey("weak", "RS384", weak).jwk()},
        {"kty": "EC", "kid": "broken", "crv": "P-384", "x": "AA", "y": "AA"},
        "not an object",
    ]
    assert sorted(parse_jwks({"keys": members}, "test")) == ["es384-1", "rs384-1"]
    assert parse_jwks({"no": "keys"}, "test") == {}
    assert parse_jwks(["not", "a", "set"], "test") == {}
