"""ASGI middleware that requires a valid CDS Hooks client JWT on every path but a few.

Deny by default: every path needs a token except ``OPEN_PATHS``, so an odd spelling of a CDS
path (``//cds-services``, a new route someone adds) is never open by accident. The open ones:

- ``/healthz``, ``/readyz``: load balancers and orchestrators probe them without credentials;
  they reveal no patient data (readiness shows the rule-set digest and the auth mode).
- ``/metrics``: scraped by Prometheus from inside the network; counters and latencies only.
  Do not route it through the public proxy.
- ``/docs``, ``/redoc``, ``/openapi.json``: the API description is as public as the CDS Hooks
  specification it follows; the configured services are in the (protected) discovery answer.
- ``/``: a constant page of links to the above, discovery and governance.

``/governance`` (rule catalog and per-rule counts, no patient data) needs a token like the CDS
endpoints unless ``KAP_CDS_GOVERNANCE_OPEN=true``: a browser cannot send a CDS Hooks JWT, so a
site that wants the page in production serves it behind its own authenticating proxy.
"""

from __future__ import annotations

import logging

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from cds.api.problem import problem_response
from cds.errors import AuthenticationFailed
from cds.security.proxy_login import ProxyLogin
from cds.security.refusals import RefusalLog
from cds.security.replay import ReplayStoreUnavailable
from cds.security.tokens import CdsClient, TokenRejected, TokenVerifier

logger = logging.getLogger(__name__)

# The documentation's own assets (served from the fastapi-offline package, no CDN), by exact
# path: nothing else under /docs/assets exists.
DOCS_ASSET_PATHS = frozenset(
    f"/docs/assets/{name}"
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
)
OPEN_PATHS = (
    frozenset(
        {"/", "/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc"}
        | {"/openapi.json"}
    )
    | DOCS_ASSET_PATHS
)
# Where the verified client is kept: ``request.state.cds_client`` (see ``authenticated_client``).
STATE_KEY = "cds_client"
# A CDS Hooks JWT is well under 2 KB; refusing huge ones early keeps decoding cheap.
MAX_TOKEN_CHARS = 16 * 1024
REPLAY_UNAVAILABLE_CODE = "CDS-1503"


class JwtAuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: TokenVerifier,
        audience_bases: tuple[str, ...],
        extra_open_paths: frozenset[str] = frozenset(),
        refusals: RefusalLog | None = None,
        proxy_login: ProxyLogin | None = None,
    ) -> None:
        self.app = app
        self.refusals = refusals or RefusalLog()
        self._proxy_login = proxy_login
        self.verifier = verifier
        if not audience_bases:
            raise ValueError("JWT authentication needs at least one audience base URL")
        self.audience_bases = tuple(base.rstrip("/") for base in audience_bases)
        self._extra_open_paths = extra_open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            # No websocket endpoints exist; refuse rather than let one through unauthenticated.
            await send({"type": "websocket.close", "code": 1008})
            return
        path = app_path(scope)
        if path in OPEN_PATHS or self._extra_open(path):
            await self.app(scope, receive, send)
            return
        if self._proxy_login is not None and self._proxy_login.user(scope, path):
            await self.app(scope, receive, send)
            return
        try:
            client = await self._authenticate(scope, path)
        except ReplayStoreUnavailable:
            # The token may be good, but we cannot tell whether it was used before: never
            # accept it unchecked. 503 lets the EHR (and a load balancer) try again.
            logger.error("JWT not checked: the replay store is unreachable; answered 503")
            await _replay_check_unavailable(scope, receive, send)
            return
        if client is None:
            await _unauthorized(scope, receive, send)
            return
        scope.setdefault("state", {})[STATE_KEY] = client
        await self.app(scope, receive, send)

    def _extra_open(self, path: str) -> bool:
        """An extra open path opens its sub-pages too (/governance -> /governance/rules/X)."""
        return any(path == p or path.startswith(p + "/") for p in self._extra_open_paths)

    async def _authenticate(self, scope: Scope, path: str) -> CdsClient | None:
        token = bearer_token(Headers(scope=scope).get("authorization"))
        if token is None:
            self.refusals.refused("no bearer token", iss=None, kid=None, path=path)
            return None
        audiences = [base + path for base in self.audience_bases]
        try:
            return await self.verifier.verify(token, audiences)
        except TokenRejected as rejected:
            self.refusals.refused(rejected.reason, iss=rejected.iss, kid=rejected.kid, path=path)
            return None


def authenticated_client(request: Request) -> CdsClient | None:
    """The verified caller of this request; None when the service runs open (no issuers)."""
    client: CdsClient | None = getattr(request.state, STATE_KEY, None)
    return client


def bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    return token


def app_path(scope: Scope) -> str:
    """The path below the app's mount point (``root_path``), as routes see it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :] or "/"
    return path


async def _unauthorized(scope: Scope, receive: Receive, send: Send) -> None:
    # RFC 6750: the challenge names the scheme; no detail on purpose (CDS Hooks best practice).
    response = problem_response(
        AuthenticationFailed.code,
        "Authentication failed",
        401,
        headers={"WWW-Authenticate": "Bearer"},
    )
    await response(scope, receive, send)


async def _replay_check_unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    response = problem_response(
        REPLAY_UNAVAILABLE_CODE,
        "The service cannot check this call's token right now; retry shortly",
        503,
        headers={"Retry-After": "5"},
    )
    await response(scope, receive, send)
