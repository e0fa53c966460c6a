"""Profile the hot path: the real ASGI app (middleware, routing, parse, gather, evaluate, audit,
cards) called in process with cProfile, no sockets, its work pool replaced by one that runs
each step on the calling thread (so the profiler sees it). Full ``pstats`` listings go to
``bench/results/profile-<n>.txt``; the summary (top functions by own time, and the kap-cds
functions by cumulative time) goes into the JSON results.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import logging
import pstats
import re
import sysconfig
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import orjson

from bench.synthetic import SERVICE_ID
from cds.app import create_app
from cds.config import Settings

Json = dict[str, Any]
PATH = f"/cds-services/{SERVICE_ID}"
REPO_ROOT = Path(__file__).resolve().parent.parent


def _scope(body: bytes) -> Json:
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }


async def call_app(app: Any, body: bytes) -> tuple[int, bytes]:
    """One POST through the ASGI app; returns (status, body)."""
    delivered = False
    finished = asyncio.Event()
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Json:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Json) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    await app(_scope(body), receive, send)
    return status, b"".join(chunks)


class InlineExecutor(Executor):
    """Runs each submitted step at once, on the calling thread. The app runs a call's CPU work
    in its thread pool, where the profiler on the event loop's thread cannot see it; profiled
    with this executor instead, the whole call is on one thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered to the awaiting call, as the pool would
            future.set_exception(exc)
        return future


async def _profile_async(
    requests: list[Json], iterations: int, max_seconds: float, state_dir: Path
) -> tuple[cProfile.Profile, int, float]:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{state_dir / 'audit.sqlite3'}",
        spool_dir=state_dir / "spool",
        trusted_issuers=[],
    )
    app = create_app(settings)
    bodies = [orjson.dumps(r) for r in requests]
    profiler = cProfile.Profile()
    async with app.router.lifespan_context(app):
        work = app.state.runtime.work
        work.executor = work.large_executor = InlineExecutor()
        status, _ = await call_app(app, bodies[-1])  # warm-up
        if status != 200:
            raise RuntimeError(f"profiled request answered {status}")
        done, started = 0, time.perf_counter()
        while done < iterations and time.perf_counter() - started < max_seconds:
            profiler.enable()
            await call_app(app, bodies[done % len(bodies)])
            profiler.disable()
            done += 1
        elapsed = time.perf_counter() - started
    return profiler, done, elapsed


def profile_request(
    requests: list[Json], label: str, out_dir: Path, *, iterations: int, max_seconds: float
) -> dict[str, Any]:
    """Profile ``requests`` (in turn; distinct ones for cold traffic) through the app; write
    ``profile-<label>.txt``; return a summary."""
    logging.disable(logging.WARNING)  # the app's start-up warnings (open mode) are expected
    try:
        with tempfile.TemporaryDirectory(prefix="kap-bench-profile-") as tmp:
            profiler, done, elapsed = asyncio.run(
                _profile_async(requests, iterations, max_seconds, Path(tmp))
            )
    finally:
        logging.disable(logging.NOTSET)
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    out_dir.mkdir(parents=True, exist_ok=True)
    listing = out_dir / f"profile-{label}.txt"
    listing.write_text(_listing(stats, done), encoding="utf-8")
    return {
        "iterations": done,
        "profiled_ms_per_call": round(total / max(done, 1) * 1000, 3),
        "wall_ms_per_call": round(elapsed / max(done, 1) * 1000, 3),
        "top_own_time": _top(stats, "tottime", done, total, limit=12),
        "top_kap_cds_cumulative": _top(stats, "cumulative", done, total, limit=15, only="/cds/"),
        "listing": _display_path(listing),
    }


def _display_path(path: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else str(path)


def _listing(stats: pstats.Stats, calls: int) -> str:
    buffer = io.StringIO()
    stats.stream = buffer  # type: ignore[attr-defined]
    buffer.write(f"cProfile of {calls} calls through the ASGI app\n\n")
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(60)
    return _MACHINE_PATH.sub(lambda m: _short(m.group(0)), buffer.getvalue())


# A file path as pstats prints it, up to the ":<line>(" that follows.
_MACHINE_PATH = re.compile(r"/\S+?(?=:\d+\()")


def _top(
    stats: pstats.Stats, key: str, calls: int, total: float, *, limit: int, only: str | None = None
) -> list[Json]:
    rows: list[Json] = []
    entries = stats.stats  # type: ignore[attr-defined]
    index = 2 if key == "tottime" else 3
    for func, values in sorted(entries.items(), key=lambda kv: kv[1][index], reverse=True):
        filename, line, name = func
        if only and only not in filename:
            continue
        rows.append(
            {
                "function": f"{_short(filename)}:{line}({name})",
                "ms_per_call": round(values[index] / max(calls, 1) * 1000, 3),
                "share": round(values[index] / total, 3) if total else None,
                "ncalls_per_call": round(values[1] / max(calls, 1), 1),
            }
        )
        if len(rows) >= limit:
            break
    return rows


def _short(filename: str) -> str:
    """A path without this machine's directories: site-packages, the repository, the stdlib."""
    for marker, prefix in (
        ("/site-packages/", ""),
        (f"{REPO_ROOT}/", ""),
        (f"{sysconfig.get_paths()['stdlib']}/", "stdlib/"),
    ):
        if marker in filename:
            return prefix + filename.split(marker, 1)[1]
    return filename
