"""Reading the store back in tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, func, select

from cds.audit.schema import cards, evaluations, feedback


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def counts(engine: Engine) -> tuple[int, int, int]:
    return count(engine, evaluations), count(engine, cards), count(engine, feedback)


def column(engine: Engine, col: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(col)).scalars())


def rows(engine: Engine, table: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table)).mappings()]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
