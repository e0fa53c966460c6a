"""install(): the middleware order, and the loud warning when the service runs open."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from security_helpers import ISS, SigningKey, make_settings
from starlette.middleware.cors import CORSMiddleware

from cds.config import TrustedIssuer
from cds.security.auth import JwtAuthMiddleware
from cds.security.headers import JsonContentTypeMiddleware, SecurityHeadersMiddleware
from cds.security.limits import BodyLimitMiddleware, RequestTimeoutMiddleware
from cds.security.ratelimit import RateLimitMiddleware
from cds.security.web import install


def test_middleware_order_outermost_first(es384: SigningKey) -> None:
    app = FastAPI()
    install(
        app,
        make_settings(
            trusted_issuers=[TrustedIssuer(iss=ISS, jwks={"keys": [es384.jwk()]})],
            cors_origins=["https://sandbox.cds-hooks.org"],
        ),
    )
    # Starlette lists user middleware outermost first.
    assert [m.cls for m in app.user_middleware] == [
        SecurityHeadersMiddleware,
        CORSMiddleware,
        RequestTimeoutMiddleware,
        JwtAuthMiddleware,
        RateLimitMiddleware,  # inside the JWT check: counts verified issuers only
        JsonContentTypeMiddleware,
        BodyLimitMiddleware,
    ]


def test_open_mode_has_no_auth_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="cds.security")
    app = FastAPI()
    install(app, make_settings())
    assert JwtAuthMiddleware not in [m.cls for m in app.user_middleware]
    assert CORSMiddleware not in [m.cls for m in app.user_middleware]
    assert any("AUTHENTICATION DISABLED" in r.getMessage() for r in caplog.records)
