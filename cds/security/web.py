"""Installs the security middleware stack: CORS, time limit, JWT authentication, body limits.

Order, outermost first (Starlette runs the middleware added last first):

0. Security headers (``cds.security.headers``): no-store, nosniff and friends on every answer,
   the ones made by the layers below included.
1. CORS: answers browser preflights, which carry no Authorization header by design, and puts
   the CORS headers on every answer below it, 401/413/503 included, so a browser EHR client
   (the CDS Hooks sandbox) can read our errors instead of seeing an opaque network failure.
2. Time limit: covers everything below it, the JWKS fetch and a slow body upload included.
3. JWT authentication: needs only the headers, so it runs before a single body byte is read.
   An unauthenticated caller can neither make us buffer 10 MB nor, with ``Expect:
   100-continue``, even get the server to ask for the body. The ``jti`` replay guard and
   the per-issuer rate limit (429) keep their state in the shared store (all replicas).
4. Content-Type: a POST body must be declared application/json (415 otherwise, body unread).
5. Body limits (size, then JSON depth): buffer the body for callers we know.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.middleware.cors import CORSMiddleware

from cds.config import Settings
from cds.security import shared_state
from cds.security.auth import JwtAuthMiddleware
from cds.security.headers import JsonContentTypeMiddleware, SecurityHeadersMiddleware
from cds.security.limits import BodyLimitMiddleware, RequestTimeoutMiddleware
from cds.security.proxy_login import ProxyLogin
from cds.security.ratelimit import RateLimitMiddleware
from cds.security.refusals import RefusalLog
from cds.security.tokens import TokenVerifier

logger = logging.getLogger(__name__)


def install(
    app: FastAPI, settings: Settings, *, on_refusal: Callable[[str], None] | None = None
) -> None:
    """Add the security middleware stack to ``app`` (call before the app starts).
    ``on_refusal`` is told the reason code of every refused token (metrics)."""
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_json_depth=settings.max_json_depth,
    )
    app.add_middleware(JsonContentTypeMiddleware)
    _install_auth(app, settings, on_refusal)
    app.add_middleware(
        RequestTimeoutMiddleware,
        seconds=settings.request_timeout_seconds,
        retry_after_seconds=settings.retry_after_seconds,
    )
    _install_cors(app, settings)
    app.add_middleware(SecurityHeadersMiddleware)


def _install_auth(
    app: FastAPI, settings: Settings, on_refusal: Callable[[str], None] | None
) -> None:
    if not settings.auth_enabled:
        logger.warning(
            "AUTHENTICATION DISABLED: no trusted issuers configured, every /cds-services call is "
            "accepted without a JWT. Set KAP_CDS_TRUSTED_ISSUERS before handling patient data."
        )
        return
    audience_bases = require_audience(settings)
    engine = shared_state.security_engine(settings)
    app.state.security_engine = engine  # disposed by the app's lifespan (cds.app)
    _install_rate_limit(app, settings, engine)  # added first: runs inside the JWT check
    verifier = TokenVerifier.from_settings(settings, shared_state.replay_guard(settings, engine))
    # Kept on the app for operators and tests (key sources, replay cache size).
    app.state.token_verifier = verifier
    app.add_middleware(
        JwtAuthMiddleware,
        verifier=verifier,
        audience_bases=tuple(audience_bases),
        extra_open_paths=frozenset({"/governance"}) if settings.governance_open else frozenset(),
        refusals=RefusalLog(on_refusal=on_refusal),
        proxy_login=ProxyLogin.build(
            settings.governance_user_header, settings.governance_trusted_proxies
        ),
    )
    logger.info("JWT authentication on: %d trusted issuer(s)", len(settings.trusted_issuers))


class AudienceNotConfigured(RuntimeError):
    """JWT mode without a configured audience: the service must not start."""


def require_audience(settings: Settings) -> list[str]:
    """The configured audience bases; refuses JWT mode without any.

    The URL a request arrived at is the caller's choice (Host header): checking ``aud`` against
    it would accept a token minted for any other service.
    """
    bases = settings.audience_bases
    if settings.auth_enabled and not bases:
        raise AudienceNotConfigured(
            "JWT authentication is on (KAP_CDS_TRUSTED_ISSUERS) but KAP_CDS_PUBLIC_BASE_URL is "
            "not set: set it to the URL EHRs call this service at (or list them in "
            "KAP_CDS_ACCEPTED_AUDIENCES); tokens' aud is checked against it"
        )
    return bases


def _install_rate_limit(app: FastAPI, settings: Settings, engine: Engine) -> None:
    limiter = shared_state.rate_limiter(settings, engine)
    if limiter is None:
        logger.warning("per-issuer rate limit off (KAP_CDS_RATE_LIMIT_REQUESTS=0)")
        return

    def count_429(issuer: str) -> None:
        runtime = getattr(app.state, "runtime", None)  # absent in apps built without create_app
        if runtime is not None:
            runtime.metrics.rate_limited_call(issuer)

    app.add_middleware(RateLimitMiddleware, limiter=limiter, on_limited=count_429)


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
