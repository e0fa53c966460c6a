"""A bounded asyncio load generator (httpx, loopback only).

Every run is bounded twice: by a number of requests and by a wall-clock limit. Bodies are
serialized once; each request only splices a fresh ``hookInstance`` into the bytes.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

PLACEHOLDER = b"00000000-0000-0000-0000-000000000000"
HEADERS = {"content-type": "application/json", "accept": "application/json"}


class Body:
    """A request body with a fresh ``hookInstance`` per call (the audit trail keys on it)."""

    def __init__(self, request: dict[str, Any]) -> None:
        raw = orjson.dumps(request)
        head, sep, tail = raw.partition(PLACEHOLDER)
        self.head, self.tail = head, tail
        self.splice = bool(sep)
        self.size = len(raw)

    def next(self) -> bytes:
        if not self.splice:
            return self.head
        return self.head + str(uuid.uuid4()).encode() + self.tail


class BodyPool:
    """Distinct request bodies handed out in turn (cold traffic: one patient per request).

    ``reused`` counts bodies handed out a second time, once the pool ran out: a cold figure
    with ``reused`` > 0 is not fully cold, and the report says so.
    """

    def __init__(self, requests: list[dict[str, Any]]) -> None:
        if not requests:
            raise ValueError("a body pool needs at least one request")
        self.bodies = [Body(r) for r in requests]
        self.size = round(sum(b.size for b in self.bodies) / len(self.bodies))
        self.handed_out = 0

    def rewind(self) -> None:
        """Start over: the next server gets the very same bodies, in the same order."""
        self.handed_out = 0

    @property
    def reused(self) -> int:
        return max(0, self.handed_out - len(self.bodies))

    def next(self) -> bytes:
        body = self.bodies[self.handed_out % len(self.bodies)]
        self.handed_out += 1
        return body.next()


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    timed_out: bool = False

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)

    def summary(self) -> dict[str, Any]:
        ok = sorted(self.latencies_ms)
        return {
            "requests": self.completed,
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "p50_ms": percentile(ok, 50),
            "p95_ms": percentile(ok, 95),
            "p99_ms": percentile(ok, 99),
            "mean_ms": round(sum(ok) / len(ok), 3) if ok else None,
            "rps": round(self.completed / self.wall_s, 1) if self.wall_s else None,
            "wall_s": round(self.wall_s, 3),
            "stopped_by_time_limit": self.timed_out,
        }


def percentile(ordered: list[float], pct: float) -> float | None:
    """Linear-interpolated percentile of an already sorted list."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    value = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    return round(value, 3)


async def run_load(
    client: httpx.AsyncClient,
    url: str,
    body: Body | BodyPool,
    *,
    requests: int,
    concurrency: int,
    max_seconds: float,
) -> LoadResult:
    """``requests`` POSTs with at most ``concurrency`` in flight; stops early at ``max_seconds``."""
    result = LoadResult()
    issued = 0
    started = time.perf_counter()
    deadline = started + max_seconds

    async def worker() -> None:
        nonlocal issued
        while issued < requests:
            if time.perf_counter() > deadline:
                result.timed_out = True
                return
            issued += 1
            await _one(client, url, body.next(), result)

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, requests)))))
    result.wall_s = time.perf_counter() - started
    return result


async def _one(client: httpx.AsyncClient, url: str, content: bytes, result: LoadResult) -> None:
    sent = time.perf_counter()
    try:
        response = await client.post(url, content=content, headers=HEADERS)
        await response.aread()
    except httpx.HTTPError:
        result.errors += 1
        return
    elapsed_ms = (time.perf_counter() - sent) * 1000
    result.statuses[response.status_code] += 1
    if response.status_code == 200:
        result.latencies_ms.append(elapsed_ms)
    else:
        result.errors += 1


def new_client(concurrency: int, timeout: float = 30.0) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)
