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


# ISS is https://ehr.example.org/fhir: its own origin is https://ehr.example.org.
@pytest.mark.parametrize(
    "jku",
    ["https://ehr.example.org/.well-known/jwks.json", "https://ehr.example.org/jwks"],
)
def test_inline_keys_accept_a_jku_on_the_issuers_own_origin(
    client: TestClient, minter: Minter, jku: str
) -> None:
    # The pinned keys verify the token; naming the issuer's own published set changes nothing.
    assert call(client, minter.token(headers={"jku": jku})) == 200


@pytest.mark.parametrize(
    "jku",
    [
        "https://evil.example.org/jwks",  # another host
        "http://ehr.example.org/jwks",  # the issuer's host, but not https
        "https://ehr.example.org:8443/jwks",  # another port
        "https://ehr.example.org.evil.example/jwks",  # a look-alike host
        ["https://ehr.example.org/jwks"],  # not a string
    ],
    ids=["other-host", "http", "other-port", "look-alike", "not-a-string"],
)
def test_inline_keys_refuse_a_jku_elsewhere(
    client: TestClient, minter: Minter, jku: object
) -> None:
    assert call(client, minter.token(headers={"jku": jku})) == 401


def test_inline_keys_with_an_allow_list_accept_only_that_list(es384: SigningKey) -> None:
    listed = "https://keys.ehr-vendor.example/tenant-7/jwks.json"
    trust = TrustedIssuer(iss=ISS, jwks={"keys": [es384.jwk()]}, allowed_jku=[listed])
    with TestClient(build_app(make_settings(trusted_issuers=[trust])), base_url=BASE) as client:
        minter = Minter(es384)
        assert call(client, minter.token(headers={"jku": listed})) == 200
        assert call(client, minter.token()) == 200  # no jku at all
        # With a list, the issuer's own origin is no longer implied.
        own_origin = "https://ehr.example.org/.well-known/jwks.json"
        assert call(client, minter.token(headers={"jku": own_origin})) == 401


def test_jwks_url_issuer_allow_list_is_checked_but_never_fetched(
    jwks_server: JwksServer, es384: SigningKey
) -> None:
    with serve_jwks(new_es384("listed")) as listed_server:
        trust = TrustedIssuer(iss=ISS, jwks_url=jwks_server.url, allowed_jku=[listed_server.url])
        app = build_app(make_settings(trusted_issuers=[trust]))
        with TestClient(app, base_url=BASE) as client:
            assert call(client, Minter(es384).token(headers={"jku": listed_server.url})) == 200
            # A jwks_url issuer never gets the own-origin allowance.
            same_origin = "https://ehr.example.org/.well-known/jwks.json"
            assert call(client, Minter(es384).token(headers={"jku": same_origin})) == 401
        assert listed_server.hits == 0


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
