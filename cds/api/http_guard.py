"""uvicorn's httptools protocol with two guards it lacks: a size limit on the request line and
headers (431), and a time limit for sending them (408), so neither a 50 MB header nor a
slow-header ("slowloris") connection can hold memory or a socket for long.

uvicorn closes idle keep-alive connections itself (``timeout_keep_alive``), and a slow body is
bounded by ``RequestTimeoutMiddleware``, which covers reading it. What is left is the time before
the headers are complete, which uvicorn does not bound at all.

The limits come from the KAP_CDS_* environment, read once per process: uvicorn builds the
protocol itself, in each worker, from the same environment ``create_app`` reads.
"""

from __future__ import annotations

import asyncio
import logging
from functools import cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cds.config import Settings

logger = logging.getLogger(__name__)


@cache
def _limits() -> tuple[int, float]:
    settings = Settings()
    return settings.max_header_bytes, settings.header_timeout_seconds


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_header_bytes, self._header_timeout = _limits()
        self._awaiting_headers = True
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: a chunk that completes the headers may carry body bytes too.
        if self._awaiting_headers and self._header_bytes > self._max_header_bytes:
            logger.warning("request headers over %d bytes: 431", self._max_header_bytes)
            self._refuse(431, "Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        # Called from inside feed_data, after data_received counted this chunk: the counter is
        # reset when the previous response completes, not here.
        super().on_message_begin()
        self._awaiting_headers = True
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's bytes start counting afresh; uvicorn's keep-alive timer takes
        # over the idle wait until they come.
        self._awaiting_headers = True
        self._header_bytes = 0

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self._header_timeout, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._awaiting_headers or self.transport.is_closing():
            return
        if self._header_bytes == 0:
            self.transport.close()  # an idle connection that never sent a request
            return
        logger.warning("request headers not complete within %gs: 408", self._header_timeout)
        self._refuse(408, "Request Timeout")

    def _refuse(self, status: int, reason: str) -> None:
        if self.transport.is_closing():
            return
        self._cancel_header_timer()
        body = reason.encode("ascii")
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            "content-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        self.transport.close()
