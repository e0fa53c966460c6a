"""The spool keeps a record on disk before record_* returns: synced (group commit), directory
synced on segment create, failed writes cut back, owner-only files; a full disk falls back to
the database, and when neither takes it the call raises AuditUnavailable (the route's 503)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from cds.audit import open_store, spool
from cds.audit.schema import evaluations
from cds.audit.spool import Spool, SpoolUnavailable
from cds.config import Settings
from cds.errors import AuditUnavailable

from . import factories as f
from .conftest import dead_engine, open_fast
from .helpers import column, wait_for


def record(store: Any, instance: str) -> None:
    store.record_evaluation(
        service_id="kap-order-sign",
        hook="order-sign",
        hook_instance=instance,
        patient_id="p1",
        data=f.patient_data(),
        evaluation=f.evaluation("KAP-CI-010"),
        latency_ms=1.0,
    )


class SyncCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = os.fdatasync

        def counting(fd: int) -> None:
            self.calls += 1
            real(fd)

        monkeypatch.setattr(spool.os, "fdatasync", counting)


def test_a_record_is_synced_before_the_call_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs = SyncCounter(monkeypatch)
    s = Spool(tmp_path / "spool")
    s.append(b'{"kind":"x"}\n')
    assert syncs.calls == 1
    [seg] = s.segments()
    assert seg.synced == seg.size == 13
    s.close()


def test_concurrent_appends_share_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncs = SyncCounter(monkeypatch)
    s = Spool(tmp_path / "spool")
    barrier = threading.Barrier(8)

    def append_many() -> None:
        barrier.wait()
        for _ in range(50):
            s.append(b'{"kind":"x"}\n')

    threads = [threading.Thread(target=append_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    [seg] = s.segments()
    assert seg.synced == seg.size == 400 * 13
    assert syncs.calls <= 400  # never more than one per record; fewer when threads overlap
    s.close()


def test_spool_files_are_owner_only(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool")
    s.append(b'{"kind":"x"}\n')
    s.quarantine([b"bad"])
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    for path in (tmp_path / "spool").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    s.close()


def test_sqlite_store_is_created_owner_only(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db' / 'a.sqlite3'}", spool_dir=tmp_path / "spool"
    )
    store = open_store(settings)
    record(store, "one")
    assert store.flush(10)
    store.close()
    assert stat.S_IMODE((tmp_path / "db").stat().st_mode) == 0o700
    for path in (tmp_path / "db").glob("a.sqlite3*"):
        if path.suffix != ".lock":
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_a_failed_write_is_cut_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Spool(tmp_path / "spool")
    s.append(b'{"kind":"a"}\n')
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        real_write(fd, bytes(data[:5]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool.os, "write", half_then_full)
    with pytest.raises(SpoolUnavailable):
        s.append(b'{"kind":"b"}\n')
    assert s.failing
    monkeypatch.setattr(spool.os, "write", real_write)
    s.append(b'{"kind":"c"}\n')
    assert not s.failing
    [seg] = s.segments()
    assert seg.path.read_bytes() == b'{"kind":"a"}\n{"kind":"c"}\n'
    s.close()


def _full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int, data: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool.os, "write", no_space)


def test_full_spool_writes_to_the_database_directly(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_fast(settings)
    try:
        record(store, "before")
        assert store.flush(10)
        _full_disk(monkeypatch)
        record(store, "disk-full")  # no exception: the database took it at once
        assert store.accepting()
        assert sorted(column(store.engine, evaluations.c.hook_instance)) == [
            "before",
            "disk-full",
        ]
    finally:
        monkeypatch.undo()
        store.close()


def test_neither_spool_nor_database_raises_and_is_not_accepting(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_fast(settings)
    try:
        live = store.writer.engine
        store.writer.engine = dead_engine(settings.database_url, tmp_path)
        record(store, "spooled")  # the spool still works
        assert store.accepting()
        assert wait_for(lambda: store.writer.failures > 0)
        _full_disk(monkeypatch)
        with pytest.raises(AuditUnavailable):
            record(store, "lost?")
        assert not store.accepting()
        monkeypatch.undo()
        store.writer.engine = live  # both back: the probe and the writer recover
        assert wait_for(store.accepting)
        assert store.flush(20)
        assert column(store.engine, evaluations.c.hook_instance) == ["spooled"]
    finally:
        monkeypatch.undo()
        store.close()
