"""Per-issuer rate limit: a fixed-window counter in the shared store, answered with 429.

Every replica and worker counts into the same row (``security_rate_window``, one per issuer and
window), incremented by one atomic upsert (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``), so
the limit holds for the whole deployment, not per process. A fixed window lets a client send up to
twice the limit across a window boundary; it is a guard against a runaway or compromised client,
not a billing meter.

If the store cannot be reached the call is let through (logged, counted): a limiter that is down
must not block clinical care; the replay guard and the audit store fail visibly on their own.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from cds.api.problem import problem_response
from cds.audit import db
from cds.audit.schema import rate_windows
from cds.security.auth import STATE_KEY

logger = logging.getLogger(__name__)

RATE_LIMITED_CODE = "CDS-1429"
PURGE_INTERVAL_SECONDS = 60.0
UNREACHABLE = (OperationalError, InterfaceError)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # seconds until the window ends (0 when allowed)


class SqlRateLimiter:
    def __init__(
        self,
        engine: Engine,
        *,
        limit: int,
        window_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._schema_ready = False
        self._next_purge = 0.0

    def hit(self, iss: str) -> Decision:
        """Count one call for ``iss`` in the current window (blocking: run in a thread)."""
        if not self._schema_ready:
            db.upgrade(self.engine)
            self._schema_ready = True
        now = self._clock()
        start = int(now // self.window_seconds) * self.window_seconds
        with self.engine.begin() as conn:
            hits = int(conn.execute(_increment(conn.dialect.name, iss, start)).scalar_one())
            if now >= self._next_purge:
                self._next_purge = now + PURGE_INTERVAL_SECONDS
                conn.execute(delete(rate_windows).where(rate_windows.c.window_start < start))
        if hits <= self.limit:
            return Decision(True, 0)
        return Decision(False, max(1, math.ceil(start + self.window_seconds - now)))


def _increment(dialect: str, iss: str, start: int):  # type: ignore[no-untyped-def]
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(rate_windows).values(iss=iss, window_start=start, hits=1)
    return stmt.on_conflict_do_update(
        index_elements=[rate_windows.c.iss, rate_windows.c.window_start],
        set_={"hits": rate_windows.c.hits + 1},
    ).returning(rate_windows.c.hits)


class RateLimitMiddleware:
    """Counts each authenticated call against its issuer; 429 with Retry-After past the limit.

    Sits inside the JWT middleware: only verified callers are counted (an unauthenticated flood
    never reaches the store), and calls made in open mode (no issuer) are not limited.
    """

    def __init__(
        self, app: ASGIApp, *, limiter: SqlRateLimiter, on_limited: Callable[[str], None]
    ) -> None:
        self.app = app
        self.limiter = limiter
        self._on_limited = on_limited
        self._warned_down = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("state", {}).get(STATE_KEY) if scope["type"] == "http" else None
        if client is None:
            await self.app(scope, receive, send)
            return
        decision = await self._decide(client.iss)
        if decision.allowed:
            await self.app(scope, receive, send)
            return
        self._on_limited(client.iss)
        response = problem_response(
            RATE_LIMITED_CODE,
            f"Too many requests from this EHR; retry after {decision.retry_after} s",
            429,
            headers={"Retry-After": str(decision.retry_after)},
        )
        await response(scope, receive, send)

    async def _decide(self, iss: str) -> Decision:
        try:
            decision = await run_in_threadpool(self.limiter.hit, iss)
        except UNREACHABLE as exc:
            if not self._warned_down:
                logger.warning(
                    "rate limit store unreachable (%s): calls not limited", type(exc).__name__
                )
                self._warned_down = True
            return Decision(True, 0)
        self._warned_down = False
        return decision
