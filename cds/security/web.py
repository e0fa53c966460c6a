"""Installs the security middleware stack: CORS, time limit, JWT authentication, body limits.

Order, outermost first (Starlette runs the middleware added last first):

1. CORS: answers browser preflights, which carry no Authorization header by design, and puts
   the CORS headers on every answer below it, 401/413/503 included, so a browser EHR client
   (the CDS Hooks sandbox) can read our errors instead of seeing an opaque network failure.
2. Time limit: covers everything below it, the JWKS fetch and a slow body upload included.
3. JWT authentication: needs only the headers, so it runs before a single body byte is read.
   An unauthenticated caller can neither make us buffer 10 MB nor, with ``Expect:
   100-continue``, even get the server to ask for the body.
4. Body limits (size, then JSON depth): buffer the body for callers we know.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from cds.config import Settings
from cds.security.auth import JwtAuthMiddleware
from cds.security.limits import BodyLimitMiddleware, RequestTimeoutMiddleware
from cds.security.proxy_login import ProxyLogin
from cds.security.tokens import TokenVerifier

logger = logging.getLogger(__name__)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the security middleware stack to ``app`` (call before the app starts)."""
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_json_depth=settings.max_json_depth,
    )
    _install_auth(app, settings)
    app.add_middleware(RequestTimeoutMiddleware, seconds=settings.request_timeout_seconds)
    _install_cors(app, settings)


def _install_auth(app: FastAPI, settings: Settings) -> None:
    if not settings.auth_enabled:
        logger.warning(
            "AUTHENTICATION DISABLED: no trusted issuers configured, every /cds-services call is "
            "accepted without a JWT. Set KAP_CDS_TRUSTED_ISSUERS before handling patient data."
        )
        return
    if settings.public_base_url is None:
        # Then aud is checked against the Host header, which the caller chooses.
        logger.warning(
            "KAP_CDS_PUBLIC_BASE_URL is not set: JWT aud is matched against the "
            "request's Host header; set it in production"
        )
    verifier = TokenVerifier.from_settings(settings)
    # Kept on the app for operators and tests (key sources, replay cache size).
    app.state.token_verifier = verifier
    app.add_middleware(
        JwtAuthMiddleware,
        verifier=verifier,
        public_base_url=settings.public_base_url,
        extra_open_paths=frozenset({"/governance"}) if settings.governance_open else frozenset(),
        proxy_login=ProxyLogin.build(
            settings.governance_user_header, settings.governance_trusted_proxies
        ),
    )
    logger.info("JWT authentication on: %d trusted issuer(s)", len(settings.trusted_issuers))


def _install_cors(app: FastAPI, settings: Settings) -> None:
    if not settings.cors_origins:
        return
    if "*" in settings.cors_origins:
        logger.warning("CORS allows every origin ('*'); list the EHR origins instead")
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
        # Bearer tokens travel in a header, not cookies: credentials mode is never needed, and
        # '*' with credentials is the insecure reference-server setup (CDS Hooks docs PR#140).
        allow_credentials=False,
    )
