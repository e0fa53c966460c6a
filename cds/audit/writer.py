"""The background writer: spool -> database, in batches, with backoff, never losing a line.

One thread per process. It reads complete lines from the spool segments in order, writes each
batch in one transaction, and only then advances the segment's offset; a crash between the two
replays the batch, which the insert-or-ignore writes turn into a no-op.

It wakes every ``interval`` (0.1 s), not on every record: a wake-up per record cost the request
thread a context switch, and a one-record transaction per request competed with request threads
for the GIL far more often than one batch per interval does.

Failures are of two kinds:
- the database is unreachable or busy (``OperationalError``, ``InterfaceError``): the batch is
  kept and retried with exponential backoff; records keep piling up in the spool meanwhile;
- the database refuses a record for its content (``IntegrityError``, ``DataError``) or a line
  cannot be parsed: that record alone is moved to the quarantine file, so one bad line cannot
  block the trail behind it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError

from cds.audit import db
from cds.audit.spool import Segment, Spool

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError, InterfaceError)
REFUSED = (IntegrityError, DataError)


class DatabaseUnavailable(Exception):
    """The batch could not be written now; try again later."""


class Writer(threading.Thread):
    def __init__(
        self,
        engine: Engine,
        spool: Spool,
        *,
        schema_ready: bool,
        batch_size: int = 500,
        interval: float = 0.1,
        backoff_initial: float = 0.2,
        backoff_max: float = 30.0,
        orphan_rescan_seconds: float = 30.0,
    ) -> None:
        super().__init__(name="kap-cds-audit-writer", daemon=True)
        # Public so an operator tool (or a test) can point the writer at another engine.
        self.engine = engine
        self.spool = spool
        self.batch_size = batch_size
        self._interval = interval
        self._schema_ready = schema_ready
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._orphan_rescan_seconds = orphan_rescan_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self.failures = 0  # consecutive failed attempts; 0 means the last attempt succeeded
        self.written = 0  # records committed by this process (replays included)
        self.quarantined = 0

    # --- called from other threads -------------------------------------------------------

    def wake(self) -> None:
        """Write now rather than at the next interval (flush, start-up replay)."""
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Wait until everything spooled so far is in the database (False on timeout)."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while self.spool.pending():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.is_alive():
                    return False
                self._wake.set()
                self._progress.wait(min(remaining, 0.05))
        return True

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        self._wake.set()
        self.join(timeout)

    # --- the thread ------------------------------------------------------------------------

    def run(self) -> None:
        next_rescan = time.monotonic() + self._orphan_rescan_seconds
        while not self._stopping.is_set():
            # Polled, not woken per record: one batch per interval keeps the writer's share of
            # the GIL (and the request threads' waits for it) small; see the module docstring.
            self._wake.wait(timeout=self._interval)
            self._wake.clear()
            if time.monotonic() >= next_rescan:
                self._rescan()
                next_rescan = time.monotonic() + self._orphan_rescan_seconds
            if not self._drain_safely():
                self._stopping.wait(self._backoff())
        self._drain_safely()  # last attempt at close: whatever fails stays in the spool

    def _rescan(self) -> None:
        """Pick up the spool of a neighbour process that died since we started."""
        try:
            self.spool.claim_orphans()
        except OSError as exc:
            log.error("audit spool: cannot scan for orphaned segments (%s)", exc.strerror)

    def _backoff(self) -> float:
        exponent = min(max(self.failures - 1, 0), 16)
        return min(self._backoff_max, self._backoff_initial * float(2**exponent))

    def _drain_safely(self) -> bool:
        """Write everything pending; False when the database is unavailable."""
        try:
            self._drain()
        except DatabaseUnavailable:
            return False
        except Exception:  # a bug here must not kill the thread and silently stop the audit
            log.exception("audit writer: unexpected error; will retry")
            self._failed()
            return False
        return True

    def _drain(self) -> None:
        self._ensure_schema()
        self._drain_memory()
        for seg in self.spool.segments():
            self._drain_segment(seg)
        self._notify()

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        self._attempt(partial(db.upgrade, self.engine))
        self._schema_ready = True
        log.info("audit store reachable again: schema at head")

    def _drain_memory(self) -> None:
        memory = self.spool.memory
        while memory:
            lines = [memory[i] for i in range(min(self.batch_size, len(memory)))]
            self._write_lines(lines)
            for _ in lines:
                memory.popleft()

    def _drain_segment(self, seg: Segment) -> None:
        while True:  # also at close: finish whatever is readable while the database answers
            lines, offset = self.spool.read(seg, self.batch_size)
            if not lines:
                break
            self._write_lines(lines)
            seg.offset = offset
            self._notify()
            time.sleep(0)  # let waiting request threads have the GIL between batches
        self.spool.retire(seg)

    def _notify(self) -> None:
        with self._progress:
            self._progress.notify_all()

    # --- one batch -------------------------------------------------------------------------

    def _write_lines(self, lines: list[bytes]) -> None:
        parsed, bad = _parse(lines)
        if bad:
            self._quarantine(bad, "unreadable spool line")
        if not parsed:
            return
        try:
            self._attempt(partial(self._write, list(parsed.values())))
        except REFUSED:
            self._write_one_by_one(parsed)

    def _write_one_by_one(self, parsed: dict[bytes, dict[str, Any]]) -> None:
        for line, record in parsed.items():
            try:
                self._attempt(partial(self._write, [record]))
            except REFUSED as exc:
                self._quarantine([line], type(exc).__name__)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            db.write_batch(conn, batch)
        self.written += len(batch)

    def _attempt(self, action: Callable[[], None]) -> None:
        try:
            action()
        except TRANSIENT as exc:
            self._failed()
            # The exception text may hold SQL parameters (patient ids): log its class only.
            log.warning(
                "audit store unavailable (%s); %d attempt(s) failed, records wait in the spool",
                type(exc).__name__,
                self.failures,
            )
            raise DatabaseUnavailable from exc
        self.failures = 0

    def _failed(self) -> None:
        self.failures += 1

    def _quarantine(self, lines: list[bytes], why: str) -> None:
        self.spool.quarantine(lines)
        self.quarantined += len(lines)
        log.error("audit writer: %d record(s) quarantined (%s)", len(lines), why)


def _parse(lines: list[bytes]) -> tuple[dict[bytes, dict[str, Any]], list[bytes]]:
    """Lines that parse and map to rows, keyed by line (for quarantine), and those that don't."""
    parsed: dict[bytes, dict[str, Any]] = {}
    bad: list[bytes] = []
    for line in lines:
        try:
            record = orjson.loads(line)
            _validate(record)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            bad.append(line)
            continue
        parsed[line] = record
    return parsed, bad


def _validate(record: Any) -> None:
    """Map the record to rows once, so a malformed one fails here and not in the middle of a
    transaction."""
    if not isinstance(record, dict):
        raise TypeError("record is not an object")
    if record.get("kind") == "evaluation":
        db.evaluation_row(record)
        db.card_rows_of(record)
        db.shadow_rows_of(record)
        if record.get("archive"):
            db.archive_row(record)
    elif record.get("kind") == "feedback":
        db.feedback_row(record, None)
    else:
        raise ValueError("unknown record kind")
