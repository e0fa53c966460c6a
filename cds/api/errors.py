"""Exception handlers: every error answer is an OperationOutcome with a stable code.

Client errors say what is wrong and which field; 5xx answers carry only an error id to quote,
and the traceback is logged server-side under that id. No handler ever echoes request values.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds.api.problem import problem_response
from cds.errors import AuthenticationFailed, CdsError, DataUnavailable
from cds.hooks.models import field_path

logger = logging.getLogger(__name__)

INTERNAL_CODE = CdsError.code


class ServiceUnavailable(CdsError):
    """Not ready to serve (rules not loaded): HTTP 503."""

    code = "CDS-1503"
    http_status = 503


def _expression(exc: CdsError) -> list[str] | None:
    if isinstance(exc, DataUnavailable):
        return [f"prefetch.{key}" for key in exc.missing]
    expression: list[str] | None = getattr(exc, "expression", None)
    return expression


def internal_error(exc: BaseException) -> JSONResponse:
    error_id = str(uuid.uuid4())
    # Where it failed, never what it said: an exception message can quote request values.
    frames = " <- ".join(
        f"{Path(f.filename).name}:{f.lineno} {f.name}"
        for f in reversed(traceback.extract_tb(exc.__traceback__))
    )
    logger.error("unexpected error, error id %s: %s at %s", error_id, type(exc).__name__, frames)
    return problem_response(INTERNAL_CODE, f"Internal error; quote error id {error_id}", 500)


async def cds_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CdsError)  # registered for CdsError only
    if exc.http_status >= 500 and exc.http_status != 503:
        return internal_error(exc)
    if isinstance(exc, AuthenticationFailed):
        # Best practice: a 401 does not say why (the reason is logged by the security layer).
        return problem_response(
            exc.code, "Authentication failed", 401, headers={"WWW-Authenticate": "Bearer"}
        )
    retry_after = getattr(exc, "retry_after_seconds", None)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return problem_response(exc.code, exc.detail, exc.http_status, _expression(exc), headers)


async def request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, Any]] = list(exc.errors())
    # loc starts with where the value came from ("path", "query", "body"): drop it.
    paths = [field_path(tuple(e["loc"][1:])) for e in errors]
    detail = "; ".join(f"{p}: {e['msg']}" for p, e in zip(paths, errors, strict=True))
    return problem_response("CDS-1400", detail, 400, paths)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None  # e.g. Allow on a 405
    return problem_response(
        f"CDS-1{exc.status_code}", str(exc.detail), exc.status_code, headers=headers
    )


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    return internal_error(exc)


class CatchUnexpected:
    """Answers any exception that escapes the routes with the 500 body, instead of letting it
    reach the server (which would log it a second time, without the error id)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            if started:
                raise
            await internal_error(exc)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CdsError, cds_error)
    app.add_exception_handler(RequestValidationError, request_validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)  # backstop outside the middleware
    app.add_middleware(CatchUnexpected)
