"""``AuditStore``: the ``AuditSink`` the service records every decision and feedback item into.

``record_*`` build a small dict and append it as one JSON line to this process's spool file: tens
of microseconds, no database round trip, no exception (the audit store being down must not block
clinical care). The writer thread moves spooled records into the database in batches.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from cds.audit import db, records
from cds.audit.archive import ArchiveCipher, ArchivedInputs
from cds.audit.spool import Spool
from cds.audit.writer import Writer
from cds.config import Settings
from cds.pipeline_types import Evaluation, PatientData

log = logging.getLogger(__name__)


class AuditStore:
    def __init__(
        self,
        engine: Engine,
        spool: Spool,
        writer: Writer,
        archive: ArchiveCipher | None = None,
    ) -> None:
        self.engine = engine
        self.spool = spool
        self.writer = writer
        self.archive = archive  # None: the input archive is off (no key configured)
        self._closed = False

    def record_evaluation(
        self,
        *,
        service_id: str,
        hook: str,
        hook_instance: str,
        patient_id: str | None,
        data: PatientData,
        evaluation: Evaluation,
        latency_ms: float,
        inputs: ArchivedInputs | None = None,
    ) -> None:
        try:
            sealed = None
            if self.archive is not None and inputs is not None and evaluation.kap:
                sealed = (self.archive.key_id, self.archive.seal(inputs))
            record = records.evaluation_record(
                service_id=service_id,
                hook=hook,
                hook_instance=hook_instance,
                patient_id=patient_id,
                data=data,
                evaluation=evaluation,
                latency_ms=latency_ms,
                sealed_inputs=sealed,
            )
            self._spool(record)
        except Exception:  # the protocol promises never to raise into the request
            log.exception("audit: evaluation record could not be built (service %s)", service_id)

    def record_feedback(self, *, service_id: str, items: list[dict[str, Any]]) -> None:
        try:
            for record in records.feedback_records(service_id=service_id, items=items):
                self._spool(record)
        except Exception:
            log.exception("audit: feedback record could not be built (service %s)", service_id)

    def _spool(self, record: dict[str, Any]) -> None:
        # default=str: a fact value of an unexpected type is kept as text rather than dropped.
        line = orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE)
        self.spool.append(line)  # the writer picks it up at its next interval

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything recorded so far is in the database (False on timeout)."""
        return self.writer.flush(timeout)

    def healthy(self) -> bool:
        """The writer runs and its last database attempt succeeded (records are flowing)."""
        return (
            not self._closed
            and self.writer.is_alive()
            and self.writer.failures == 0
            and not self.spool.memory
        )

    def stats(self) -> dict[str, int]:
        """Counters for metrics: backlog bytes, consecutive failures, written, quarantined."""
        return {
            "pending_bytes": self.spool.pending(),
            "failures": self.writer.failures,
            "written": self.writer.written,
            "quarantined": self.writer.quarantined,
            "spool_errors": self.spool.spool_errors,
        }

    def close(self, timeout: float = 10.0) -> None:
        """Flush what the database will take within ``timeout``; the rest stays in the spool."""
        if self._closed:
            return
        self._closed = True
        self.writer.stop(timeout)
        if self.writer.is_alive():
            log.warning("audit writer still busy at close; unwritten records stay in the spool")
            return  # the thread still uses the spool and the engine; the process is ending
        self.spool.close()
        self.engine.dispose()


def open_store(
    settings: Settings,
    *,
    batch_size: int = 500,
    interval: float = 0.1,
    backoff_initial: float = 0.2,
    backoff_max: float = 30.0,
) -> AuditStore:
    """Open the audit store: migrate to head, claim spools of dead processes, start the writer.

    An unreachable database does not stop the service from starting: the writer migrates and
    replays once it answers. A malformed URL or a failing migration does raise.
    """
    engine = db.create_audit_engine(settings.database_url)
    schema_ready = _try_upgrade(engine)
    spool = Spool(settings.spool_dir)
    spool.claim_orphans()
    writer = Writer(
        engine,
        spool,
        schema_ready=schema_ready,
        batch_size=batch_size,
        interval=interval,
        backoff_initial=backoff_initial,
        backoff_max=backoff_max,
    )
    archive = ArchiveCipher.from_settings(settings.archive_key, settings.archive_key_file)
    writer.start()
    writer.wake()  # replay what was claimed right away
    return AuditStore(engine, spool, writer, archive)


def _try_upgrade(engine: Engine) -> bool:
    try:
        db.upgrade(engine)
    except (OperationalError, InterfaceError) as exc:
        log.warning(
            "audit store unreachable at start-up (%s); records will be spooled", type(exc).__name__
        )
        return False
    return True
