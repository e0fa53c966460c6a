"""Audit store gauges for ``/metrics``, read at scrape time (the store keeps the numbers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cds.pipeline_types import AuditSink

GAUGES = {
    "pending_bytes": (
        "kap_cds_audit_backlog_bytes",
        "Audit record bytes in this process's spool not yet in the database",
    ),
    "quarantined": (
        "kap_cds_audit_quarantined_records",
        "Records the database refused, kept in audit_quarantine and the spool directory",
    ),
    "failures": (
        "kap_cds_audit_write_failures",
        "Consecutive failed attempts to reach the audit database (0: records are flowing)",
    ),
    "spool_failing": (
        "kap_cds_audit_spool_failing",
        "1 when the spool cannot take records (disk full): records go straight to the database",
    ),
    "spool_errors": ("kap_cds_audit_spool_errors", "Spool writes that failed since start"),
}


class AuditCollector(Collector):
    def __init__(self, audit: Callable[[], AuditSink | None]) -> None:
        self._audit = audit

    def collect(self) -> Iterator[GaugeMetricFamily]:
        audit = self._audit()
        stats = audit.stats() if audit is not None else {}
        for key, (name, doc) in GAUGES.items():
            if key in stats:
                yield GaugeMetricFamily(name, doc, value=stats[key])
