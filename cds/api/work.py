"""Bounded work: CPU-heavy steps of a CDS call run in a thread pool of fixed size, and at most
``max_in_flight`` calls are admitted per process (503 with Retry-After beyond that).

Why a pool: parsing, indexing and evaluating a large prefetch takes seconds of CPU; on the event
loop it would stall every other request, ``/healthz`` included, and no deadline could fire. In a
thread the loop stays free, so ``RequestTimeoutMiddleware`` answers a request past its deadline
on time. A step already running in a thread cannot be interrupted: it finishes and its result is
dropped, and the steps after it are never started. Its slot stays taken until it has finished,
so calls that time out cannot pile up more work than the limit allows.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from cds.errors import CdsError

P = ParamSpec("P")
T = TypeVar("T")


class ServiceBusy(CdsError):
    """Every evaluation slot is taken: HTTP 503 with Retry-After."""

    code = "CDS-1503"
    http_status = 503

    def __init__(self, detail: str, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class Slot:
    """One admitted call. Released when the call is over *and* no step of it still runs."""

    def __init__(self, pool: WorkPool) -> None:
        self._pool = pool
        self._holders = 1  # the call itself
        self._lock = threading.Lock()
        # Set when the caller stopped waiting (the deadline): a step still running sees it
        # and records nothing for an answer that was never given.
        self.abandoned = threading.Event()

    def _hold(self) -> None:
        with self._lock:
            self._holders += 1

    def _drop(self) -> None:
        with self._lock:
            self._holders -= 1
            done = self._holders == 0
        if done:
            self._pool._release()

    async def run(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``func(*args, **kwargs)`` in the pool; awaiting it can be cancelled (the deadline)."""
        self._hold()
        future: Future[T] = self._pool.executor.submit(func, *args, **kwargs)
        # Runs when the step finishes, or at once when it is cancelled before it started.
        future.add_done_callback(lambda _: self._drop())
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            self.abandoned.set()
            raise


class Abandoned(Exception):
    """Raised by a step that finds its call abandoned: nobody waits for its result."""


class WorkPool:
    def __init__(
        self,
        *,
        threads: int,
        max_in_flight: int,
        retry_after_seconds: int,
        large_call_bytes: int = 500_000,
    ) -> None:
        self._threads = threads
        self.large_call_bytes = large_call_bytes
        self._large_turn = threading.Lock()
        self._closed = False
        self.executor = self._new_executor()
        self.max_in_flight = max_in_flight
        self.retry_after_seconds = retry_after_seconds
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def admit(self) -> Iterator[Slot]:
        """A slot for one call, or ``ServiceBusy`` when all are taken."""
        with self._lock:
            if self._in_flight >= self.max_in_flight:
                raise ServiceBusy(
                    f"Busy: {self.max_in_flight} calls in progress; retry shortly",
                    self.retry_after_seconds,
                )
            self._in_flight += 1
        slot = Slot(self)
        try:
            yield slot
        finally:
            slot._drop()

    @contextmanager
    def turn_for(self, body_bytes: int) -> Iterator[None]:
        """For a step about to parse a body above ``large_call_bytes``: wait until no other
        such step runs in this process (a thread of the pool waits; the event loop does not).
        Memory grows with the charts being evaluated at once, not with their number."""
        if body_bytes <= self.large_call_bytes:
            yield
            return
        with self._large_turn:
            yield

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _new_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="kap-eval")

    def open(self) -> None:
        """At app start-up: a pool closed by an earlier lifespan of the same app (test clients
        start and stop an app several times) gets fresh threads."""
        if self._closed:
            self.executor = self._new_executor()
            self._closed = False

    def close(self) -> None:
        # Running steps finish on their own; nobody waits for their results any more.
        self._closed = True
        self.executor.shutdown(wait=False, cancel_futures=True)
