"""The ``jti`` replay guard: a token id is accepted once, on any replica or worker.

The first use of ``(iss, jti)`` is an insert into ``security_jti`` in the shared store (the audit
database: PostgreSQL in production, the SQLite file on a single node). The primary key makes the
insert the atomic test: two processes racing on one token id cannot both win. Entries live until
their token expires (plus clock skew) and are then purged.

When the shared store is PostgreSQL and it cannot be reached, the guard falls back to a SQLite
file on this node (``<spool_dir>/replay.sqlite3``), so workers on one node still share one view;
when PostgreSQL answers again, the node's entries are copied into it before it is used again, and
any token id found in both is logged as a replay that may have been accepted during the outage.
``KAP_CDS_REPLAY_WHEN_STORE_DOWN=refuse`` answers 503 instead, for sites that prefer no answer to
a weaker replay check.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, delete, inspect, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool

from cds.audit import db
from cds.audit.schema import jti_uses

logger = logging.getLogger(__name__)

UNREACHABLE = (OperationalError, InterfaceError, OSError)  # OSError: a SQLite file that cannot open
PURGE_INTERVAL_SECONDS = 60.0
# After a failed attempt, go straight to the node-local store for this long: a store that does
# not answer must not add a connect timeout to every request.
PRIMARY_RETRY_SECONDS = 2.0


class ReplayStoreUnavailable(Exception):
    """The replay check could not run: the caller answers 503 (never accepts unchecked)."""


class SqlJtiStore:
    """``security_jti`` in one database; every method runs in a worker thread (blocking I/O)."""

    def __init__(
        self,
        engine: Engine,
        *,
        migrate: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self._migrate = migrate
        self._clock = clock
        self._schema_ready = False
        self._next_purge = 0.0
        self._lock = threading.Lock()

    def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        """Record the token id; False when it is already recorded and not yet expired."""
        self._ensure_schema()
        now = self._clock()
        with self.engine.begin() as conn:
            if _insert_new(conn, iss, jti, expires_at):
                first = True
            else:
                # Taken, but maybe by a token that expired and was not purged yet: a new token
                # may reuse the id then (row-locked, so still one winner).
                revived = conn.execute(
                    update(jti_uses)
                    .where(jti_uses.c.iss == iss, jti_uses.c.jti == jti)
                    .where(jti_uses.c.expires_at <= now)
                    .values(expires_at=expires_at)
                    .returning(jti_uses.c.jti)
                )
                first = revived.first() is not None
        self._maybe_purge(now)
        return first

    def live_entries(self) -> list[tuple[str, str, float]]:
        self._ensure_schema()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(jti_uses.c.iss, jti_uses.c.jti, jti_uses.c.expires_at).where(
                    jti_uses.c.expires_at > self._clock()
                )
            ).all()
        return [(r[0], r[1], r[2]) for r in rows]

    def absorb(self, entries: list[tuple[str, str, float]]) -> int:
        """Insert entries recorded elsewhere; returns how many were already here."""
        self._ensure_schema()
        conflicts = 0
        with self.engine.begin() as conn:
            for iss, jti, expires_at in entries:
                conflicts += not _insert_new(conn, iss, jti, expires_at)
        return conflicts

    def forget(self, entries: list[tuple[str, str, float]]) -> None:
        with self.engine.begin() as conn:
            for iss, jti, _ in entries:
                conn.execute(delete(jti_uses).where(jti_uses.c.iss == iss, jti_uses.c.jti == jti))

    def purge(self) -> int:
        with self.engine.begin() as conn:
            removed = conn.execute(
                delete(jti_uses)
                .where(jti_uses.c.expires_at <= self._clock())
                .returning(jti_uses.c.jti)
            )
            return len(removed.all())

    def _maybe_purge(self, now: float) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL_SECONDS
        removed = self.purge()
        if removed:
            logger.debug("replay guard: purged %d expired token id(s)", removed)

    def _create_local_table(self) -> None:
        # The node's workers fall back at the same moment: two may race to create the table.
        try:
            jti_uses.create(self.engine, checkfirst=True)
        except OperationalError:
            if not _table_exists(self.engine):
                raise

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._lock:
            if self._schema_ready:
                return
            if self._migrate:
                db.upgrade(self.engine)  # the audit migrations own the table
            else:
                self._create_local_table()
            self._schema_ready = True


def _insert_new(conn: Connection, iss: str, jti: str, expires_at: float) -> bool:
    """Insert-or-ignore; True when this call inserted the row (RETURNING: rowcount is not
    reliable for ON CONFLICT DO NOTHING across drivers)."""
    stmt = (
        db.insert_ignore(conn, jti_uses)
        .values(iss=iss, jti=jti, expires_at=expires_at)
        .returning(jti_uses.c.jti)
    )
    return conn.execute(stmt).first() is not None


def _table_exists(engine: Engine) -> bool:
    return inspect(engine).has_table(jti_uses.name)


@dataclass
class ReplayGuardStatus:
    degraded: bool  # answering from the node-local store
    conflicts: int  # token ids found on another node after an outage (possible replays)


class ReplayGuard:
    """The shared store first; the node-local one only while the shared one is unreachable."""

    def __init__(
        self,
        shared: SqlJtiStore,
        local: SqlJtiStore | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shared = shared
        self.local = local
        self._clock = clock
        self._retry_at = 0.0
        self._degraded = False
        self._reconcile_lock = threading.Lock()
        self.conflicts = 0
        self.available = True  # False after a token could be checked nowhere (/readyz: 503)

    @property
    def status(self) -> ReplayGuardStatus:
        return ReplayGuardStatus(self._degraded, self.conflicts)

    async def first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        """True the first time this token id is seen anywhere; ``ReplayStoreUnavailable`` when
        no store could record it."""
        return await run_in_threadpool(self._first_use, iss, jti, expires_at)

    def _first_use(self, iss: str, jti: str, expires_at: float) -> bool:
        try:
            first = self._check(iss, jti, expires_at)
        except ReplayStoreUnavailable:
            self.available = False
            raise
        self.available = True
        return first

    def _check(self, iss: str, jti: str, expires_at: float) -> bool:
        if self._clock() >= self._retry_at:
            try:
                self._reconcile()
                return self.shared.first_use(iss, jti, expires_at)
            except UNREACHABLE as exc:
                self._retry_at = self._clock() + PRIMARY_RETRY_SECONDS
                self._note_down(exc)
        if self.local is None:
            raise ReplayStoreUnavailable("the replay check store is unreachable")
        try:
            return self.local.first_use(iss, jti, expires_at)
        except UNREACHABLE as exc:  # the node's own disk: nothing left to fall back on
            logger.error("replay guard: node-local store failed too (%s)", type(exc).__name__)
            raise ReplayStoreUnavailable("the node-local replay store failed") from exc

    def _note_down(self, exc: Exception) -> None:
        if not self._degraded:
            logger.warning(
                "replay guard: shared store unreachable (%s); %s",
                type(exc).__name__,
                "using this node's store until it is back" if self.local else "refusing calls",
            )
        self._degraded = self.local is not None

    def _reconcile(self) -> None:
        """After an outage: copy this node's token ids into the shared store, then forget them."""
        if not self._degraded or self.local is None:
            return
        with self._reconcile_lock:
            if not self._degraded:
                return
            entries = self.local.live_entries()
            conflicts = self.shared.absorb(entries)
            self.local.forget(entries)
            self._degraded = False
        self.conflicts += conflicts
        level = logging.WARNING if conflicts else logging.INFO
        logger.log(
            level,
            "replay guard: shared store back; %d token id(s) from the outage copied, %d of them "
            "also used on another node (possible replays accepted during the outage)",
            len(entries),
            conflicts,
        )


def local_store_path(spool_dir: Path) -> Path:
    return spool_dir / "replay.sqlite3"
