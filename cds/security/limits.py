"""Request limits as pure ASGI middleware: body size, JSON nesting depth, time.

Pure ASGI (no ``BaseHTTPMiddleware``) because these run on every request: BaseHTTPMiddleware adds
a task and a memory stream per request and changes how cancellation reaches the endpoint.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds.api.problem import problem_response
from cds.errors import PayloadTooLarge, RequestInvalid
from cds.security.json_depth import json_depth_exceeds

logger = logging.getLogger(__name__)

# The code of every HTTP 503 answer (cds.api.errors.ServiceUnavailable uses the same one).
TIMEOUT_CODE = "CDS-1503"


class _ClientGone(Exception):
    """The client disconnected before sending its whole body: nobody is left to answer."""


class BodyLimitMiddleware:
    """Refuses bodies over ``max_body_bytes`` (413) and JSON nested over ``max_json_depth`` (400).

    The body is buffered (the depth check needs all of it, and FastAPI reads it whole anyway) and
    then replayed to the app through a new ``receive``.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_json_depth: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            self._check_declared_length(headers.get("content-length"))
            body = await self._read_body(receive)
            self._check_depth(body, headers.get("content-type"))
        except _ClientGone:
            return
        except (PayloadTooLarge, RequestInvalid) as refused:
            logger.info(
                "request refused (%s): %s %s",
                refused.http_status,
                scope.get("method"),
                scope["path"],
            )
            response = problem_response(refused.code, refused.detail, refused.http_status)
            await response(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"Request body larger than {self.max_body_bytes} bytes")

    def _check_declared_length(self, declared: str | None) -> None:
        """Refuse on Content-Length alone, before reading a single body byte."""
        if declared is None:
            return
        if not declared.strip().isdigit():
            raise RequestInvalid("Invalid Content-Length header")
        if int(declared) > self.max_body_bytes:
            raise self._too_large()

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole body; refused as soon as it grows past the limit (chunked uploads)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _check_depth(self, body: bytes, content_type: str | None) -> None:
        if body and _is_json(content_type) and json_depth_exceeds(body, self.max_json_depth):
            raise RequestInvalid(f"JSON nesting deeper than {self.max_json_depth}")


def _is_json(content_type: str | None) -> bool:
    # FastAPI parses a body without Content-Type as JSON, so that case is checked too.
    if content_type is None:
        return True
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type.endswith("/json") or media_type.endswith("+json")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over the buffered body once, then defers to the server's
    (which is how the app still learns about a disconnect)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class RequestTimeoutMiddleware:
    """Answers 503 (with Retry-After) when a request takes longer than ``seconds``.

    Cancellation reaches ``await`` points only, which is why the CPU-bound steps of a call run
    in ``cds.api.work``'s pool: the route awaits them, so the 503 goes out on time while a step
    still running in its thread finishes unobserved.
    """

    def __init__(self, app: ASGIApp, *, seconds: float, retry_after_seconds: int = 2) -> None:
        self.app = app
        self.seconds = seconds
        self.retry_after = str(retry_after_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_watching(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        deadline = asyncio.timeout(self.seconds)
        try:
            async with deadline:
                await self.app(scope, receive, send_watching)
        except TimeoutError:
            # A TimeoutError the app raised itself (a socket timeout) is not ours to translate.
            if not deadline.expired():
                raise
            logger.warning(
                "request timed out after %ss: %s %s",
                self.seconds,
                scope.get("method"),
                scope["path"],
            )
            if response_started:
                raise  # half a response is out: the server can only drop the connection
            detail = f"Request took longer than {self.seconds:g} s"
            response = problem_response(
                TIMEOUT_CODE, detail, 503, headers={"Retry-After": self.retry_after}
            )
            await response(scope, receive, send)
