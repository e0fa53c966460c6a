"""The durable local spool: every audit record is a JSON line on disk before anyone waits on a DB.

Layout of ``spool_dir``:

- ``seg-<pid>-<token>-<seq>.jsonl``: segments. A process appends to its active segment and
  starts a new one past ``max_segment_bytes``. It holds an exclusive ``flock`` on every segment it
  owns for as long as it lives; the kernel drops the lock when the process dies, however it dies.
- ``quarantine-<pid>-<token>.jsonl``: lines the database refused for their content (never
  replayed automatically; an operator looks at them).

A segment is deleted once the writer has committed all of it. A segment left on disk whose lock
can be taken belongs to a dead process: ``claim_orphans`` takes it over and the writer replays it.
Writes are idempotent (insert-or-ignore on record ids), so replaying a segment that was partly
committed before its process died duplicates nothing.

Durability: each record is one ``write()`` to the OS, so it survives the process being killed.
It is not fsynced (that costs milliseconds); the writer commits to the database within moments,
so only a power loss in that window can cost records.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SEGMENT_GLOB = "seg-*.jsonl"
READ_CHUNK = 1 << 20


@dataclass(eq=False)
class Segment:
    path: Path
    fd: int
    owned: bool  # written by this process (False: claimed from a dead one)
    sealed: bool  # no more appends: may be deleted once fully committed
    size: int  # bytes of complete records in the file
    offset: int = 0  # bytes already committed to the database (writer thread only)

    @property
    def pending(self) -> int:
        return self.size - self.offset


class Spool:
    def __init__(self, directory: Path, *, max_segment_bytes: int = 8 << 20) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._max_segment_bytes = max_segment_bytes
        # pid alone is not unique: in a container every restart is pid 1.
        self._token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._seq = 0
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        # Records that could not be spooled (disk full, read-only disk): kept in memory so the
        # writer can still try the database. Lost only if the process dies too.
        self.memory: deque[bytes] = deque()
        self.spool_errors = 0
        self._closed = False
        self._active = self._new_segment()

    # --- request threads -------------------------------------------------------------------

    def append(self, line: bytes) -> None:
        """Append one record (one complete line). Never raises."""
        with self._lock:
            if self._closed:
                # A caller bug (recording after close); there is no writer left to take it.
                log.error("audit record after the store was closed: dropped")
                return
            try:
                self._write_active(line)
            except OSError as exc:
                self.spool_errors += 1
                log.error("audit spool write failed (%s); record kept in memory", exc.strerror)
                self.memory.append(line)

    def _write_active(self, line: bytes) -> None:
        seg = self._active
        view = memoryview(line)
        while view:  # a regular-file write is whole unless the disk fills; be exact anyway
            view = view[os.write(seg.fd, view) :]
        seg.size += len(line)
        if seg.size >= self._max_segment_bytes:
            seg.sealed = True
            self._active = self._new_segment()

    def _new_segment(self) -> Segment:
        self._seq += 1
        name = f"seg-{self._token}-{self._seq:06d}.jsonl"
        # Created under a name claimers ignore, locked, then renamed: a claimer must never find
        # a live segment in the window between create and lock.
        tmp = self.directory / f".{name}.new"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(tmp, self.directory / name)
        seg = Segment(self.directory / name, fd, owned=True, sealed=False, size=0)
        self._segments.append(seg)
        return seg

    # --- start-up and the writer thread ------------------------------------------------------

    def claim_orphans(self) -> int:
        """Take over segments whose process is gone; returns how many were claimed."""
        # Our own segments (and orphans we already hold) are skipped by the lock itself: flock
        # conflicts between two opens of a file even within one process.
        claimed = [s for s in map(_try_claim, sorted(self.directory.glob(SEGMENT_GLOB))) if s]
        with self._lock:
            # Orphans go first: they are older than anything this process wrote.
            self._segments[:0] = claimed
        if claimed:
            log.info("audit spool: replaying %d segment(s) left by earlier processes", len(claimed))
        return len(claimed)

    def segments(self) -> list[Segment]:
        with self._lock:
            return list(self._segments)

    def pending(self) -> int:
        """Bytes (and in-memory records) not yet committed to the database."""
        with self._lock:
            return sum(seg.pending for seg in self._segments) + len(self.memory)

    def read(self, seg: Segment, max_lines: int) -> tuple[list[bytes], int]:
        """Complete lines after ``seg.offset`` (at most ``max_lines``) and the offset past them."""
        with self._lock:
            end = seg.size
        lines: list[bytes] = []
        offset = seg.offset
        while offset < end and len(lines) < max_lines:
            chunk = _read_lines(seg.fd, offset, end)
            if not chunk:
                break
            pos = 0
            while pos < len(chunk) and len(lines) < max_lines:
                newline = chunk.find(b"\n", pos)
                stop = len(chunk) if newline < 0 else newline + 1
                lines.append(chunk[pos:stop])
                pos = stop
            offset += pos
        return lines, offset

    def retire(self, seg: Segment) -> None:
        """Delete a segment once it is sealed and fully committed."""
        with self._lock:
            if not seg.sealed or seg.pending > 0 or seg not in self._segments:
                return
            self._segments.remove(seg)
        # Unlink while still holding the lock, so a claimer that opened the path in the meantime
        # sees (by inode) that the file is gone and backs off.
        _unlink_quietly(seg.path)
        os.close(seg.fd)

    def quarantine(self, lines: Iterable[bytes]) -> None:
        path = self.directory / f"quarantine-{self._token}.jsonl"
        with path.open("ab") as fh:
            for line in lines:
                fh.write(line if line.endswith(b"\n") else line + b"\n")
            fh.flush()
            os.fsync(fh.fileno())  # rare, and these are records we could not store anywhere else

    def close(self) -> None:
        """Delete fully committed segments; leave the rest (unlocked) for the next start."""
        with self._lock:
            self._closed = True
            segments, self._segments = self._segments, []
        for seg in segments:
            if seg.pending == 0:
                _unlink_quietly(seg.path)
            os.close(seg.fd)
        if segments and any(seg.pending for seg in segments):
            log.warning("audit spool: records left in %s for the next start", self.directory)


def _try_claim(path: Path) -> Segment | None:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            raise FileNotFoundError(path)  # deleted or replaced after we opened it
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)  # a live process owns it, or another claimer finished it
        return None
    size = os.fstat(fd).st_size
    return Segment(path, fd, owned=False, sealed=True, size=size)


def _read_lines(fd: int, offset: int, end: int) -> bytes:
    """Bytes from ``offset`` up to the last newline, growing the read for an oversized line.

    A dead process may have left half a line at the end of its segment; it comes back as a final
    unterminated chunk, which the writer quarantines rather than loses.
    """
    size = READ_CHUNK
    while True:
        data = os.pread(fd, min(size, end - offset), offset)
        cut = data.rfind(b"\n") + 1
        if cut:
            return data[:cut]
        if offset + len(data) >= end:
            return data  # unterminated tail
        size *= 2


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
