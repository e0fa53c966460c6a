"""Response hardening headers on every answer, and ``Content-Type`` checking of request bodies.

Pure ASGI (see ``cds.security.limits`` for why).

- Answers carry patient data (cards name values from the chart): ``Cache-Control: no-store`` on
  every answer, so no proxy or browser cache keeps one. ``nosniff`` stops a browser from
  reading a JSON answer as HTML or script; JSON answers also get a CSP that allows nothing and no
  framing (the HTML pages, /docs and /governance, are left to set their own).
- A POST body must be declared ``application/json``: a browser posts ``text/plain`` or form
  bodies cross-site without a CORS preflight, so parsing those as JSON would let any web page
  make a clinician's browser call us. Anything else is a 415, before the body is read.
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds.api.problem import problem_response
from cds.security.auth import app_path

logger = logging.getLogger(__name__)

UNSUPPORTED_MEDIA_TYPE_CODE = "CDS-1415"
JSON_MEDIA_TYPE = "application/json"
_ALWAYS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
_JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
# The routes that take a body: POST /cds-services/{id} and /cds-services/{id}/feedback. Other
# methods and paths get their 405 or 404 from the router.
_BODY_PREFIX = "/cds-services/"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _ALWAYS:
                    if name not in headers:
                        headers.append(name, value)
                if (
                    is_json(headers.get("content-type"))
                    and "content-security-policy" not in headers
                ):
                    headers.append("Content-Security-Policy", _JSON_CSP)
            await send(message)

        await self.app(scope, receive, send_hardened)


class JsonContentTypeMiddleware:
    """415 for a request body that is not declared ``application/json``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not app_path(scope).startswith(_BODY_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-type")
        if media_type(declared) == JSON_MEDIA_TYPE:
            await self.app(scope, receive, send)
            return
        logger.info("request refused (415): %s %s", scope.get("method"), scope["path"])
        response = problem_response(
            UNSUPPORTED_MEDIA_TYPE_CODE,
            f"Content-Type must be {JSON_MEDIA_TYPE}",
            415,
            ["Content-Type"],
            headers={"Accept-Post": JSON_MEDIA_TYPE},
        )
        await response(scope, receive, send)


def media_type(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    return content_type.partition(";")[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    kind = media_type(content_type)
    return kind is not None and (kind == JSON_MEDIA_TYPE or kind.endswith("+json"))
