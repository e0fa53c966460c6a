"""Pausing the cyclic garbage collector while a call's objects are alive.

One process-wide pause shared by every thread: the work pool's steps (``cds.api.work``) and
the JSON parser (``cds.jsonload``) both use it, so that one of them ending can never turn the
collector back on while another still needs it off.
"""

from __future__ import annotations

import functools
import gc
import threading
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class GcPause:
    """The cyclic garbage collector off while any pauser runs, on again after the last.

    A call parses its prefetch into thousands of dicts and lists (hundreds of thousands for a
    large chart) that live until the call ends and hold no reference cycles: reference counting
    frees them. With the collector on, every few hundred allocations it walks these young
    objects, and again as they age into the older generations: measured, a seventh of a
    5,000-resource call. Paused, the objects are freed before the collector looks: its
    allocation count falls back as they go. Steps of several threads overlap, so the last one
    out turns it on again; under load so steady that steps always overlap, a young-generation
    pass still runs every ``max_paused_seconds``, so cyclic garbage cannot pile up.
    """

    def __init__(self, max_paused_seconds: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._resume = False  # whether the collector was on when the first step paused it
        self._since = 0.0
        self._max_paused = max_paused_seconds

    def __enter__(self) -> None:
        with self._lock:
            if self._active == 0:
                self._resume, self._since = gc.isenabled(), time.monotonic()
                gc.disable()
            self._active += 1

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                if self._resume:
                    gc.enable()
            elif self._resume and time.monotonic() - self._since > self._max_paused:
                gc.collect(0)
                self._since = time.monotonic()


GC_PAUSE = GcPause()


def paused_gc(step: Callable[P, T]) -> Callable[P, T]:
    """Run ``step`` with the cyclic GC paused (see ``GcPause``). The pause ends after the
    step's own frame is gone, so what it allocated and did not return is already freed."""

    @functools.wraps(step)
    def paused(*args: P.args, **kwargs: P.kwargs) -> T:
        with GC_PAUSE:
            return step(*args, **kwargs)

    return paused
