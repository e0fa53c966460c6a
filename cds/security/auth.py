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
from typing import Any

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from cds.api.problem import problem_response
from cds.errors import AuthenticationFailed
from cds.security.tokens import CdsClient, TokenRejected, TokenVerifier

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset(
    {
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)
# Where the verified client is kept: ``request.state.cds_client`` (see ``authenticated_client``).
STATE_KEY = "cds_client"
# A CDS Hooks JWT is well under 2 KB; refusing huge ones early keeps decoding cheap.
MAX_TOKEN_CHARS = 16 * 1024
_DEFAULT_PORTS = {"http": "80", "https": "443"}


class JwtAuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: TokenVerifier,
        public_base_url: str | None,
        extra_open_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
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
        client = await self._authenticate(scope, path)
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
            logger.info("JWT refused: reason=%s path=%s", "no bearer token", _safe(path))
            return None
        audience = endpoint_url(scope, path, self.public_base_url)
        try:
            return await self.verifier.verify(token, audience)
        except TokenRejected as rejected:
            level = logging.WARNING if rejected.suspicious else logging.INFO
            logger.log(
                level,
                "JWT refused: reason=%s iss=%s kid=%s path=%s",
                rejected.reason,
                _safe(rejected.iss),
                _safe(rejected.kid),
                _safe(path),
            )
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


def endpoint_url(scope: Scope, path: str, public_base_url: str | None) -> str:
    """The exact URL the client called, which its token's ``aud`` must equal.

    Behind a proxy the request cannot know it, hence ``public_base_url``. Without one the base is
    built from the scheme and the Host header (default port dropped, host lower-cased). The match
    is exact otherwise: no trailing-slash or case folding of the path, because the EHR configures
    ``aud`` as our URL and any tolerance would accept tokens minted for a different URL.
    """
    if public_base_url is not None:
        return public_base_url + path
    scheme: str = scope.get("scheme", "http")
    host = (Headers(scope=scope).get("host") or _server_host(scope)).lower()
    name, sep, port = host.rpartition(":")
    # Clients leave the default port out of aud; "[::1]" has colons but no port.
    if sep and port == _DEFAULT_PORTS.get(scheme) and ("[" not in name or name.endswith("]")):
        host = name
    return f"{scheme}://{host}{scope.get('root_path', '')}{path}"


def _server_host(scope: Scope) -> str:
    server = scope.get("server")
    if not server:
        return "localhost"
    host, port = server
    return f"{host}:{port}" if port is not None else str(host)


async def _unauthorized(scope: Scope, receive: Receive, send: Send) -> None:
    # RFC 6750: the challenge names the scheme; no detail on purpose (CDS Hooks best practice).
    response = problem_response(
        AuthenticationFailed.code,
        "Authentication failed",
        401,
        headers={"WWW-Authenticate": "Bearer"},
    )
    await response(scope, receive, send)


def _safe(value: Any) -> str:
    """A claimed (unverified) value, made safe for one log line: quoted, escaped, truncated."""
    if value is None:
        return "-"
    return repr(value if isinstance(value, str) else type(value).__name__)[:100]
