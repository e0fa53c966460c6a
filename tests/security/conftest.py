"""Fixtures for the security tests (helpers live in security_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from security_helpers import (
    BASE,
    ISS,
    JwksServer,
    Minter,
    SigningKey,
    build_app,
    make_settings,
    new_es384,
    new_rs384,
    serve_jwks,
)

from cds.config import Settings, TrustedIssuer


@pytest.fixture(scope="session")
def es384() -> SigningKey:
    return new_es384()


@pytest.fixture(scope="session")
def rs384() -> SigningKey:
    return new_rs384()


@pytest.fixture
def minter(es384: SigningKey) -> Minter:
    return Minter(es384)


@pytest.fixture
def inline_settings(es384: SigningKey, rs384: SigningKey) -> Settings:
    jwks = {"keys": [es384.jwk(), rs384.jwk()]}
    return make_settings(trusted_issuers=[TrustedIssuer(iss=ISS, jwks=jwks)])


@pytest.fixture
def client(inline_settings: Settings) -> Iterator[TestClient]:
    with TestClient(build_app(inline_settings), base_url=BASE) as test_client:
        yield test_client


@pytest.fixture
def jwks_server(es384: SigningKey) -> Iterator[JwksServer]:
    with serve_jwks(es384) as server:
        yield server


# The audit store's database fixtures: the replay guard and the rate limit live in that store,
# so their tests run on SQLite and on PostgreSQL like the audit tests.
from audit.conftest import db_url, pg_url  # noqa: E402,F401
