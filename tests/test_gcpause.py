"""One process-wide pause of the cyclic GC: overlapping pausers (threads, the JSON parser)
turn it back on only when the last one leaves, and only if it was on before."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from unittest import mock

import pytest

from cds import gcpause
from cds.gcpause import GcPause, paused_gc


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_the_last_pauser_out_turns_the_collector_back_on() -> None:
    pause = GcPause()
    pause.__enter__()
    pause.__enter__()  # another thread's step overlaps
    assert not gc.isenabled()
    pause.__exit__()
    assert not gc.isenabled()  # the other one still runs
    pause.__exit__()
    assert gc.isenabled()


def test_a_collector_someone_else_turned_off_stays_off() -> None:
    gc.disable()
    pause = GcPause()
    with pause:
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_a_pause_that_never_ends_still_collects_the_young_generation() -> None:
    pause = GcPause(max_paused_seconds=0.0)
    with mock.patch.object(gcpause.gc, "collect", wraps=gc.collect) as collect:
        pause.__enter__()
        with pause:  # overlapping steps, one after another, with no gap between them
            pass
        assert collect.call_args_list == [mock.call(0)]
        pause.__exit__()
    assert gc.isenabled()


def test_the_decorator_pauses_for_the_step_only() -> None:
    seen: list[bool] = []

    @paused_gc
    def step(value: int) -> int:
        seen.append(gc.isenabled())
        return value + 1

    assert step(1) == 2
    assert seen == [False] and gc.isenabled()
