"""Several OS processes and one store: scale-out on PostgreSQL, crash recovery on both."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from cds.audit.schema import cards, evaluations, feedback
from cds.config import Settings

from .conftest import open_fast
from .helpers import column, counts

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def _spawn(
    db_url: str, spool_dir: Path, n: int, mode: str, start_at: float
) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, str(HERE / "recorder_main.py"), db_url, str(spool_dir), str(n), mode]
    return subprocess.Popen(
        [*args, str(start_at)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result: dict[str, Any] = orjson.loads(out)
    return result


@pytest.mark.postgres
def test_two_processes_share_one_postgresql_store_exactly_once(pg_url: str, tmp_path: Path) -> None:
    n = 300
    start_at = time.time() + 2.0  # both start recording at the same moment
    procs = [_spawn(pg_url, tmp_path / f"spool-{i}", n, "close", start_at) for i in range(2)]
    results = [_result(p) for p in procs]

    reader = open_fast(Settings(database_url=pg_url, spool_dir=tmp_path / "reader"))
    try:
        assert counts(reader.engine) == (2 * n, 4 * n, 2 * n)
        expected = sorted(i for r in results for i in r["instances"])
        assert sorted(column(reader.engine, evaluations.c.hook_instance)) == expected
        expected_cards = sorted(c for r in results for c in r["cards"])
        assert sorted(column(reader.engine, cards.c.card_uuid)) == expected_cards
        assert not any(column(reader.engine, feedback.c.unknown_card))
    finally:
        reader.close()
    for i in range(2):  # each process cleaned up its spool after writing it all
        assert not list((tmp_path / f"spool-{i}").glob("seg-*.jsonl"))


def test_a_killed_process_loses_nothing(db_url: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    crashed = _result(_spawn(db_url, spool, 50, "crash", 0.0))
    assert list(spool.glob("seg-*.jsonl"))

    store = open_fast(Settings(database_url=db_url, spool_dir=spool))
    try:
        assert store.flush(20)
        assert counts(store.engine) == (50, 100, 50)
        assert sorted(column(store.engine, evaluations.c.hook_instance)) == sorted(
            crashed["instances"]
        )
    finally:
        store.close()
