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
        return await self._run(self._pool.executor.submit(func, *args, **kwargs))

    async def run_alone(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``run`` for a large call: in the pool's one thread for large calls, after the large
        calls before it (see ``WorkPool``). Waiting there holds none of the other threads."""
        return await self._run(self._pool.large_executor.submit(func, *args, **kwargs))

    async def _run(self, future: Future[T]) -> T:
        self._hold()
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
    """The evaluation threads and the admission limit of one process.

    Calls whose body is above ``large_call_bytes`` run one after another in a thread of their
    own: a 5,000-resource chart is ~40 MB of Python objects while it is evaluated, so memory
    grows with the large charts evaluated at once, and the interpreter runs one thread at a
    time anyway, so taking turns costs no throughput. Queued there, a large call holds none of
    the threads that the smaller calls use.
    """

    def __init__(
        self,
        *,
        threads: int,
        max_in_flight: int,
        retry_after_seconds: int,
        large_call_bytes: int,
    ) -> None:
        self._threads = threads
        self.large_call_bytes = large_call_bytes
        self._closed = False
        self.executor, self.large_executor = self._new_executors()
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

    def is_large(self, body_bytes: int) -> bool:
        return body_bytes > self.large_call_bytes

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _new_executors(self) -> tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
        return (
            ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="kap-eval"),
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="kap-eval-large"),
        )

    def open(self) -> None:
        """At app start-up: a pool closed by an earlier lifespan of the same app (test clients
        start and stop an app several times) gets fresh threads."""
        if self._closed:
            self.executor, self.large_executor = self._new_executors()
            self._closed = False

    def close(self) -> None:
        # Running steps finish on their own; nobody waits for their results any more.
        self._closed = True
        for executor in (self.executor, self.large_executor):
            executor.shutdown(wait=False, cancel_futures=True)
