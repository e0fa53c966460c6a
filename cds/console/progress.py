"""Progress on stderr for commands that take more than a second, only when stderr is a
terminal: a pipe, a file or a test sees nothing but the command's own output."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")


def _console() -> Console:
    return Console(stderr=True)


@contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner with ``message`` while the block runs (loading and compiling the rule set)."""
    console = _console()
    if not console.is_terminal:
        yield
        return
    with console.status(message):
        yield


def track(items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """``items``, with a bar counting them as they are consumed."""
    console = _console()
    if not console.is_terminal:
        yield from items
        return
    count = total if total is not None else (len(items) if isinstance(items, Sized) else None)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task(description, total=count)
        for item in items:
            yield item
            progress.advance(task)
